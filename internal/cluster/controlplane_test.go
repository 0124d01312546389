package cluster

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNodeCIDRMaskSize(t *testing.T) {
	for _, c := range []struct {
		podCIDR string
		want    int
	}{
		{"10.244.64.0/18", 24}, // the sandbox's podSubnet: 64 nodes of /24
		{"10.244.0.0/16", 24},
		{"10.0.0.0/8", 24},
		{"10.244.64.0/23", 25}, // too small for four /24: four /25
		{"10.244.64.0/30", 32},
		{"fd00:244::/48", 64},
		{"fd00:244::/32", 48}, // IPv6 node ranges at most 16 bits longer than the cluster's
		{"fd00:244::/64", 66},
	} {
		if got := nodeCIDRMaskSize(netip.MustParsePrefix(c.podCIDR)); got != c.want {
			t.Errorf("%s: /%d, want /%d", c.podCIDR, got, c.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	good := ControlPlaneOptions{
		Dir: "/tmp/x", ToolsBin: "/tmp/bin", NetNSPath: "/run/netns/x",
		AdvertiseAddr: netip.MustParseAddr("10.6.0.2"), ServiceCIDR: netip.MustParsePrefix("10.233.0.0/18"),
		PodCIDR: netip.MustParsePrefix("10.244.64.0/18"),
	}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*ControlPlaneOptions){
		"no dir":             func(o *ControlPlaneOptions) { o.Dir = "" },
		"no namespace":       func(o *ControlPlaneOptions) { o.NetNSPath = "" },
		"no advertise":       func(o *ControlPlaneOptions) { o.AdvertiseAddr = netip.Addr{} },
		"unspecified":        func(o *ControlPlaneOptions) { o.AdvertiseAddr = netip.IPv4Unspecified() },
		"no service CIDR":    func(o *ControlPlaneOptions) { o.ServiceCIDR = netip.Prefix{} },
		"pods over services": func(o *ControlPlaneOptions) { o.PodCIDR = netip.MustParsePrefix("10.233.0.0/16") },
		"port":               func(o *ControlPlaneOptions) { o.HostPort = 70000 },
	} {
		o := good
		mutate(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckToolsNamesWhatIsMissing(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{Etcd, APIServer} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := checkTools(bin)
	if !errors.Is(err, errNoTools) {
		t.Fatalf("err = %v, want errNoTools", err)
	}
	for _, want := range []string{ControllerManager, Scheduler, "make tools"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "etcd") {
		t.Errorf("%q names etcd, which is there", err)
	}
}

func TestFailingChecks(t *testing.T) {
	body := "[+]ping ok\n[-]poststarthook/rbac/bootstrap-roles failed: not finished\n[+]etcd ok\n[-]informer-sync failed: not finished\nreadyz check failed\n"
	want := "poststarthook/rbac/bootstrap-roles failed: not finished, informer-sync failed: not finished"
	if got := failingChecks(body); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestKillLeftoversKillsWhatNamesTheDirectory starts a stand-in for a component orphaned by a
// crash (a shell whose command line names the directory, with a child in its process group) and
// a process that has a pid file but does not name the directory (a reused pid): KillLeftovers
// kills the first, with its child, and leaves the second alone.
func TestKillLeftoversKillsWhatNamesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, pidsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	// "sleep; :" keeps the shell from exec'ing sleep, so that the shell (whose command line names
	// dir) and its child both run.
	orphan := exec.Command("/bin/sh", "-c", "sleep 300; :", Etcd, "--data-dir="+filepath.Join(dir, dataDir))
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := make(chan struct{})
	go func() { _ = orphan.Wait(); close(reaped) }()
	stranger := exec.Command("sleep", "300")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stranger.Process.Kill(); _ = stranger.Wait() })
	for name, pid := range map[string]int{Etcd: orphan.Process.Pid, APIServer: stranger.Process.Pid} {
		if err := os.WriteFile(filepath.Join(dir, pidsDir, name+".pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the shell has forked its sleep.
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		child = childOf(orphan.Process.Pid)
	}
	if child == 0 {
		t.Fatal("the orphan's child did not start")
	}

	if err := KillLeftovers(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reaped:
	case <-time.After(5 * time.Second):
		t.Fatal("the orphan survives")
	}
	for deadline := time.Now().Add(5 * time.Second); alive(child) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(child) {
		t.Errorf("the orphan's child %d survives", child)
	}
	if !alive(stranger.Process.Pid) {
		t.Error("a process that does not name the directory was killed")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, pidsDir, "*")); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

// childOf returns a child of pid, 0 when it has none.
func childOf(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}
