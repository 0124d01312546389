// Command spiderpool-sandbox runs Spiderpool on one Linux machine: a real control plane, the
// controller, one agent per simulated node, network namespaces for the underlay, nodes and pods,
// and the real CNI chain. `up` builds it, prints the guides' tables and a connectivity matrix,
// and keeps it running until Ctrl-C (or returns with --detach); `down` removes it; `status`
// shows it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/logging"
	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: spiderpool-sandbox <command> [flags]

commands:
  up      build the sandbox, print tables and the connectivity matrix, run until Ctrl-C
          (--detach: leave it running; --verify: exit non-zero when a check fails)
  status  show the running sandbox
  down    stop the sandbox and remove everything it made (also after a crash)
  node    (inside a user-mode-linux node) run the node's agent and kubelet
  probe   (inside a node) one connectivity check from a pod's network namespace
`

func run(args []string) int {
	// The control plane's tools and the CRDs are found from the repository root; a binary run
	// from elsewhere looks next to itself (<root>/_output/bin).
	if _, err := testenv.RepoRoot(); err != nil {
		if exe, err := os.Executable(); err == nil {
			_ = os.Chdir(filepath.Dir(filepath.Dir(filepath.Dir(exe))))
		}
	}
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		return up(args[1:])
	case "down":
		err = down(args[1:])
	case "status":
		err = status(args[1:])
	case "node":
		err = node(args[1:])
	case "probe":
		err = probeCmd(args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "spiderpool-sandbox: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	return 0
}

// defaultDir is _output/sandbox at the repository root (or the working directory).
func defaultDir() string {
	root, err := testenv.RepoRoot()
	if err != nil {
		root, _ = os.Getwd()
	}
	return filepath.Join(root, "_output", "sandbox")
}

// defaultPluginDir is where this binary is: make build puts every binary in _output/bin.
func defaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return filepath.Join("_output", "bin")
	}
	return filepath.Dir(exe)
}

const defaultNodes = "master,worker"

type upFlags struct {
	dir, scenario, nodes, pluginDir, prefix, nodeKernel, logLevel, cluster string
	detach, verify, daemon                                                 bool
}

func up(args []string) int {
	var f upFlags
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&f.dir, "dir", defaultDir(), "state directory")
	fs.StringVar(&f.scenario, "scenario", sandbox.ScenarioPublicCloud, "public-cloud, aws (--cluster real) or overlay (--cluster stand-in)")
	fs.StringVar(&f.nodes, "nodes", defaultNodes, "node names, comma-separated (the aws scenario: master,worker1)")
	fs.StringVar(&f.pluginDir, "plugin-dir", defaultPluginDir(), "directory with our CNI plugins (make build)")
	fs.StringVar(&f.prefix, "prefix", "sbx", "name prefix of the sandbox's network namespaces")
	fs.StringVar(&f.nodeKernel, "node-kernel", "auto", "host: nodes are network namespaces of this kernel; uml: user-mode-linux guests with ipvlan (public-cloud); auto: uml where this kernel lacks ipvlan and guests boot")
	fs.StringVar(&f.logLevel, "log-level", "info", "level of the component logs in <dir>/logs")
	fs.StringVar(&f.cluster, "cluster", "stand-in", "real: a Kubernetes cluster (control plane, user-mode-linux nodes with containerd, kubelet and kube-proxy) with the chart installed by helm; stand-in: the earlier sandbox of plain processes and a stand-in kubelet")
	fs.BoolVar(&f.detach, "detach", false, "return once the sandbox is up and leave it running")
	fs.BoolVar(&f.verify, "verify", false, "exit non-zero when a connectivity check fails (tears down unless --detach)")
	fs.BoolVar(&f.daemon, "daemon", false, "internal: the detached sandbox process")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: up needs root (network namespaces, links, iptables)")
		return 1
	}
	dir, _ := filepath.Abs(f.dir)
	f.dir = dir
	if st, err := sandbox.ReadState(f.dir); err == nil && sandbox.Alive(st.PID) && st.PID != os.Getpid() {
		fmt.Fprintf(os.Stderr, "spiderpool-sandbox: a sandbox (pid %d) already runs from %s; run `spiderpool-sandbox down` first\n", st.PID, f.dir)
		return 1
	}
	if f.detach && !f.daemon {
		return detach(f, args)
	}
	if f.cluster == "real" {
		return serveCluster(f)
	}
	return serve(f)
}

// serve builds the sandbox in this process and keeps it until a signal (or, with --verify and
// without --detach, until the checks are done).
func serve(f upFlags) int {
	if err := os.MkdirAll(filepath.Join(f.dir, "logs"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(f.logLevel))
	if lf, err := os.OpenFile(filepath.Join(f.dir, "logs", "libraries.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		defer lf.Close()
		logging.SetupLibraries(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: level}))
	}
	st := &sandbox.State{PID: os.Getpid(), Prefix: f.prefix, Dir: f.dir, Scenario: f.scenario, Phase: sandbox.PhaseStarting, Started: time.Now()}
	if err := sandbox.WriteState(st); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := os.Stdout
	fmt.Fprintf(out, "spiderpool-sandbox: scenario %s, nodes %s, state in %s\n", f.scenario, f.nodes, f.dir)
	sb, err := sandbox.Up(ctx, sandbox.Options{
		Dir: f.dir, Prefix: f.prefix, Scenario: f.scenario, Nodes: strings.Split(f.nodes, ","),
		PluginDir: f.pluginDir, Progress: out, LogLevel: level, NodeKernel: f.nodeKernel,
	})
	if err != nil {
		st.Phase, st.Error = sandbox.PhaseFailed, err.Error()
		_ = sandbox.WriteState(st)
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: up failed:", err)
		fmt.Fprintf(os.Stderr, "component logs: %s\n", filepath.Join(f.dir, "logs"))
		return 1
	}
	st.Kubeconfig, st.ControllerAddr = sb.Kubeconfig, sb.ControllerAddr
	code := report(ctx, sb, out, f.verify, st)
	st.Phase = sandbox.PhaseReady
	_ = sandbox.WriteState(st)
	if f.verify && !f.detach {
		fmt.Fprintln(out, "tearing down (--verify without --detach)")
		return teardown(sb, f.dir, code)
	}
	fmt.Fprintf(out, "\nthe sandbox runs; try:\n  export KUBECONFIG=%s\n  kubectl get spiderippool\n", sb.Kubeconfig)
	if f.daemon {
		fmt.Fprintf(out, "stop it with: spiderpool-sandbox down --dir %s\n", f.dir)
	} else {
		fmt.Fprintln(out, "press Ctrl-C to tear it down")
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nsignal received: tearing down")
	return teardown(sb, f.dir, code)
}

func teardown(sb *sandbox.Sandbox, dir string, code int) int {
	start := time.Now()
	if err := sb.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: teardown:", err)
		code = 1
	}
	_ = os.Remove(sandbox.StatePath(dir))
	fmt.Printf("torn down in %.1fs\n", time.Since(start).Seconds())
	return code
}

// report prints the tables and the matrix; it returns 1 when --verify and a check failed.
func report(ctx context.Context, sb *sandbox.Sandbox, out io.Writer, verify bool, st *sandbox.State) int {
	if err := sb.PrintTables(ctx, out); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: tables:", err)
	}
	fmt.Fprintf(out, "\nconnectivity (%s, %s pods through the real CNI chain):\n", sb.Scenario(), sb.CNIType())
	m, err := sb.Connectivity(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox: connectivity:", err)
		st.Verify = "failed"
		return 1
	}
	m.Print(out)
	for _, n := range sb.Notes() {
		fmt.Fprintln(out, "note:", n)
	}
	fmt.Fprintf(out, "\nexport KUBECONFIG=%s\n", sb.Kubeconfig)
	if failed := m.Failed(); len(failed) > 0 {
		st.Verify = "failed"
		fmt.Fprintf(out, "verify: %d of the checks failed\n", len(failed))
		if verify {
			return 1
		}
		return 0
	}
	st.Verify = "passed"
	fmt.Fprintln(out, "verify: every check passed")
	return 0
}

// detach starts the sandbox as a background process (its output in <dir>/sandbox.log, shown
// here until it is up) and returns.
func detach(f upFlags, args []string) int {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	logPath := filepath.Join(f.dir, "sandbox.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	_ = os.Remove(sandbox.StatePath(f.dir))
	cmd := exec.Command(self, append([]string{"up", "--daemon", "--dir", f.dir}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	logFile.Close()
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()

	// Follow the log until the state says ready or failed, or the process dies.
	r, err := os.Open(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spiderpool-sandbox:", err)
		return 1
	}
	defer r.Close()
	br := bufio.NewReader(r)
	drain := func() {
		for {
			line, err := br.ReadString('\n')
			fmt.Print(line)
			if err != nil {
				return
			}
		}
	}
	for {
		drain()
		st, err := sandbox.ReadState(f.dir)
		if err == nil && st.PID == pid && (st.Phase == sandbox.PhaseReady || st.Phase == sandbox.PhaseFailed) {
			time.Sleep(100 * time.Millisecond)
			drain()
			if st.Phase == sandbox.PhaseFailed {
				return 1
			}
			fmt.Printf("\ndetached: sandbox pid %d, log %s\n", pid, logPath)
			if f.verify && st.Verify == "failed" {
				return 1
			}
			return 0
		}
		if !sandbox.Alive(pid) {
			drain()
			fmt.Fprintf(os.Stderr, "spiderpool-sandbox: the sandbox process exited during up (log %s)\n", logPath)
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	dir := fs.String("dir", defaultDir(), "state directory")
	prefix := fs.String("prefix", "", "namespace prefix (default: the state's, else sbx)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("down needs root")
	}
	if err := sandbox.Down(*dir, *prefix, os.Stdout); err != nil {
		return err
	}
	fmt.Println("sandbox removed")
	return nil
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	dir := fs.String("dir", defaultDir(), "state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := sandbox.ReadState(*dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Printf("no sandbox in %s\n", *dir)
		return nil
	}
	if err != nil {
		return err
	}
	alive := "running"
	if !sandbox.Alive(st.PID) {
		alive = "NOT running (crashed? run down to clean up)"
	}
	fmt.Printf("sandbox pid %d %s, phase %s, scenario %s, verify %q, up since %s\n", st.PID, alive, st.Phase, st.Scenario, st.Verify, st.Started.Format(time.RFC3339))
	if st.Kubeconfig != "" {
		fmt.Printf("export KUBECONFIG=%s\n", st.Kubeconfig)
	}
	if st.ControllerAddr != "" {
		fmt.Printf("controller HTTP API: %s (spiderpoolctl gc --address %s)\n", st.ControllerAddr, st.ControllerAddr)
	}
	if st.Error != "" {
		fmt.Printf("error: %s\n", st.Error)
	}
	return nil
}

func node(args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	var o sandbox.NodeOptions
	var nodeIP, gw string
	fs.StringVar(&o.Name, "name", "", "node name")
	fs.StringVar(&nodeIP, "node-ip", "", "the node's eth0 address")
	fs.StringVar(&gw, "gateway", "", "default gateway")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig reaching the control plane from the node")
	fs.StringVar(&o.PluginDir, "plugin-dir", "", "our CNI plugins")
	fs.StringVar(&o.ToolsDir, "tools-dir", "", "reference CNI plugins and Multus")
	fs.StringVar(&o.ClusterDefaultNAD, "cluster-default-nad", "", "namespace/name of the cluster network")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.NodeIP, err = netip.ParseAddr(nodeIP); err != nil {
		return fmt.Errorf("--node-ip: %w", err)
	}
	if o.Gateway, err = netip.ParseAddr(gw); err != nil {
		return fmt.Errorf("--gateway: %w", err)
	}
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return sandbox.RunNode(ctx, o)
}

func probeCmd(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	nsPath := fs.String("netns", "", "network namespace path")
	target := fs.String("target", "", "address or address:port")
	ping := fs.Bool("ping", false, "ping the address")
	tcp := fs.Bool("tcp", false, "connect and expect --banner")
	banner := fs.String("banner", "", "what the TCP server must answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return sandbox.Probe(*nsPath, *ping, *target, *tcp, *banner)
}
