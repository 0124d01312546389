package integration

import (
	"context"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spiderpool-go/spiderpool/internal/controller"
)

// runManager runs a controller-runtime manager with what setup registers until the test ends.
// Cleanups registered before the call run after the manager has stopped. Metrics and probes are
// off, there is no leader election, and controller names may repeat: each test starts its own
// manager in this one process.
func runManager(t *testing.T, setup func(mgr ctrl.Manager) error) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	if err := setup(mgr); err != nil {
		t.Fatalf("set up manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// runController runs controller.Run in this process until the test ends, with what the suites
// share: probes and metrics off, no leader election, no webhooks (they have their own suite), no
// default SpiderCoordinator (other suites create and delete "default"), a 10 min full GC scan and
// controller names that may repeat. mutate changes what a test needs.
func runController(t *testing.T, mutate func(*controller.Config)) {
	t.Helper()
	cfg := controller.DefaultConfig()
	cfg.HealthAddr, cfg.MetricsAddr = "0", "0"
	cfg.LeaderElection = false
	cfg.WebhookPort = 0
	cfg.EnsureCoordinator = false
	cfg.SkipNameValidation = true
	cfg.GCInterval = 10 * time.Minute
	cfg.Logger = quietLogger()
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx, cfg, env.Config) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller.Run: %v", err)
		}
	})
}
