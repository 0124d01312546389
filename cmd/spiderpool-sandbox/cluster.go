package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// serveCluster builds the real cluster (control plane, user-mode-linux nodes with containerd,
// kubelet and kube-proxy, the registry), installs the chart with helm as the guide does, applies
// the guide's objects and workloads, prints what the guide shows and the checks, and keeps it
// until a signal (or, with --verify and without --detach, tears it down after the checks).
func serveCluster(f upFlags) int {
	fail := func(st *sandbox.State, err error) int {
		if st != nil {
			st.Phase, st.Error = sandbox.PhaseFailed, err.Error()
			_ = sandbox.WriteState(st)
		}
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		fmt.Fprintf(os.Stderr, "logs: %s\n", f.dir)
		return 1
	}
	tools, err := testenv.ToolsBin()
	if err != nil {
		return fail(nil, err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return fail(nil, err)
	}
	st := &sandbox.State{PID: os.Getpid(), Prefix: f.prefix, Dir: f.dir, Scenario: f.scenario, Phase: sandbox.PhaseStarting, Started: time.Now()}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fail(nil, err)
	}
	if err := sandbox.WriteState(st); err != nil {
		return fail(nil, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := os.Stdout
	fmt.Fprintf(out, "spiderpool-sandbox: real cluster, scenario %s, nodes %s, state in %s\n", f.scenario, f.nodes, f.dir)
	nodes := strings.Split(f.nodes, ",")
	if f.scenario == sandbox.ScenarioAWS && f.nodes == defaultNodes {
		nodes = nil // the AWS guide's master and worker1
	}
	c, err := sandbox.UpCluster(ctx, sandbox.ClusterOptions{
		Dir: f.dir, Prefix: f.prefix, Scenario: f.scenario, Nodes: nodes,
		ToolsBin: tools, ImagesDir: filepath.Join(root, "_output", "images"), ChartDir: filepath.Join(root, "charts", "spiderpool"),
		Progress: out,
	})
	if err != nil {
		return fail(st, fmt.Errorf("up: %w", err))
	}
	st.Kubeconfig = c.Kubeconfig
	_ = sandbox.WriteState(st)
	code := 0
	if err := c.Install(ctx); err != nil {
		code = fail(st, fmt.Errorf("install: %w", err))
	} else if err := c.ApplyGuide(ctx); err != nil {
		code = fail(st, fmt.Errorf("guide: %w", err))
	}
	show := func(args ...string) {
		o, err := c.Kubectl(ctx, args...)
		if err != nil {
			o = err.Error()
		}
		fmt.Fprintf(out, "\n$ kubectl %s\n%s", strings.Join(args, " "), o)
	}
	show("get", "nodes", "-o", "wide")
	show("get", "pods", "-A", "-o", "wide")
	if code == 0 {
		show("get", "spiderippool")
		show("get", "se", "-A")
		t0 := time.Now()
		checks, err := c.Verify(ctx)
		if err != nil {
			code = fail(st, fmt.Errorf("verify: %w", err))
		} else {
			fmt.Fprintf(out, "\nthe guide's checks from the pods (kubectl exec) and from the client on the switch:\n")
			if n := sandbox.PrintChecks(out, checks); n > 0 {
				st.Verify = "failed"
				fmt.Fprintf(out, "verify: %d of %d checks failed\n", n, len(checks))
				if f.verify {
					code = 1
				}
			} else {
				st.Verify = "passed"
				fmt.Fprintf(out, "verify: all %d checks passed (%.1fs)\n", len(checks), time.Since(t0).Seconds())
			}
		}
	}
	fmt.Fprintln(out, "\nphases:")
	for _, p := range c.Phases {
		fmt.Fprintf(out, "  %-46s %6.1fs\n", p.Name, p.Took.Seconds())
	}
	for _, n := range c.Nodes {
		fmt.Fprintf(out, "  node %-41s peak %d MiB\n", n.Name, n.PeakMiB())
	}
	if st.Phase != sandbox.PhaseFailed {
		st.Phase = sandbox.PhaseReady
	}
	_ = sandbox.WriteState(st)
	if (f.verify || code != 0) && !f.detach {
		fmt.Fprintln(out, "tearing down")
		t0 := time.Now()
		if err := c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "spiderpool-sandbox: teardown:", err)
			code = 1
		}
		_ = os.Remove(sandbox.StatePath(f.dir))
		fmt.Fprintf(out, "torn down in %.1fs\n", time.Since(t0).Seconds())
		return code
	}
	fmt.Fprintf(out, "\nthe cluster runs; try:\n  export KUBECONFIG=%s\n  kubectl get pods -A -o wide\n", c.Kubeconfig)
	<-ctx.Done()
	fmt.Fprintln(out, "\nsignal received: tearing down")
	err = c.Close()
	_ = os.Remove(sandbox.StatePath(f.dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: teardown:", err)
		return 1
	}
	return code
}
