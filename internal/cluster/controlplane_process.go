package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Component names; each is also the name of its binary, its log file and its pid file.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// components in start order; Stop goes the other way.
var components = []string{Etcd, APIServer, ControllerManager, Scheduler}

// process is one control-plane component running as a child of this process.
type process struct {
	name    string
	logPath string
	pidPath string
	started time.Time
	pid     int

	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited is closed
}

// startProcess runs bin with args inside n, its output appended to logPath. The forking goroutine
// locks its OS thread, enters n and stays there, blocked in Wait, for the life of the child: the
// child inherits the thread's namespace, and Pdeathsig (which fires when the forking thread ends,
// not the process) then kills the child only if this whole process dies. The thread is never
// unlocked, so the runtime throws it away with its namespace when the goroutine returns.
func startProcess(n ns.NetNS, name, bin string, args, env []string, logPath, pidPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	// Its own process group, so that a later KillLeftovers can reach anything it forked.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	p := &process{name: name, logPath: logPath, pidPath: pidPath, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer logf.Close()
		runtime.LockOSThread()
		if err := n.Set(); err != nil {
			started <- fmt.Errorf("enter %s: %w", n.Path(), err)
			return
		}
		p.started = time.Now()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		p.stop(0)
		return nil, fmt.Errorf("%s pid file: %w", name, err)
	}
	return p, nil
}

// done reports whether the process has exited.
func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, with the tail of its log.
func (p *process) exitError() error {
	how := "exited"
	if p.waitErr != nil {
		how = p.waitErr.Error()
	}
	return fmt.Errorf("%s (pid %d) stopped: %s; last lines of %s:\n%s", p.name, p.pid, how, p.logPath, logTail(p.logPath, 20))
}

// stop asks the process to terminate, waits up to grace and then kills its process group. The
// group is killed only while the leader is unreaped, so its id cannot belong to anyone else yet.
func (p *process) stop(grace time.Duration) {
	if p.done() {
		_ = os.Remove(p.pidPath)
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
	_ = os.Remove(p.pidPath)
}

// logTail returns at most the last n lines of the file at path.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const window = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// KillLeftovers kills the control-plane processes a crashed run left behind in the state
// directory dir: those named by its pid files, and any other running component binary whose
// command line names dir (one that died before its pid file was written). A process is killed
// only when its command line names dir, so a pid reused by an unrelated process is left alone.
func KillLeftovers(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("leftovers of %s: %w", dir, err)
	}
	var pids []int
	files, _ := filepath.Glob(filepath.Join(abs, pidsDir, "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("leftovers of %s: %w", abs, err)
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			argv := cmdline(pid)
			if len(argv) > 0 && slices.Contains(components, filepath.Base(argv[0])) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	pids = slices.Compact(pids)

	self := os.Getpid()
	var killed []int
	for _, pid := range pids {
		if pid == self || !namesDir(cmdline(pid), abs) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		killed = append(killed, pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			return fmt.Errorf("leftovers of %s: process %d survives SIGKILL", abs, pid)
		}
	}
	for _, f := range files {
		_ = os.Remove(f)
	}
	return nil
}

// cmdline returns the arguments of process pid, nil when it is gone.
func cmdline(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// namesDir reports whether an argument is dir or a path below it (flags come as --flag=path).
func namesDir(argv []string, dir string) bool {
	for _, a := range argv {
		if _, v, ok := strings.Cut(a, "="); ok {
			a = v
		}
		if a == dir || strings.HasPrefix(a, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// alive reports whether pid runs; a zombie (killed, waiting for its parent to reap it) does not.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may itself hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// errNoTools tells the user how to get the binaries.
var errNoTools = errors.New("run `make tools` (hack/build-tools.sh @cluster) to build them")

// checkTools verifies that bin holds every control-plane binary.
func checkTools(bin string) error {
	var missing []string
	for _, name := range components {
		st, err := os.Stat(filepath.Join(bin, name))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s missing in %s: %w", strings.Join(missing, ", "), bin, errNoTools)
	}
	return nil
}
