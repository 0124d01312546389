package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// TestSandboxCommand runs what `make demo` runs, as a user would: `spiderpool-sandbox up
// --detach --verify` (the public-cloud guide on the real cluster), `status`, kubectl against the
// detached cluster, then `down`. Afterwards no namespace of the prefix, guest, process started
// from the state directory, host link or mount may remain, nor the state directory; a second
// `down` finds nothing to do.
func TestSandboxCommand(t *testing.T) {
	requireEnv(t)
	uml.Require(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "_output", "images", "spiderpool-agent.tar")); err != nil {
		t.Fatalf("no images in _output/images: make test-e2e builds them (make images)")
	}
	bin := filepath.Join(t.TempDir(), "spiderpool-sandbox")
	build := exec.Command("go", "build", "-o", bin, "./cmd/spiderpool-sandbox")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const prefix = "e2ecmd"
	dir := filepath.Join(t.TempDir(), "state")
	linksBefore, mountsBefore, guestsBefore, routesBefore := hostLinks(t), hostMounts(t), umlProcesses(), hostRoutes(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("spiderpool-sandbox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		// Whatever happened above, leave nothing behind for the next test.
		if _, err := os.Stat(dir); err == nil {
			_ = exec.Command(bin, "down", "--dir", dir).Run()
		}
	})

	out := run("up", "--detach", "--verify", "--dir", dir, "--prefix", prefix)
	t.Logf("up --detach --verify:\n%s", out)
	kc := filepath.Join(dir, "control-plane", "kubeconfigs", "admin.conf")
	for _, want := range []string{"$ kubectl get nodes -o wide", "containerd://2.", "v1.37.2", "$ kubectl get spiderippool",
		"verify: all ", "export KUBECONFIG=" + kc, "detached: sandbox pid"} {
		if !strings.Contains(out, want) {
			t.Errorf("up's output lacks %q", want)
		}
	}
	st, err := sandbox.ReadState(dir)
	if err != nil || !sandbox.Alive(st.PID) {
		t.Fatalf("state %+v, %v: the detached sandbox is not running", st, err)
	}
	if st.Verify != "passed" || st.Kubeconfig != kc {
		t.Errorf("state: verify %q, kubeconfig %q", st.Verify, st.Kubeconfig)
	}
	if out := run("status", "--dir", dir); !strings.Contains(out, "running") || !strings.Contains(out, "phase ready") {
		t.Errorf("status:\n%s", out)
	}
	if names, _ := netsim.Namespaces(prefix); len(names) < 3 {
		t.Errorf("namespaces while up: %v (want the switch, the control plane and the client)", names)
	}
	if guests := umlProcesses(); len(guests) <= len(guestsBefore) {
		t.Error("no user-mode-linux guest while the sandbox is up")
	}
	// The host reaches the cluster only through the forwarded loopback port: its routing table
	// (whose default route leaves this machine) never carries a sandbox address.
	if after := hostRoutes(t); !slices.Equal(after, routesBefore) {
		t.Errorf("host routes changed while the sandbox is up:\nbefore %v\nafter  %v", routesBefore, after)
	}
	nodes := kubectl(t, kc, "get", "nodes")
	if strings.Count(nodes, " Ready ") != 2 {
		t.Errorf("kubectl get nodes against the detached cluster:\n%s", nodes)
	}
	if pools := kubectl(t, kc, "get", "spiderippool"); !strings.Contains(pools, "worker-192") {
		t.Errorf("kubectl get spiderippool:\n%s", pools)
	}

	out = run("down", "--dir", dir)
	t.Logf("down:\n%s", out)
	if sandbox.Alive(st.PID) {
		t.Errorf("sandbox process %d still runs", st.PID)
	}
	if names, _ := netsim.Namespaces(prefix); len(names) > 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if left := umlProcesses(); len(left) > len(guestsBefore) {
		t.Errorf("guest processes left: %v (before: %v)", left, guestsBefore)
	}
	if pids := sandbox.ProcessesUsing(dir); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
	if after := hostLinks(t); !slices.Equal(after, linksBefore) {
		t.Errorf("host links changed: before %v, after %v", linksBefore, after)
	}
	if after := hostMounts(t); !slices.Equal(after, mountsBefore) {
		t.Errorf("host mounts changed: before %v, after %v", mountsBefore, after)
	}
	if out := run("down", "--dir", dir); !strings.Contains(out, "sandbox removed") {
		t.Errorf("second down:\n%s", out)
	}
}
