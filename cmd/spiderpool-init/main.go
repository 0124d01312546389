// Command spiderpool-init is the Helm chart's install job: it creates the default SpiderCoordinator,
// the optional default pools and the SpiderMultusConfig of Multus's cluster network, then exits.
// This file only turns flags and environment into initjob.Config (the settings are listed in the
// documentation of internal/initjob); everything else is in internal/initjob.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiderpool-go/spiderpool/internal/initjob"
	"github.com/spiderpool-go/spiderpool/internal/logging"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-init:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := initjob.DefaultConfig()
	kubeconfig := os.Getenv("KUBECONFIG")
	fs := flag.NewFlagSet("spiderpool-init", flag.ContinueOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "kubeconfig file; empty means in-cluster (env KUBECONFIG)")
	if err := cfg.Load(fs, os.Args[1:], os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if _, err := cfg.Plan(); err != nil { // bad values fail before anything is contacted
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	logging.SetupLibraries(log.Handler())

	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := initjob.Run(ctx, cfg, restConfig, log)
	if err != nil {
		return err
	}
	if n := res.ClusterNetwork; n != (initjob.MultusName{}) {
		// The one line on stdout: the keys of Multus's configuration that name the cluster
		// network. Multus reads a clusterNetwork with a "/" as a file path, so the namespace
		// goes into multusNamespace.
		fmt.Printf("multus clusterNetwork: %s, multusNamespace: %s\n", n.Name, n.Namespace)
	}
	log.Info("done", "objects", len(res.Actions))
	return nil
}
