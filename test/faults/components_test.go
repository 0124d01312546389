package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// proc is one of our daemons run as a process through its own proxy listener. Kill and Start
// may be called from any goroutine.
type proc struct {
	name       string // the proxy client name and the log file's
	binary     string
	args       []string
	kubeconfig string
	logPath    string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	starts  int
	crashes int // exits nobody asked for, each followed by a restart
}

// newProc prepares a daemon: its kubeconfig through the proxy and its log file.
func newProc(t *testing.T, name, binary string, args ...string) *proc {
	t.Helper()
	kc, err := proxy.Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(workDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, binary: filepath.Join(bin, binary), args: args,
		kubeconfig: filepath.Join(dir, "kubeconfig"), logPath: filepath.Join(dir, "log")}
	if err := os.WriteFile(p.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("last lines of %s's log:\n%s", name, tail(p.logPath, 30))
		}
	})
	return p
}

// Start runs the daemon unless it runs.
func (p *proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== start %d\n", p.starts+1)
	cmd := exec.Command(p.binary, append(p.args, "--kubeconfig", p.kubeconfig)...)
	cmd.Env = append(os.Environ(), "SPIDERPOOL_NAMESPACE=kube-system")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	f.Close()
	p.cmd, p.done = cmd, make(chan struct{})
	p.starts++
	done := p.done
	go func() {
		_ = cmd.Wait()
		close(done)
		p.restartAfterCrash(cmd)
	}()
	return nil
}

// restartAfterCrash plays the kubelet's restartPolicy Always: a daemon that exits on its own
// (the controller does when it loses its lease while the apiserver is down) is started again a
// second later. Exits caused by Kill or Stop are left alone.
func (p *proc) restartAfterCrash(cmd *exec.Cmd) {
	p.mu.Lock()
	crashed := p.cmd == cmd
	if crashed {
		p.cmd = nil
		p.crashes++
	}
	p.mu.Unlock()
	if crashed {
		time.Sleep(time.Second)
		_ = p.Start()
	}
}

// Kill sends SIGKILL and waits for the process to be gone: no shutdown path runs.
func (p *proc) Kill() { p.signal(syscall.SIGKILL) }

// Stop ends the daemon with SIGTERM (its graceful path), SIGKILL after 20 s.
func (p *proc) Stop() { p.signal(syscall.SIGTERM) }

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	cmd, done := p.cmd, p.done
	p.cmd = nil // before the exit: not a crash
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Running reports whether the process is up.
func (p *proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// agent is a node's spiderpool-agent.
type agent struct {
	*proc
	node   string
	socket string
}

// newAgent prepares (does not start) the agent of node, with the chart's defaults (probes and
// metrics on, on free loopback ports since several agents share this host).
func newAgent(t *testing.T, node string) *agent {
	t.Helper()
	socket := filepath.Join(workDir, "agent-"+node+".sock")
	p := newProc(t, "agent-"+node, "spiderpool-agent",
		"--node-name", node, "--socket-path", socket, "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	return &agent{proc: p, node: node, socket: socket}
}

// StartReady starts the agent and waits until it answers its health check.
func (a *agent) StartReady() error {
	if err := a.Start(); err != nil {
		return err
	}
	c := agentclient.New(a.socket, agentclient.WithTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if !a.Running() {
			return false, fmt.Errorf("agent %s exited:\n%s", a.node, tail(a.logPath, 20))
		}
		return c.Healthy(ctx) == nil, nil
	})
	if err != nil {
		return fmt.Errorf("agent %s not healthy: %w", a.node, err)
	}
	return nil
}

// controllerArgs are the chart's defaults for the controller out of cluster (probes, HTTP API and
// metrics on, on free loopback ports since several replicas share this host), the GC's 600 s full
// scan included: every leak here must be found by the event-driven GC or the startup scan, as in
// production. Webhooks are off: nothing here goes through admission, and without them two
// overlapping pools can be created at all.
func controllerArgs(extra ...string) []string {
	return append([]string{"--leader-elect", "--webhook-port", "0", "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--install-namespace", "kube-system"}, extra...)
}

// newController prepares (does not start) a spiderpool-controller replica.
func newController(t *testing.T, name string, extra ...string) *proc {
	t.Helper()
	return newProc(t, name, "spiderpool-controller", controllerArgs(extra...)...)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(data, nil)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
