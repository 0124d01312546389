package uml

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// Where Debian's user-mode-linux package puts the kernel and its modules. Variables so that a
// sandbox on another distribution can point elsewhere before the first Boot.
var (
	Binary     = "/usr/bin/linux.uml"
	ModulesDir = "/usr/lib/uml/modules"
)

// GuestEnv is set (to "1") in the environment of every command a guest runs; InGuest reads it.
const GuestEnv = "SPIDERPOOL_UML_GUEST"

// Defaults of Options.
const (
	DefaultMemory      = "256M"
	DefaultBootTimeout = 60 * time.Second
)

// Paths inside the guest.
const (
	guestXchg    = "/run/uml/x"       // the exchange directory, read-write
	guestHostTmp = "/run/uml/hosttmp" // the host's /tmp, read-only (go test binaries live there)
	guestModRoot = "/run/uml/modroot" // modprobe -d root: lib/modules -> ModulesDir
)

// Console markers the guest's init prints; nothing else on the console is interpreted.
const (
	markerPrefix = "@@uml@@ "
	markerReady  = "ready"
	markerFail   = "fail"
	markerDone   = "done"
)

// InGuest reports whether the calling process runs inside a guest started by this package.
func InGuest() bool { return os.Getenv(GuestEnv) == "1" }

// Available returns nil when a guest can boot on this machine, else an error naming what is
// missing.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("user-mode-linux guests need root (network namespaces and tap devices)")
	}
	if InGuest() {
		return errors.New("already inside a user-mode-linux guest")
	}
	if fi, err := os.Stat(Binary); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("no user-mode-linux kernel at %s (Debian package user-mode-linux)", Binary)
	}
	if _, err := kernelRelease(); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return errors.New("no /dev/net/tun: the guest's NICs are tap devices")
	}
	for _, tool := range []string{"sh", "setsid", "stty", "mount", "mountpoint", "modprobe", "ip", "env"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the guest runs the host's %s, which is not in PATH", tool)
		}
	}
	return nil
}

// Require skips the test with Available's reason when no guest can boot here, and under -short
// (a guest takes seconds to boot).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: boots a user-mode-linux guest (-short)")
	}
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// kernelRelease returns the release of the modules under ModulesDir (e.g. "6.1.176"): the
// package ships one.
func kernelRelease() (string, error) {
	entries, err := os.ReadDir(ModulesDir)
	if err != nil {
		return "", fmt.Errorf("no user-mode-linux modules directory %s: %w", ModulesDir, err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(ModulesDir, e.Name(), "modules.dep")); err == nil {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no modules.dep under %s/<release>: modules cannot be loaded in the guest", ModulesDir)
}

// NIC is one network interface of the guest: a tap device in Options.NetNS on the host side.
type NIC struct {
	// Tap is the host-side tap device; linux.uml creates it in Options.NetNS when it boots and
	// it disappears with the guest. Required, at most 15 characters.
	Tap string
	// Name is the guest interface name; default "eth<index>".
	Name string
	// MAC is the guest interface's MAC address; default random.
	MAC net.HardwareAddr
	// Addrs are configured on the guest interface at boot.
	Addrs []netip.Prefix
	// HostAddrs are configured on the tap, in Options.NetNS, once the guest is up.
	HostAddrs []netip.Prefix
}

// Options describe a guest.
type Options struct {
	// Memory is the guest's RAM as linux.uml's mem= takes it; default DefaultMemory.
	Memory string
	// NetNS is where linux.uml runs, hence where its taps live. Required by Start; Boot
	// makes a new namespace owned by the test when it is nil (testutil.NewNS).
	NetNS ns.NetNS
	// NICs are the guest's network interfaces, in order (the kernel's vec0, vec1, ...).
	NICs []NIC
	// Modules are loaded in order at boot, each "name [param=value ...]", e.g. "8021q" or
	// "bonding max_bonds=0" (the default max_bonds=1 would create a bond0).
	Modules []string
	// BootTimeout bounds the boot up to the point where the guest takes commands; default
	// DefaultBootTimeout.
	BootTimeout time.Duration
	// Env holds "KEY=value" entries added to the environment of the test RunTestInGuest runs
	// in the guest (host paths in values must be translated with GuestPath).
	Env []string
	// RunTimeout bounds the guest run of RunTestInGuest; default: the test's deadline minus a
	// margin, else 10 minutes.
	RunTimeout time.Duration
	// TempDir is where the guest's exchange directory is made (default os.TempDir()): a program
	// that must find its guests' files after a crash puts them under its own state.
	TempDir string
	// OverlayRoot makes the guest's root an overlay of the host's / (read-only, below) and a
	// tmpfs (above), so that programs which write all over the file system (containerd, the
	// kubelet) run unchanged while every write stays in guest memory. The root sizes RootSize.
	OverlayRoot bool
	// RootSize bounds the overlay root's tmpfs (tmpfs's size=, e.g. "768m"); default half the
	// guest's memory.
	RootSize string
	// Mounts are host directories the guest sees read-write through hostfs (e.g. where its
	// programs write their logs for the host to read).
	Mounts []Mount
}

// Mount is a host directory mounted into the guest.
type Mount struct {
	HostPath  string // absolute, must exist
	GuestPath string // absolute; created in the guest
}

// Guest is a running user-mode-linux guest.
type Guest struct {
	netns    ns.NetNS
	dir      string // exchange directory on the host
	pid      int    // linux.uml's pid, also its process group id
	bootTime time.Duration

	stdin   io.WriteCloser
	exited  chan struct{} // closed when linux.uml's main process has exited
	waitErr error         // set before exited is closed
	console *ring
	// consoleDone is closed when the console reaches EOF.
	consoleDone chan struct{}

	mu      sync.Mutex
	nextID  int
	waiters map[int]chan struct{}
	ready   chan string // the ready or fail marker line's argument, once
	closed  bool
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	moduleRE = regexp.MustCompile(`^[A-Za-z0-9_-]+( [A-Za-z0-9_.,=-]+)*$`)
	pathRE   = regexp.MustCompile(`^/[A-Za-z0-9_./+-]*$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Boot starts a guest (Start) for a test and returns once it takes commands. Without
// Options.NetNS the guest gets a new namespace owned by the test. A cleanup registered on t
// kills the guest together with every process it forked and fails the test if any survives; it
// also prints the guest's console when the test failed. Boot skips the test when Available
// reports an error and fails it when the guest does not come up.
func Boot(t testing.TB, opts Options) *Guest {
	t.Helper()
	Require(t)
	if opts.NetNS == nil {
		opts.NetNS = testutil.NewNS(t)
	}
	g, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uml: guest console (last %d bytes):\n%s", g.console.max, g.console.String())
		}
		if err := g.Close(); err != nil {
			t.Errorf("uml: %v", err)
		}
	})
	t.Logf("uml: guest booted in %s (pid %d, netns %s, modules %v)", g.bootTime.Round(time.Millisecond), g.pid, opts.NetNS.Path(), opts.Modules)
	return g
}

// Start boots a guest in opts.NetNS (required) and returns once it takes commands; the caller
// must Close it. Tests use Boot; Start serves programs such as the sandbox. A guest that does not
// come up is killed, and the error carries the reason and the end of its console.
func Start(opts Options) (_ *Guest, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.NetNS == nil {
		return nil, errors.New("uml: Options.NetNS is required")
	}
	release, err := kernelRelease()
	if err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("uml: %w", err)
	}
	if opts.Memory == "" {
		opts.Memory = DefaultMemory
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = DefaultBootTimeout
	}

	dir, err := os.MkdirTemp(opts.TempDir, "uml-")
	if err != nil {
		return nil, fmt.Errorf("uml: exchange directory: %w", err)
	}
	g := &Guest{
		netns:       opts.NetNS,
		dir:         dir,
		exited:      make(chan struct{}),
		console:     &ring{max: 64 << 10},
		consoleDone: make(chan struct{}),
		waiters:     map[int]chan struct{}{},
		ready:       make(chan string, 1),
	}
	defer func() {
		if err != nil {
			if cerr := g.Close(); cerr != nil {
				err = fmt.Errorf("%w; %w", err, cerr)
			}
			if tail := g.console.tail(4 << 10); tail != "" {
				err = fmt.Errorf("%w\nguest console:\n%s", err, tail)
			}
		}
	}()
	if !pathRE.MatchString(dir) {
		return nil, fmt.Errorf("uml: exchange directory %q has characters hostfs mount options cannot carry; set TMPDIR", dir)
	}
	initPath := filepath.Join(dir, "init.sh")
	if err := os.WriteFile(initPath, []byte(initScript(opts, dir, release)), 0o755); err != nil {
		return nil, fmt.Errorf("uml: write init: %w", err)
	}

	args := []string{
		"mem=" + opts.Memory, "rootfstype=hostfs", "rootflags=/", "ro", "init=" + initPath,
		"con=null", "con0=fd:0,fd:1", "uml_dir=" + filepath.Join(dir, "uml"), "umid=" + filepath.Base(dir),
		"quiet", "loglevel=3",
	}
	for i, nic := range opts.NICs {
		v := fmt.Sprintf("vec%d:transport=tap,ifname=%s", i, nic.Tap)
		if nic.MAC != nil {
			v += ",mac=" + nic.MAC.String()
		}
		args = append(args, v)
	}
	cmd := exec.Command(Binary, args...)
	cmd.Dir = dir
	// linux.uml backs the guest's RAM with an unlinked file in TMPDIR; tmpfs keeps it off disk.
	tmp := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		tmp = "/dev/shm"
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=" + tmp}
	if shim, err := XStateShim(); err == nil {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+shim)
	} else {
		fmt.Fprintf(g.console, "uml: %v\n", err)
	}
	// linux.uml is the init of a new PID namespace: when it dies, the kernel kills every helper
	// process it forked (one per guest address space, I/O helpers), which do not die with it
	// otherwise. Pdeathsig kills it when our process dies; the process group lets Close reach
	// all of them at once and check that none is left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWPID}
	cmd.Stderr = g.console
	if g.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("uml: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("uml: %w", err)
	}

	start := time.Now()
	if err := g.start(cmd); err != nil {
		return nil, fmt.Errorf("uml: start %s in %s: %w", Binary, opts.NetNS.Path(), err)
	}
	go g.readConsole(stdout)

	timer := time.NewTimer(opts.BootTimeout)
	defer timer.Stop()
	select {
	case line := <-g.ready:
		if line != markerReady {
			return nil, fmt.Errorf("uml: guest init failed: %s (linux.uml pid %d)", strings.TrimPrefix(line, markerFail+" "), g.pid)
		}
	case <-g.exited:
		// The console may still hold the init's last words: read them before judging.
		select {
		case <-g.consoleDone:
		case <-time.After(2 * time.Second):
		}
		select {
		case line := <-g.ready:
			if line != markerReady {
				return nil, fmt.Errorf("uml: guest init failed: %s (linux.uml pid %d)", strings.TrimPrefix(line, markerFail+" "), g.pid)
			}
		default:
		}
		return nil, fmt.Errorf("uml: linux.uml (pid %d) exited during boot: %v", g.pid, g.waitErr)
	case <-timer.C:
		return nil, fmt.Errorf("uml: guest not up after %s (linux.uml pid %d)", opts.BootTimeout, g.pid)
	}
	g.bootTime = time.Since(start)

	err = opts.NetNS.Do(func(ns.NetNS) error {
		for _, nic := range opts.NICs {
			l, err := netlinkx.LinkByName(nic.Tap)
			if err != nil {
				return fmt.Errorf("tap %s: %w", nic.Tap, err)
			}
			for _, a := range nic.HostAddrs {
				if err := netlinkx.AddAddr(l, a); err != nil {
					return fmt.Errorf("add %s to tap %s: %w", a, nic.Tap, err)
				}
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("set tap %s up: %w", nic.Tap, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("uml: %w", err)
	}
	return g, nil
}

func (o *Options) validate() error {
	taps := map[string]bool{}
	for i, nic := range o.NICs {
		if !nameRE.MatchString(nic.Tap) {
			return fmt.Errorf("options: NICs[%d].Tap %q is not an interface name", i, nic.Tap)
		}
		if taps[nic.Tap] {
			return fmt.Errorf("options: NICs[%d].Tap %q is used twice", i, nic.Tap)
		}
		taps[nic.Tap] = true
		if nic.Name != "" && !nameRE.MatchString(nic.Name) {
			return fmt.Errorf("options: NICs[%d].Name %q is not an interface name", i, nic.Name)
		}
		if nic.MAC != nil && len(nic.MAC) != 6 {
			return fmt.Errorf("options: NICs[%d].MAC %s is not an Ethernet address", i, nic.MAC)
		}
	}
	for i, e := range o.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || !envKeyRE.MatchString(k) {
			return fmt.Errorf("options: Env[%d] %q is not KEY=value", i, e)
		}
	}
	for i, m := range o.Mounts {
		if !pathRE.MatchString(m.HostPath) || !pathRE.MatchString(m.GuestPath) {
			return fmt.Errorf("options: Mounts[%d] %q -> %q: want absolute paths of letters, digits and ._/+-", i, m.HostPath, m.GuestPath)
		}
	}
	if o.RootSize != "" && !regexp.MustCompile(`^[0-9]+[kmgKMG%]?$`).MatchString(o.RootSize) {
		return fmt.Errorf("options: RootSize %q is not a tmpfs size", o.RootSize)
	}
	for i, m := range o.Modules {
		if !moduleRE.MatchString(m) {
			return fmt.Errorf("options: Modules[%d] %q is not \"name [param=value ...]\"", i, m)
		}
	}
	return nil
}

// start runs cmd inside the guest's network namespace. The forking thread stays locked in that
// namespace and alive until linux.uml exits: Pdeathsig fires when the forking thread dies.
func (g *Guest) start(cmd *exec.Cmd) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime discards the thread with the goroutine
		if err := g.netns.Set(); err != nil {
			started <- fmt.Errorf("enter netns: %w", err)
			close(g.exited)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			close(g.exited)
			return
		}
		g.pid = cmd.Process.Pid
		started <- nil
		g.waitErr = cmd.Wait()
		close(g.exited)
	}()
	return <-started
}

// readConsole copies the console to the ring and dispatches marker lines.
func (g *Guest) readConsole(r io.Reader) {
	defer close(g.consoleDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		_, _ = g.console.Write([]byte(line + "\n"))
		i := strings.Index(line, markerPrefix)
		if i < 0 {
			continue
		}
		msg := line[i+len(markerPrefix):]
		switch verb, arg, _ := strings.Cut(msg, " "); verb {
		case markerReady, markerFail:
			select {
			case g.ready <- msg:
			default:
			}
		case markerDone:
			id, err := strconv.Atoi(arg)
			if err != nil {
				continue
			}
			g.mu.Lock()
			if ch, ok := g.waiters[id]; ok {
				close(ch)
				delete(g.waiters, id)
			}
			g.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// PID returns linux.uml's process id, which is also the process group of all its processes.
func (g *Guest) PID() int { return g.pid }

// NetNS returns the namespace holding the guest's taps.
func (g *Guest) NetNS() ns.NetNS { return g.netns }

// PeakMiB is the guest's peak resident memory on the host: the largest VmHWM among its host
// processes (the guest's RAM is one mapping they share, so the largest is the guest's).
func (g *Guest) PeakMiB() int {
	peak := 0
	for _, p := range append(GroupPIDs(g.pid), g.pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				var kb int
				_, _ = fmt.Sscan(f[1], &kb)
				peak = max(peak, kb/1024)
			}
		}
	}
	return peak
}

// BootTime returns how long the guest took from start to taking commands.
func (g *Guest) BootTime() time.Duration { return g.bootTime }

// Console returns the last 64 KiB the guest printed on its console (kernel messages and init).
func (g *Guest) Console() string { return g.console.String() }

// Path returns the path under which the guest sees the host's file hostPath. The guest sees the
// host's / read-only except /run and /tmp, which are its own: the host's /tmp (where go test
// puts test binaries) is under /run/uml/hosttmp and the exchange directory under /run/uml/x.
// Host files under /run are not reachable.
func (g *Guest) Path(hostPath string) string {
	p, err := filepath.Abs(hostPath)
	if err != nil {
		return hostPath
	}
	if rel, ok := under(p, g.dir); ok {
		return filepath.Join(guestXchg, rel)
	}
	return GuestPath(p)
}

// GuestPath is Guest.Path for files outside the exchange directories: it holds for every guest,
// so a path can be translated before the guest boots (for Options.Env).
func GuestPath(hostPath string) string {
	p, err := filepath.Abs(hostPath)
	if err != nil {
		return hostPath
	}
	if rel, ok := under(p, "/tmp"); ok {
		return filepath.Join(guestHostTmp, rel)
	}
	return p
}

func under(p, dir string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// ErrGuestExited is returned by Run when the guest is gone.
var ErrGuestExited = errors.New("uml: the guest has exited")

// Run runs script with sh inside the guest, as root in the guest's root directory, with its
// stdin empty, and returns what it printed and its exit status. err is non-nil only when the
// status is unknown (guest gone, ctx done; exitCode is then -1): a failing command is a nil err
// and a non-zero exitCode. When ctx ends first, the command's process group in the guest is
// killed. Run is safe for concurrent use.
func (g *Guest) Run(ctx context.Context, script string) (stdout, stderr string, exitCode int, err error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return "", "", -1, ErrGuestExited
	}
	g.nextID++
	id := g.nextID
	done := make(chan struct{})
	g.waiters[id] = done
	g.mu.Unlock()

	base := filepath.Join(g.dir, strconv.Itoa(id))
	defer func() {
		for _, ext := range []string{".sh", ".out", ".err", ".rc", ".pid"} {
			_ = os.Remove(base + ext)
		}
	}()
	if err := os.WriteFile(base+".sh", []byte(script+"\n"), 0o644); err != nil {
		return "", "", -1, fmt.Errorf("uml: write command: %w", err)
	}
	if err := g.send(fmt.Sprintf("RUN %d", id)); err != nil {
		return "", "", -1, err
	}
	select {
	case <-done:
	case <-g.exited:
		g.mu.Lock()
		delete(g.waiters, id)
		g.mu.Unlock()
		return readFile(base + ".out"), readFile(base + ".err"), -1, ErrGuestExited
	case <-ctx.Done():
		// Kill the command's process group in the guest and give the guest a moment to report
		// it: its files are removed when Run returns.
		_ = g.send(fmt.Sprintf("KILL %d", id))
		select {
		case <-done:
		case <-g.exited:
		case <-time.After(5 * time.Second):
		}
		g.mu.Lock()
		delete(g.waiters, id)
		g.mu.Unlock()
		return readFile(base + ".out"), readFile(base + ".err"), -1, fmt.Errorf("uml: command %d: %w", id, ctx.Err())
	}
	rc := strings.TrimSpace(readFile(base + ".rc"))
	code, err := strconv.Atoi(rc)
	if err != nil {
		return readFile(base + ".out"), readFile(base + ".err"), -1, fmt.Errorf("uml: command %d: bad exit status %q", id, rc)
	}
	return readFile(base + ".out"), readFile(base + ".err"), code, nil
}

// MustRun runs script in the guest and fails the test unless it exits with status 0; it
// returns the command's stdout.
func (g *Guest) MustRun(t testing.TB, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stdout, stderr, code, err := g.Run(ctx, script)
	if err != nil || code != 0 {
		t.Fatalf("uml: %q in the guest: exit %d, %v\nstdout:\n%s\nstderr:\n%s", script, code, err, stdout, stderr)
	}
	return stdout
}

func (g *Guest) send(line string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrGuestExited
	}
	if _, err := io.WriteString(g.stdin, line+"\n"); err != nil {
		return fmt.Errorf("uml: write to the guest console: %w", err)
	}
	return nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// Close kills the guest and every host process it forked, waits until none is left and removes
// the exchange directory. It is idempotent; Boot's cleanup calls it.
func (g *Guest) Close() error {
	g.mu.Lock()
	already := g.closed
	g.closed = true
	g.mu.Unlock()
	if err := g.kill(already); err != nil {
		return err
	}
	if err := os.RemoveAll(g.dir); err != nil {
		return fmt.Errorf("remove the exchange directory: %w", err)
	}
	return nil
}

func (g *Guest) kill(already bool) error {
	if g.pid == 0 {
		return nil
	}
	if !already {
		_ = g.stdin.Close()
		_ = syscall.Kill(-g.pid, syscall.SIGKILL)
	}
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("linux.uml (pid %d) has not exited 10s after SIGKILL", g.pid)
	}
	// UML's helper processes may outlive the main one by a moment; they share its group.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := GroupPIDs(g.pid)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of guest %d survive SIGKILL: %v", g.pid, left)
		}
		_ = syscall.Kill(-g.pid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
}

// GroupPIDs returns the processes of process group pgid that still exist (zombies included).
func GroupPIDs(pgid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if st.pgid == pgid {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// Descendants returns pid's descendant processes.
func Descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	slices.Sort(out)
	return out
}

type procStat struct{ ppid, pgid int }

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return procStat{}, errors.New("bad stat")
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procStat{}, errors.New("bad stat")
	}
	return procStat{ppid: ppid, pgid: pgid}, nil
}

// ring keeps the last max bytes written to it.
type ring struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = slices.Clone(r.buf[over:])
	}
	return len(p), nil
}

// tail returns the last n bytes, from the start of a line.
func (r *ring) tail(n int) string {
	s := r.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initScript is the guest's init (pid 1). It runs from the host's file system before /tmp is
// covered, so it is read by sh through an fd it opened earlier.
func initScript(opts Options, dir, release string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("#!/bin/sh")
	w("# init of a user-mode-linux test guest, written by internal/testutil/uml.")
	w("# The root file system is the host's, read-only: write only to tmpfs and %s.", guestXchg)
	w("export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp %s=1", GuestEnv)
	w("fail() { echo %q\"$*\"; echo o >/proc/sysrq-trigger; exit 1; }", markerPrefix+markerFail+" ")
	w("mount -t proc proc /proc || fail mount /proc")
	w("mount -t sysfs sysfs /sys || fail mount /sys")
	w("mount -t tmpfs -o mode=0755 tmpfs /run || fail mount /run")
	if opts.OverlayRoot {
		// The new root: the host's tree below (overlayfs reads the hostfs file system itself,
		// not the mounts on it) and a tmpfs above; pivot_root makes it / and the old root goes.
		size := opts.RootSize
		if size == "" {
			size = "50%"
		}
		w("mkdir -p /run/ovl && mount -t tmpfs -o size=%s,mode=0755 tmpfs /run/ovl || fail mount the root tmpfs", size)
		w("mkdir -p /run/ovl/upper /run/ovl/work /run/ovl/root /run/ovl-mod/lib && ln -s %s /run/ovl-mod/lib/modules", ModulesDir)
		w("modprobe -d /run/ovl-mod overlay || fail modprobe overlay")
		w("mount -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work /run/ovl/root || fail mount the overlay root")
		w("mkdir -p /run/ovl/root/.oldroot && cd /run/ovl/root && pivot_root . .oldroot || fail pivot_root")
		w("cd /")
		w("mount -t proc proc /proc || fail mount /proc in the new root")
		w("mount -t sysfs sysfs /sys || fail mount /sys in the new root")
		w("mount -t tmpfs -o mode=0755 tmpfs /run || fail mount /run in the new root")
		w("umount -l /.oldroot && rmdir /.oldroot || fail drop the old root")
		w("mount -t devtmpfs devtmpfs /dev || fail mount /dev")
		w("mkdir -p /dev/pts /dev/shm /dev/mqueue")
		w("mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts || fail mount /dev/pts")
		w("mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail mount /dev/shm")
		w("mount -t mqueue mqueue /dev/mqueue || true")
		w("mount -t tmpfs -o mode=1777 tmpfs /tmp || fail mount /tmp")
	} else {
		w("mount -t tmpfs -o mode=1777 tmpfs /tmp || fail mount /tmp")
		w("mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev || fail mount /dev")
	}
	w("mkdir -p %s %s %s/lib", guestXchg, guestHostTmp, guestModRoot)
	w("mount -t hostfs -o %s none %s || fail mount the exchange directory", dir, guestXchg)
	w("mount -r -t hostfs -o /tmp none %s || fail mount the host /tmp", guestHostTmp)
	for _, m := range opts.Mounts {
		w("mkdir -p %s && mount -t hostfs -o %s none %s || fail mount %s", m.GuestPath, m.HostPath, m.GuestPath, m.HostPath)
	}
	w("ln -s %s %s/lib/modules", ModulesDir, guestModRoot)
	w("[ \"$(uname -r)\" = %s ] || fail kernel $(uname -r) has no modules under %s", release, ModulesDir)
	for _, m := range opts.Modules {
		w("modprobe -d %s %s || fail modprobe %s", guestModRoot, m, strings.Fields(m)[0])
	}
	w("ip link set lo up || fail lo up")
	for i, nic := range opts.NICs {
		vec := fmt.Sprintf("vec%d", i)
		name := nic.Name
		if name == "" {
			name = fmt.Sprintf("eth%d", i)
		}
		if name != vec {
			w("ip link set %s name %s || fail rename %s to %s", vec, name, vec, name)
		}
		for _, a := range nic.Addrs {
			w("ip addr add %s dev %s || fail add %s to %s", a, name, a, name)
		}
		w("ip link set %s up || fail %s up", name, name)
	}
	w("X=%s", guestXchg)
	w(`run() {
	setsid sh "$X/$1.sh" </dev/null >"$X/$1.out" 2>"$X/$1.err" &
	echo $! >"$X/$1.pid"
	wait $!
	echo $? >"$X/$1.rc"
	echo "%s $1"
}`, markerPrefix+markerDone)
	w("stty -echo")
	w("cd /")
	w("echo %q", markerPrefix+markerReady)
	w(`while read -r verb id; do
	case "$verb" in
	RUN) run "$id" & ;;
	KILL) [ -f "$X/$id.pid" ] && kill -KILL "-$(cat "$X/$id.pid")" ;;
	HALT) break ;;
	esac
done`)
	w("echo o >/proc/sysrq-trigger")
	w("sleep 10")
	return b.String()
}
