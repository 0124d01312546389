package uml

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// Environment of the helper modes of this test binary (TestMain).
const (
	envPing      = "UML_TEST_PING"       // ping the address and exit: the guest has no ping binary
	envFailGuest = "UML_TEST_FAIL_GUEST" // TestPrivilegedHelperGuest boots a guest, reports it and fails or hangs
)

func TestMain(m *testing.M) {
	if dst := os.Getenv(envPing); dst != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := Ping(ctx, netip.MustParseAddr(dst)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("reply from", dst)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var allModules = []string{"dummy", "8021q", "ipvlan", "bonding max_bonds=0"}

func TestPrivilegedGuestLinks(t *testing.T) {
	g := Boot(t, Options{Modules: allModules})
	out := g.MustRun(t, `set -e
ip link add d0 type dummy
ip link add link d0 name d0.100 type vlan id 100
ip link add link d0 name ipvl0 type ipvlan mode l2
ip link add d1 type dummy
ip link add d2 type dummy
ip link add bond0 type bond mode active-backup miimon 100
ip link set d1 master bond0
ip link set d2 master bond0
ip link set bond0 up
ip link set d0 up
ip link set d0.100 up
ip -d link show d0.100
ip -d link show ipvl0
ip -d link show bond0
echo "slaves: $(cat /sys/class/net/bond0/bonding/slaves)"
echo "mode: $(cat /sys/class/net/bond0/bonding/mode)"`)
	for _, want := range []string{"vlan protocol 802.1Q id 100", "ipvlan  mode l2", "bond mode active-backup", "slaves: d1 d2", "mode: active-backup 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output lacks %q:\n%s", want, out)
		}
	}
}

func TestPrivilegedGuestPing(t *testing.T) {
	guestIP, hostIP := netip.MustParsePrefix("10.99.0.2/24"), netip.MustParsePrefix("10.99.0.1/24")
	g := Boot(t, Options{NICs: []NIC{{Tap: "umltap0", Name: "eth0", Addrs: []netip.Prefix{guestIP}, HostAddrs: []netip.Prefix{hostIP}}}})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	testutil.InNS(t, g.NetNS(), func() error { return Ping(ctx, guestIP.Addr()) })
	t.Logf("host namespace -> guest: reply in %s", time.Since(start).Round(time.Millisecond))

	out := g.MustRun(t, "ip -br addr show eth0")
	if !strings.Contains(out, guestIP.String()) {
		t.Errorf("guest eth0: %q", out)
	}

	if raceEnabled {
		t.Skip("skipping guest -> host: the guest pings with this test binary, and a -race binary cannot run in a guest")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out = g.MustRun(t, fmt.Sprintf("%s=%s %s", envPing, hostIP.Addr(), shellQuote(g.Path(exe))))
	if !strings.Contains(out, "reply from "+hostIP.Addr().String()) {
		t.Errorf("guest -> host namespace: %q", out)
	}
}

func TestPrivilegedGuestRun(t *testing.T) {
	g := Boot(t, Options{})
	ctx := context.Background()

	stdout, stderr, code, err := g.Run(ctx, "echo out; echo err >&2; exit 3")
	if err != nil || code != 3 || stdout != "out\n" || stderr != "err\n" {
		t.Errorf("Run = %q, %q, %d, %v; want \"out\\n\", \"err\\n\", 3, nil", stdout, stderr, code, err)
	}
	if _, stderr, code, err := g.Run(ctx, "ls /nonexistent"); err != nil || code == 0 || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("ls of a missing file: exit %d, stderr %q, %v", code, stderr, err)
	}
	// The guest is root on its own kernel, in its own tmpfs, and knows it is a guest.
	out := g.MustRun(t, `id -u; uname -r; echo "$`+GuestEnv+`"; touch /tmp/x && echo tmp-ok; touch /etc/uml-must-not-exist 2>/dev/null || echo root-ro`)
	if want := fmt.Sprintf("0\n%s\n1\ntmp-ok\nroot-ro\n", mustRelease(t)); out != want {
		t.Errorf("guest environment = %q, want %q", out, want)
	}
	if _, err := os.Stat("/etc/uml-must-not-exist"); err == nil {
		t.Error("the guest wrote to the host's /etc")
	}

	// A command outliving its context is killed; the guest goes on.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, _, code, err := g.Run(short, "sleep 60"); !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Errorf("Run past its deadline = %d, %v", code, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if out := g.MustRun(t, "pgrep -x sleep || true"); out == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the timed-out sleep still runs in the guest")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Concurrent commands each get their own output.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			out, _, code, err := g.Run(ctx, fmt.Sprintf("sleep 0.$((%d %% 3)); echo %d; exit %d", i, i, i))
			if err != nil || code != i || out != fmt.Sprintf("%d\n", i) {
				t.Errorf("command %d: %q, exit %d, %v", i, out, code, err)
			}
		})
	}
	wg.Wait()
}

func mustRelease(t *testing.T) string {
	r, err := kernelRelease()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPrivilegedGuestCleanup checks that Close leaves no process and no tap behind.
func TestPrivilegedGuestCleanup(t *testing.T) {
	g := Boot(t, Options{NICs: []NIC{{Tap: "umltap0"}, {Tap: "umltap1"}}})
	g.MustRun(t, "true")
	pid := g.PID()
	procs := append(Descendants(pid), pid)
	if group := GroupPIDs(pid); len(group) < 2 {
		t.Errorf("process group %d = %v: expected linux.uml and its helpers", pid, group)
	}
	t.Logf("guest processes on the host: %v", procs)
	testutil.InNS(t, g.NetNS(), func() error {
		for _, tap := range []string{"umltap0", "umltap1"} {
			if _, err := netlink.LinkByName(tap); err != nil {
				return fmt.Errorf("tap %s while the guest runs: %w", tap, err)
			}
		}
		return nil
	})

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	assertGone(t, pid, procs)
	testutil.InNS(t, g.NetNS(), func() error {
		links, err := netlinkx.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				t.Errorf("link %s left in the guest's namespace", l.Attrs().Name)
			}
		}
		return nil
	})
	if _, _, _, err := g.Run(context.Background(), "true"); !errors.Is(err, ErrGuestExited) {
		t.Errorf("Run after Close: %v", err)
	}
}

func assertGone(t *testing.T, pgid int, procs []int) {
	t.Helper()
	if left := GroupPIDs(pgid); len(left) != 0 {
		t.Errorf("processes of group %d left: %v", pgid, left)
	}
	for _, p := range procs {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && strings.Contains(string(b), "linux.uml") {
			t.Errorf("guest process %d still exists", p)
		}
	}
}

// TestPrivilegedGuestCleanupWhenTestFails runs a test that boots a guest and fails, and one that
// boots a guest and is killed; neither leaves a guest process behind.
func TestPrivilegedGuestCleanupWhenTestFails(t *testing.T) {
	Require(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"fail", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run", "^TestPrivilegedHelperGuest$", "-test.v")
			cmd.Env = append(os.Environ(), envFailGuest+"="+mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pid int
			var nsPath, dir string
			var out strings.Builder
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				out.WriteString(line + "\n")
				if _, v, ok := strings.Cut(line, "GUEST "); ok {
					f := strings.Fields(v)
					pid, _ = strconv.Atoi(f[0])
					nsPath, dir = f[1], f[2]
					if mode == "kill" {
						_ = cmd.Process.Kill()
					}
				}
			}
			err = cmd.Wait()
			if pid == 0 {
				t.Fatalf("the helper did not boot a guest: %v\n%s", err, out.String())
			}
			if err == nil {
				t.Fatalf("the helper test passed:\n%s", out.String())
			}
			if mode == "kill" {
				// The killed binary could not unmount its namespace; Pdeathsig took the guest.
				t.Cleanup(func() {
					_ = syscall.Unmount(nsPath, syscall.MNT_DETACH)
					_ = os.Remove(nsPath)
					_ = os.RemoveAll(dir)
				})
				deadline := time.Now().Add(10 * time.Second)
				for len(GroupPIDs(pid)) > 0 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			assertGone(t, pid, nil)
			if _, err := os.Stat(dir); mode == "fail" && err == nil {
				t.Errorf("exchange directory %s left", dir)
			}
		})
	}
}

// TestPrivilegedHelperGuest is a helper of TestPrivilegedGuestCleanupWhenTestFails.
func TestPrivilegedHelperGuest(t *testing.T) {
	mode := os.Getenv(envFailGuest)
	if mode == "" {
		t.Skip("helper of TestPrivilegedGuestCleanupWhenTestFails")
	}
	g := Boot(t, Options{NICs: []NIC{{Tap: "umltap0"}}, Modules: []string{"dummy"}})
	fmt.Printf("GUEST %d %s %s\n", g.PID(), g.NetNS().Path(), g.dir)
	if mode == "kill" {
		time.Sleep(time.Minute)
	}
	t.Fatal("failing on purpose with a guest running")
}

// TestPrivilegedRunTestInGuest runs its body in a guest: netlink from Go sees the guest kernel.
func TestPrivilegedRunTestInGuest(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if RunTestInGuest(t, Options{Modules: []string{"dummy", "8021q"}, Env: []string{"UML_TEST_EXE=" + GuestPath(exe)}}) {
		return
	}
	if !InGuest() || os.Geteuid() != 0 {
		t.Fatalf("body runs outside a guest or not as root (uid %d)", os.Geteuid())
	}
	if exe := os.Getenv("UML_TEST_EXE"); exe == "" {
		t.Errorf("Options.Env did not reach the guest: UML_TEST_EXE=%q", exe)
	} else if _, err := os.Stat(exe); err != nil {
		t.Errorf("the guest does not see the test binary at %s: %v", exe, err)
	}
	d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "d0"}}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatalf("add dummy: %v", err)
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "d0.7", ParentIndex: d.Attrs().Index}, VlanId: 7}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("add vlan: %v", err)
	}
	l, err := netlink.LinkByName("d0.7")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := l.(*netlink.Vlan); !ok || got.VlanId != 7 {
		t.Errorf("d0.7 = %#v", l)
	}
	t.Run("subtest", func(t *testing.T) {
		if RunTestInGuest(t, Options{}) {
			t.Fatal("a subtest in the guest booted another guest")
		}
	})
}

func TestRunPattern(t *testing.T) {
	for name, want := range map[string]string{
		"TestA":           "^TestA$",
		"TestA/sub_1":     "^TestA$/^sub_1$",
		"TestA/x.y+(1)/z": `^TestA$/^x\.y\+\(1\)$/^z$`,
	} {
		if got := RunPattern(name); got != want {
			t.Errorf("RunPattern(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{NICs: []NIC{{Tap: ""}}},
		{NICs: []NIC{{Tap: "a-very-long-tap-name"}}},
		{NICs: []NIC{{Tap: "t0"}, {Tap: "t0"}}},
		{NICs: []NIC{{Tap: "t0", Name: "e;th0"}}},
		{Modules: []string{"dummy; reboot"}},
		{Env: []string{"NOEQUALS"}},
		{Env: []string{"A B=1"}},
	} {
		if err := o.validate(); err == nil {
			t.Errorf("validate(%+v) = nil", o)
		}
	}
	ok := Options{NICs: []NIC{{Tap: "t0", Name: "eth0"}}, Modules: []string{"bonding max_bonds=0", "8021q"}}
	if err := ok.validate(); err != nil {
		t.Error(err)
	}
}

func TestAvailableNamesTheMissingPiece(t *testing.T) {
	if os.Geteuid() != 0 {
		if err := Available(); err == nil || !strings.Contains(err.Error(), "root") {
			t.Errorf("Available as non-root = %v", err)
		}
		return
	}
	defer func(b, m string) { Binary, ModulesDir = b, m }(Binary, ModulesDir)
	Binary = "/nonexistent/linux.uml"
	if err := Available(); err == nil || !strings.Contains(err.Error(), Binary) {
		t.Errorf("Available without the kernel = %v", err)
	}
	Binary, ModulesDir = "/bin/sh", t.TempDir()
	if err := Available(); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("Available without modules = %v", err)
	}
	ModulesDir = "/nonexistent/modules"
	if err := Available(); err == nil || !strings.Contains(err.Error(), ModulesDir) {
		t.Errorf("Available without a modules directory = %v", err)
	}
}

// fatalTB stands in for a test to catch Boot's Fatalf; it runs the cleanups when asked.
type fatalTB struct {
	testing.TB
	msg      string
	cleanups []func()
}

func (f *fatalTB) Fatalf(format string, a ...any) {
	f.msg = fmt.Sprintf(format, a...)
	runtime.Goexit()
}
func (f *fatalTB) Fatal(a ...any)                 { f.msg = fmt.Sprint(a...); runtime.Goexit() }
func (f *fatalTB) Failed() bool                   { return f.msg != "" }
func (f *fatalTB) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *fatalTB) Errorf(format string, a ...any) { f.TB.Errorf(format, a...) }
func (f *fatalTB) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// TestPrivilegedBootFailure checks that a guest whose init fails is reported with the reason
// and leaves nothing behind.
func TestPrivilegedBootFailure(t *testing.T) {
	Require(t)
	f := &fatalTB{TB: t}
	done := make(chan *Guest)
	go func() {
		var g *Guest
		defer func() { done <- g }()
		g = Boot(f, Options{Modules: []string{"dummy", "no_such_module"}, NICs: []NIC{{Tap: "umltap0"}}})
	}()
	if g := <-done; g != nil {
		f.cleanup()
		t.Fatal("Boot returned a guest whose init failed")
	}
	f.cleanup()
	var pid int
	if _, err := fmt.Sscanf(f.msg, "uml: guest init failed: modprobe no_such_module (linux.uml pid %d)", &pid); err != nil {
		t.Fatalf("Boot failed with %q", f.msg)
	}
	assertGone(t, pid, nil)
	inits, _ := filepath.Glob(filepath.Join(os.TempDir(), "uml-*", "init.sh"))
	for _, p := range inits {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "no_such_module") {
			t.Errorf("exchange directory %s left", filepath.Dir(p))
		}
	}
}

// TestPrivilegedStart uses the API for programs: Start, Run, Close, without a testing.TB.
func TestPrivilegedStart(t *testing.T) {
	Require(t)
	if _, err := Start(Options{}); err == nil || !strings.Contains(err.Error(), "NetNS is required") {
		t.Errorf("Start without a namespace = %v", err)
	}
	g, err := Start(Options{NetNS: testutil.NewNS(t), Modules: []string{"dummy"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booted in %s", g.BootTime())
	out, _, code, err := g.Run(context.Background(), "ip link add x0 type dummy && ip -o link show x0 | cut -d: -f2")
	if err != nil || code != 0 || strings.TrimSpace(out) != "x0" {
		t.Errorf("Run = %q, %d, %v", out, code, err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, g.PID(), nil)
	if _, err := os.Stat(g.dir); err == nil {
		t.Errorf("exchange directory %s left", g.dir)
	}
}
