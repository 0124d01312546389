// Command spiderpool-agent is the per-node Spiderpool daemon: it serves the
// IPAM and coordinator plugins on a unix socket. This file only turns flags
// and environment into agent.Config; everything else is in internal/agent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/cniinstall"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/logging"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
	"github.com/spiderpool-go/spiderpool/internal/nodesysctl"
)

func main() {
	run := run
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "install-cni":
			run = func() error { return installCNI(os.Args[2:]) }
		case "multus-config":
			run = func() error { return multusConfig(os.Args[2:], os.Stdout) }
		case "multus-kubeconfig":
			run = func() error { return multusKubeconfig(os.Args[2:]) }
		case "tune-sysctl":
			run = func() error { return tuneSysctl(os.Args[2:], os.Stdout) }
		}
	}
	// -h on a subcommand is a request, not a failure: the flag set has printed the help.
	if err := run(); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "spiderpool-agent:", err)
		os.Exit(1)
	}
}

// installCNI is `spiderpool-agent install-cni`: the DaemonSet's init container copies our plugins
// to the node with it, since the image has no shell.
func installCNI(args []string) error {
	fs := flag.NewFlagSet("spiderpool-agent install-cni", flag.ContinueOnError)
	from := fs.String("from", "/opt/spiderpool/cni/bin", "directory of the plugin binaries in the image")
	to := fs.String("to", "/host/opt/cni/bin", "the node's CNI binary directory, mounted (Helm global.cniBinHostPath)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names, err := cniinstall.Install(*from, *to)
	if err != nil {
		return err
	}
	fmt.Printf("installed %s into %s\n", strings.Join(names, ", "), *to)
	return nil
}

// tuneSysctl is `spiderpool-agent tune-sysctl`: the DaemonSet's privileged init container sets the
// node's network sysctls with it when spiderpoolAgent.tuneSysctlConfig is on (the agent itself runs
// without privileges, and /proc/sys is read-only to it).
func tuneSysctl(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("spiderpool-agent tune-sysctl", flag.ContinueOnError)
	root := fs.String("proc-sys", "/proc/sys", "where the sysctls are, in the host network namespace")
	ipv4 := fs.Bool("enable-ipv4", true, "write the IPv4 settings (ipam.enableIPv4)")
	ipv6 := fs.Bool("enable-ipv6", true, "write the IPv6 settings (ipam.enableIPv6)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tune-sysctl: unexpected arguments %q", fs.Args())
	}
	res, err := nodesysctl.Apply(*root, *ipv4, *ipv6)
	for _, r := range res {
		switch {
		case r.Missing:
			fmt.Fprintf(stdout, "%s: not in this kernel, skipped\n", r.Name)
		case r.Old == r.Value:
			fmt.Fprintf(stdout, "%s = %s already\n", r.Name, r.Value)
		default:
			fmt.Fprintf(stdout, "%s = %s (was %s): %s\n", r.Name, r.Value, r.Old, r.Why)
		}
	}
	if err != nil {
		return fmt.Errorf("tune-sysctl: %w", err)
	}
	return nil
}

// multusConfig is `spiderpool-agent multus-config`: an init container of the chart's Multus
// DaemonSet writes the node's 00-multus.conf with it (the image has no shell), from the raw
// multus.multusCNI.defaultCniCRName and the release namespace, so that the cluster network is
// resolved by multusconf.ResolveClusterNetwork like the agent's --cluster-default-nad and
// spiderpool-init's.
func multusConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("spiderpool-agent multus-config", flag.ContinueOnError)
	var c multusconf.NodeConf
	fs.StringVar(&c.ClusterNetwork, "cluster-network", "", "NetworkAttachmentDefinition of eth0: name (in --namespace) or namespace/name (multus.multusCNI.defaultCniCRName)")
	fs.StringVar(&c.Namespace, "namespace", os.Getenv("SPIDERPOOL_NAMESPACE"), "release namespace, where a bare --cluster-network name lives (env SPIDERPOOL_NAMESPACE)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig-path", "/etc/cni/net.d/multus.d/multus.kubeconfig", "path on the node of the kubeconfig Multus uses")
	fs.StringVar(&c.ConfDir, "conf-dir", "/etc/cni/net.d", "the node's CNI configuration directory (global.cniConfHostPath)")
	fs.StringVar(&c.BinDir, "bin-dir", "/opt/cni/bin", "the node's CNI binary directory (global.cniBinHostPath)")
	fs.StringVar(&c.LogLevel, "multus-log-level", "", "Multus' log level: debug, verbose, error or panic (multus.multusCNI.log.logLevel)")
	fs.StringVar(&c.LogFile, "multus-log-file", "", "Multus' log file on the node (multus.multusCNI.log.logFile)")
	out := fs.String("out", "", "file to write, replaced atomically (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("multus-config: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return errors.New("multus-config: --out is required")
	}
	o, err := c.Options()
	if err != nil {
		return err
	}
	data, err := multusconf.ThinConfig(o)
	if err != nil {
		return err
	}
	if err := multusconf.WriteFile(*out, data); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s: clusterNetwork %q in multusNamespace %q\n", *out, o.ClusterNetwork, o.MultusNamespace)
	return err
}

// multusKubeconfig is `spiderpool-agent multus-kubeconfig`: a container of the chart's Multus
// DaemonSet keeps the node's Multus kubeconfig with it, from the pod's service account, and
// rewrites it when the kubelet rotates the token. It replaces Multus' entrypoint for this file,
// whose "https://[IPv4]:port" server a Multus built with a current Go cannot parse.
func multusKubeconfig(args []string) error {
	fs := flag.NewFlagSet("spiderpool-agent multus-kubeconfig", flag.ContinueOnError)
	out := fs.String("out", "/host/etc/cni/net.d/multus.d/multus.kubeconfig", "the kubeconfig file on the node, mounted")
	saDir := fs.String("service-account-dir", "/var/run/secrets/kubernetes.io/serviceaccount", "directory of the pod's token and ca.crt")
	every := fs.Duration("interval", 2*time.Second, "how often the file is checked against the token and CA")
	removeOnExit := fs.Bool("remove-on-exit", false, "remove the file when stopped (multus.multusCNI.uninstall)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("multus-kubeconfig: unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := multusconf.KeepKubeconfig(ctx, *out, *saDir, os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"), *every,
		func(format string, a ...any) { fmt.Printf(format+"\n", a...) })
	if err == nil && *removeOnExit {
		if rerr := os.Remove(*out); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("multus-kubeconfig: %w", rerr)
		}
		fmt.Printf("removed %s\n", *out)
	}
	return err
}

func run() error {
	cfg := agent.DefaultConfig(firstEnv("SPIDERPOOL_NODE_NAME", "NODE_NAME"))
	if ns := os.Getenv("SPIDERPOOL_NAMESPACE"); ns != "" {
		cfg.InstallNamespace = ns
	}
	if v := os.Getenv("SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS: %w", err)
		}
		cfg.MaxRecords = n
	}
	kubeconfig := os.Getenv("KUBECONFIG")
	logLevel := slog.LevelInfo

	fs := flag.NewFlagSet("spiderpool-agent", flag.ContinueOnError)
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "node this agent serves (env SPIDERPOOL_NODE_NAME, NODE_NAME)")
	fs.StringVar(&cfg.SocketPath, "socket-path", cfg.SocketPath, "unix socket of the plugin API (Helm global.ipamUNIXSocketHostPath)")
	fs.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "TCP address of the probes (spiderpoolAgent.httpPort)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, `TCP address of /metrics; "" disables (spiderpoolAgent.prometheus.port)`)
	fs.BoolVar(&cfg.DebugMetrics, "debug-metrics", cfg.DebugMetrics, "export the spiderpool_debug_ metrics too (spiderpoolAgent.prometheus.enabledDebugMetric)")
	fs.BoolVar(&cfg.EnableIPv4, "enable-ipv4", cfg.EnableIPv4, "give every interface an IPv4 address (ipam.enableIPv4)")
	fs.BoolVar(&cfg.EnableIPv6, "enable-ipv6", cfg.EnableIPv6, "give every interface an IPv6 address (ipam.enableIPv6)")
	fs.BoolVar(&cfg.EnableStatefulSet, "enable-statefulset", cfg.EnableStatefulSet, "keep the addresses of StatefulSet pods across recreation (ipam.enableStatefulSet)")
	fs.BoolVar(&cfg.EnableKubevirtStaticIP, "enable-kubevirt-static-ip", cfg.EnableKubevirtStaticIP, "a KubeVirt VM keeps its addresses across its pods, in the SpiderEndpoint of its VirtualMachineInstance (ipam.enableKubevirtStaticIP)")
	fs.BoolVar(&cfg.EnableAutoPool, "enable-auto-pool", cfg.EnableAutoPool, "ipam.spiderSubnet.enable and autoPool.enable")
	fs.StringVar(&cfg.InstallNamespace, "install-namespace", cfg.InstallNamespace, "Spiderpool's namespace (env SPIDERPOOL_NAMESPACE)")
	fs.StringVar(&cfg.ClusterDefaultNAD, "cluster-default-nad", cfg.ClusterDefaultNAD, "Multus cluster network, name or namespace/name (multus.multusCNI.defaultCniCRName)")
	fs.StringVar(&cfg.CoordinatorName, "coordinator-name", cfg.CoordinatorName, "SpiderCoordinator to serve (coordinator.name)")
	fs.DurationVar(&cfg.AllocateTimeout, "allocate-timeout", cfg.AllocateTimeout, "time budget of one ADD or DEL, retries included")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may finish after SIGTERM")
	fs.BoolVar(&cfg.Unbatched, "unbatched", cfg.Unbatched, "write each request's pool update on its own (benchmark baseline)")
	fs.IntVar(&cfg.MaxRecords, "max-records", cfg.MaxRecords, "maximum records of one IPPool that keeps them in its status (env SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS); pools in block format are not capped")
	fs.BoolVar(&cfg.EnableIPConflictDetection, "enable-ip-conflict-detection", cfg.EnableIPConflictDetection, "ask the plugin to probe for address conflicts (ipam.enableIPConflictDetection)")
	fs.BoolVar(&cfg.EnableGatewayDetection, "enable-gateway-detection", cfg.EnableGatewayDetection, "ask the plugin to probe the gateway (ipam.enableGatewayDetection)")
	fs.DurationVar(&cfg.ConflictQuarantine, "ip-conflict-quarantine", ipam.DefaultQuarantine, "how long an address found in use by another host is held back from allocation")
	fs.Func("kube-api-qps", fmt.Sprintf("API client rate limit (default %v)", cfg.KubeAPIQPS), func(s string) error {
		f, err := strconv.ParseFloat(s, 32)
		cfg.KubeAPIQPS = float32(f)
		return err
	})
	fs.IntVar(&cfg.KubeAPIBurst, "kube-api-burst", cfg.KubeAPIBurst, "API client burst")
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "kubeconfig file; empty means in-cluster (env KUBECONFIG)")
	fs.TextVar(&logLevel, "log-level", logLevel, "debug, info, warn or error (spiderpoolAgent.debug.logLevel)")
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
	return agent.Run(ctx, cfg, restConfig)
}

// firstEnv returns the first non-empty variable of names.
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
