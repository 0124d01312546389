// Command spiderpool-controller runs Spiderpool's cluster-wide reconcilers. This file only turns
// flags and environment into controller.Config; everything else is in internal/controller.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/logging"
	"github.com/spiderpool-go/spiderpool/internal/webhook"
)

// cleanup is `spiderpool-controller cleanup`, the chart's pre-delete hook
// (spiderpoolController.cleanup.enable): it removes the webhook configurations and the
// certificate Secret the controller made itself.
func cleanup(args []string) error {
	fs := flag.NewFlagSet("spiderpool-controller cleanup", flag.ContinueOnError)
	namespace := fs.String("namespace", os.Getenv("SPIDERPOOL_NAMESPACE"), "Spiderpool's namespace (env SPIDERPOOL_NAMESPACE)")
	secret := fs.String("secret-name", webhook.DefaultSecretName, "the certificate Secret (spiderpoolController.tls.secretName)")
	initJob := fs.String("init-job", "", "the install Job to remove with its pods (a hook, so helm uninstall leaves it; spiderpoolInit.name)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty means in-cluster (env KUBECONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *namespace == "" {
		return errors.New("cleanup: --namespace is required")
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(restConfig, client.Options{})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	deleted, err := webhook.Cleanup(ctx, c, *namespace, *secret)
	for _, d := range deleted {
		fmt.Println("deleted", d)
	}
	if *initJob != "" {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: *namespace, Name: *initJob}}
		switch jerr := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); {
		case jerr == nil:
			fmt.Println("deleted Job", *namespace+"/"+*initJob)
		case !apierrors.IsNotFound(jerr):
			err = errors.Join(err, fmt.Errorf("delete Job %s/%s: %w", *namespace, *initJob, jerr))
		}
	}
	return err
}

func main() {
	run := run
	if len(os.Args) > 1 && os.Args[1] == "cleanup" {
		run = func() error { return cleanup(os.Args[2:]) }
	}
	// -h on a subcommand is a request, not a failure: the flag set has printed the help.
	if err := run(); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "spiderpool-controller:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := controller.DefaultConfig()
	if ns := os.Getenv("SPIDERPOOL_NAMESPACE"); ns != "" {
		cfg.InstallNamespace = ns
	}
	if v := os.Getenv("SPIDERPOOL_COORDINATOR_DEAFULT_NAME"); v != "" { // upstream's spelling
		cfg.CoordinatorName = v
	}
	if v := os.Getenv("SPIDERPOOL_CNI_CONFIG_DIR"); v != "" {
		cfg.CNIConfigDir = v
	}
	if v := os.Getenv("SPIDERPOOL_GC_IP_ENABLED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("SPIDERPOOL_GC_IP_ENABLED: %w", err)
		}
		cfg.GCEnabled = b
	}
	if v := os.Getenv("SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: %w", err)
		}
		cfg.GCInterval = time.Duration(n) * time.Second
	}
	kubeconfig := os.Getenv("KUBECONFIG")
	logLevel := slog.LevelInfo

	fs := flag.NewFlagSet("spiderpool-controller", flag.ContinueOnError)
	fs.StringVar(&cfg.InstallNamespace, "install-namespace", cfg.InstallNamespace, "Spiderpool's namespace, where the leader-election lease lives (env SPIDERPOOL_NAMESPACE)")
	fs.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, `TCP address of /healthz, /readyz and the HTTP API; "0" disables (spiderpoolController.httpPort)`)
	fs.BoolVar(&cfg.HTTPAPI, "http-api", cfg.HTTPAPI, "serve POST /v1/ipam/gc_ips, GET /v1/ipam/status and PUT /v1/ipam/ip on the health address (loopback only; used by spiderpoolctl)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, `TCP address of /metrics; "0" disables (spiderpoolController.prometheus.port)`)
	fs.BoolVar(&cfg.DebugMetrics, "debug-metrics", cfg.DebugMetrics, "export the spiderpool_debug_ metrics too (spiderpoolController.prometheus.enabledDebugMetric)")
	fs.BoolVar(&cfg.LeaderElection, "leader-elect", cfg.LeaderElection, "elect one active replica")
	fs.StringVar(&cfg.CoordinatorName, "coordinator-name", cfg.CoordinatorName, "SpiderCoordinator whose status is kept (coordinator.name, env SPIDERPOOL_COORDINATOR_DEAFULT_NAME)")
	fs.BoolVar(&cfg.EnsureCoordinator, "ensure-coordinator", cfg.EnsureCoordinator, "create the SpiderCoordinator --coordinator-name with the Helm defaults when it is missing (coordinator.enabled)")
	fs.StringVar(&cfg.CNIConfigDir, "cni-config-dir", cfg.CNIConfigDir, "CNI configuration directory read for podCIDRType auto (env SPIDERPOOL_CNI_CONFIG_DIR)")
	fs.StringVar(&cfg.IPAMSocketPath, "ipam-unix-socket-path", cfg.IPAMSocketPath, "the agent's socket on the nodes, written into generated NADs when not the default (global.ipamUNIXSocketHostPath)")
	fs.StringVar(&cfg.CiliumConfigMap, "cilium-configmap", cfg.CiliumConfigMap, "Cilium's ConfigMap, namespace/name (global.ciliumConfigMap)")
	fs.IntVar(&cfg.WebhookPort, "webhook-port", cfg.WebhookPort, "port of the admission webhooks; 0 disables them (spiderpoolController.webhookPort)")
	fs.StringVar(&cfg.WebhookHost, "webhook-host", cfg.WebhookHost, "bind address of the webhook server; empty means all")
	fs.StringVar(&cfg.WebhookCertDir, "webhook-cert-dir", cfg.WebhookCertDir, "directory of tls.crt and tls.key")
	fs.StringVar(&cfg.WebhookTLSMethod, "webhook-tls-method", cfg.WebhookTLSMethod, "auto (self-managed CA in Secret spiderpool-controller-server-certs), provided or certmanager (spiderpoolController.tls.method)")
	fs.StringVar(&cfg.WebhookURLHost, "webhook-url-host", cfg.WebhookURLHost, "out of cluster: register the webhooks as https://<host>:<port>/... instead of the Service")
	fs.BoolVar(&cfg.EnableIPv4, "enable-ipv4", cfg.EnableIPv4, "ipam.enableIPv4")
	fs.BoolVar(&cfg.EnableIPv6, "enable-ipv6", cfg.EnableIPv6, "ipam.enableIPv6")
	fs.BoolVar(&cfg.GCEnabled, "gc-enabled", cfg.GCEnabled, "reclaim IPs of pods that are gone (ipam.gc.enabled, env SPIDERPOOL_GC_IP_ENABLED)")
	fs.DurationVar(&cfg.GCInterval, "gc-interval", cfg.GCInterval, "period of the full GC scan (ipam.gc.gcAll.intervalInSecond, env SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION in seconds)")
	fs.DurationVar(&cfg.GCDeletingTimeoutDelay, "gc-deleting-timeout-delay", cfg.GCDeletingTimeoutDelay, "extra time a terminating pod keeps its IPs after its grace period (ipam.gc.gcDeletingTimeOutPodDelay)")
	fs.BoolVar(&cfg.GCZombieOnReadyNode, "gc-zombie-on-ready-node", cfg.GCZombieOnReadyNode, "a pod terminating past its grace period and delay on a Ready node gives its IPs back (ipam.gc.statelessPod.zombieOnReadyNode)")
	fs.BoolVar(&cfg.GCCleanOutdatedEndpoints, "gc-clean-outdated-endpoints", cfg.GCCleanOutdatedEndpoints, "the full GC scan also deletes the SpiderEndpoint of a live pod that no IPPool holds a record for (ipam.enableCleanOutdatedEndpoint)")
	fs.BoolVar(&cfg.GCZombieOnNotReadyNode, "gc-zombie-on-not-ready-node", cfg.GCZombieOnNotReadyNode, "the same on a node that is not Ready or gone; false keeps them while the node's containers may still run (ipam.gc.statelessPod.zombieOnNotReadyNode)")
	fs.BoolVar(&cfg.EnableStatefulSet, "enable-statefulset", cfg.EnableStatefulSet, "StatefulSet members keep their IPs (ipam.enableStatefulSet)")
	fs.BoolVar(&cfg.EnableKubevirtStaticIP, "enable-kubevirt-static-ip", cfg.EnableKubevirtStaticIP, "the GC keeps a KubeVirt VM's addresses while its VirtualMachineInstance or VirtualMachine exists (ipam.enableKubevirtStaticIP)")
	fs.BoolVar(&cfg.EnableSpiderSubnet, "enable-spider-subnet", cfg.EnableSpiderSubnet, "keep SpiderSubnet status and run auto pools (ipam.spiderSubnet.enable)")
	fs.BoolVar(&cfg.EnableAutoPool, "enable-auto-pool", cfg.EnableAutoPool, "give workloads naming a SpiderSubnet auto IPPools (ipam.spiderSubnet.autoPool.enable)")
	fs.IntVar(&cfg.AutoPoolDefaultRedundant, "auto-pool-default-redundant-ip-number", cfg.AutoPoolDefaultRedundant, "IPs beyond the replicas in an auto pool without ipam.spidernet.io/ippool-ip-number (ipam.spiderSubnet.autoPool.defaultRedundantIPNumber)")
	fs.BoolVar(&cfg.IPAMBlocks, "ipam-blocks", cfg.IPAMBlocks, "convert every SpiderIPPool to block format, its records in SpiderIPBlocks and its status a mirror of them (ipam.enableIPBlocks)")
	fs.StringVar(&cfg.AgentDaemonSet, "agent-daemonset", cfg.AgentDaemonSet, "namespace/name of the spiderpool-agent DaemonSet: conversion to block format waits until its rollout is complete; empty does not wait")
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "kubeconfig file; empty means in-cluster (env KUBECONFIG)")
	fs.TextVar(&logLevel, "log-level", logLevel, "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	logging.SetupLibraries(cfg.Logger.Handler())
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return controller.Run(ctx, cfg, restConfig)
}
