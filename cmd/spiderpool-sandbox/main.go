// Command spiderpool-sandbox runs a guide of Spiderpool on one Linux machine, on a real cluster:
// a control plane, user-mode-linux nodes with containerd, the kubelet and kube-proxy, a registry
// with the project's images, and the chart installed by helm as the guide installs it. `up`
// builds it, applies the guide, prints what the guide shows and its checks, and keeps it running
// until Ctrl-C (or returns with --detach); `down` removes it; `status` shows it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: spiderpool-sandbox <command> [flags]

commands:
  up      build the cluster, install the chart, apply the guide, print its tables and checks,
          run until Ctrl-C (--detach: leave it running; --verify: exit non-zero when a check
          fails, and tear down unless --detach)
  status  show the running sandbox
  down    stop the sandbox and remove everything it made (also after a crash)
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

const defaultNodes = "master,worker"

type upFlags struct {
	dir, scenario, nodes, prefix string
	detach, verify, daemon       bool
}

func up(args []string) int {
	var f upFlags
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&f.dir, "dir", defaultDir(), "state directory")
	fs.StringVar(&f.scenario, "scenario", sandbox.ScenarioPublicCloud, "the guide: public-cloud (Alibaba Cloud), aws or overlay (Calico overlay + Macvlan)")
	fs.StringVar(&f.nodes, "nodes", defaultNodes, "node names, comma-separated (the aws scenario: master,worker1)")
	fs.StringVar(&f.prefix, "prefix", "sbx", "name prefix of the sandbox's network namespaces")
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
	return serveCluster(f)
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
	if st.Error != "" {
		fmt.Printf("error: %s\n", st.Error)
	}
	return nil
}
