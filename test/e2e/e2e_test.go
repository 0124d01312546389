package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds our plugins and the sandbox command into one directory, once.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "e2e-bin-"); err != nil {
			buildErr = err
			return
		}
		for _, p := range []string{"spiderpool", "coordinator", "spiderpool-sandbox", "spiderpool-agent"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, p), "./cmd/"+p)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v: %s", p, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func requireEnv(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := testenv.ToolsBin(); err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// up starts a sandbox for the test and tears it down at the end.
func up(t *testing.T, scenario, prefix string) *sandbox.Sandbox {
	return upOn(t, scenario, prefix, sandbox.NodeKernelHost)
}

func upOn(t *testing.T, scenario, prefix, nodeKernel string) *sandbox.Sandbox {
	t.Helper()
	requireEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sb, err := sandbox.Up(ctx, sandbox.Options{
		Dir: t.TempDir(), Prefix: prefix, Scenario: scenario, PluginDir: binaries(t), Progress: testWriter{t}, NodeKernel: nodeKernel,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if names, _ := netsim.Namespaces(prefix); len(names) > 0 {
			t.Errorf("namespaces left after teardown: %v", names)
		}
	})
	return sb
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// verify prints the tables and the matrix to the log and fails on a failed check.
func verify(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	var b strings.Builder
	if err := sb.PrintTables(ctxT(t), &b); err != nil {
		t.Fatal(err)
	}
	m, err := sb.Connectivity(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Print(&b)
	t.Log("\n" + b.String())
	if len(m.Rows) < 2 || len(m.Cols) < 4 {
		t.Fatalf("matrix %d x %d is smaller than the scenario's", len(m.Rows), len(m.Cols))
	}
	for _, ch := range m.Failed() {
		t.Errorf("%s -> %s (%s): %v", ch.From, ch.To, ch.Target, ch.Err)
	}
}

// kubectl runs the pinned kubectl with a kubeconfig, as a user of the sandbox would.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	tools, err := testenv.ToolsBin()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tools, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("kubectl is not built (make tools): %v", err)
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func pool(t *testing.T, sb *sandbox.Sandbox, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	var p v2beta1.SpiderIPPool
	if err := sb.Client.Get(ctxT(t), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func allocated(t *testing.T, sb *sandbox.Sandbox, name string) map[string]string {
	t.Helper()
	allocs, err := pool(t, sb, name).Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for ip, a := range allocs {
		out[ip] = a.NamespacedName
	}
	return out
}

// TestPublicCloudScenario is the Alibaba Cloud guide on the sandbox: four node-topology pools,
// one pod per node per NIC, every connectivity check; then a deleted pod's address goes back to
// its pool, and pods created while the agents restart all get unique addresses.
func TestPublicCloudScenario(t *testing.T) {
	testPublicCloud(t, up(t, sandbox.ScenarioPublicCloud, "e2epc"), "e2epc", nil)
}

// TestPublicCloudScenarioOnUMLNodes is the same suite with the guides' ipvlan: the nodes are
// user-mode-linux guests behind a VPC that lets in only the node NICs' own MACs.
func TestPublicCloudScenarioOnUMLNodes(t *testing.T) {
	requireEnv(t)
	if err := uml.Available(); err != nil {
		t.Skipf("user-mode-linux nodes cannot boot here: %v", err)
	}
	sb := upOn(t, sandbox.ScenarioPublicCloud, "e2eum", sandbox.NodeKernelUML)
	if sb.CNIType() != "ipvlan" {
		t.Fatalf("the UML nodes run %s, want ipvlan", sb.CNIType())
	}
	// Why the guides choose ipvlan: behind the VPC, which lets in only the node NICs' own MACs,
	// a macvlan pod (its own MAC) cannot reach its gateway; every ipvlan pod of the matrix can.
	testPublicCloud(t, sb, "e2eum", func() { macvlanFailsVPC(t, sb) })
}

func macvlanFailsVPC(t *testing.T, sb *sandbox.Sandbox) {
	t.Run("macvlan fails the VPC MAC check", func(t *testing.T) {
		ctx := ctxT(t)
		// A NIC is the master of ipvlan or macvlan links, not both: free worker's eth1 first.
		var p corev1.Pod
		if err := sb.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: sandbox.PodName("test-app-2", "worker")}, &p); err != nil {
			t.Fatal(err)
		}
		if err := sb.Client.Delete(ctx, &p); err != nil {
			t.Fatal(err)
		}
		waitEndpointGone(t, sb, p.Name)
		for _, obj := range []client.Object{
			&v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-eth1"},
				Spec: v2beta1.MultusCNIConfigSpec{CniType: ptr.To("macvlan"), EnableCoordinator: ptr.To(true),
					MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}}},
			&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "worker-192-macvlan"},
				Spec: v2beta1.IPPoolSpec{Subnet: "192.168.0.0/24", IPs: []string{"192.168.0.170-192.168.0.171"}, Gateway: ptr.To("192.168.0.253"),
					Default: ptr.To(true), NodeName: []string{"worker"}, MultusName: []string{"kube-system/macvlan-eth1"}}},
		} {
			if err := sb.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
			nad := &unstructured.Unstructured{}
			nad.SetAPIVersion("k8s.cni.cncf.io/v1")
			nad.SetKind("NetworkAttachmentDefinition")
			err := sb.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "macvlan-eth1"}, nad)
			return err == nil, client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.CreatePod(ctx, "default", "macvlan-worker", "worker", map[string]string{"app": "macvlan"},
			map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-eth1"}); err != nil {
			t.Fatal(err)
		}
		if err := sb.WaitPodsRunning(ctx, "default", []string{"macvlan-worker"}, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		gw := &sandbox.Check{Ping: true, Target: "192.168.0.253"}
		if err := sb.ProbeFrom(ctx, "macvlan-worker", gw); err == nil {
			t.Error("a macvlan pod reached its gateway through the VPC's MAC filter")
		} else {
			t.Logf("macvlan pod -> gateway behind the VPC: %v (as on a cloud)", err)
		}
		if err := sb.ProbeFrom(ctx, sandbox.PodName("test-app-2", "master"), &sandbox.Check{Ping: true, Target: "192.168.0.253"}); err != nil {
			t.Errorf("the ipvlan pod on master cannot reach the same gateway: %v", err)
		}
		var mp corev1.Pod
		if err := sb.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "macvlan-worker"}, &mp); err == nil {
			_ = sb.Client.Delete(ctx, &mp)
		}
		waitEndpointGone(t, sb, "macvlan-worker")
	})
}

func waitEndpointGone(t *testing.T, sb *sandbox.Sandbox, name string) {
	t.Helper()
	err := testenv.WaitFor(ctxT(t), func(ctx context.Context) (bool, error) {
		var ep v2beta1.SpiderEndpoint
		err := sb.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &ep)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("endpoint of %s still there: %v", name, err)
	}
}

func testPublicCloud(t *testing.T, sb *sandbox.Sandbox, prefix string, beforeChurn func()) {
	verify(t, sb)
	for _, name := range []string{"master-172", "master-192", "worker-172", "worker-192"} {
		p := pool(t, sb, name)
		if got := ptr.Deref(p.Status.AllocatedIPCount, -1); got != 1 || ptr.Deref(p.Status.TotalIPCount, -1) != 5 {
			t.Errorf("pool %s: %d of %d allocated, want 1 of 5 (one pod per node per NIC)", name, got, ptr.Deref(p.Status.TotalIPCount, -1))
		}
	}

	// What a user sees with kubectl: the guide's table.
	out := kubectl(t, sb.Kubeconfig, "get", "spiderippool")
	t.Logf("kubectl get spiderippool:\n%s", out)
	for _, name := range []string{"master-172", "master-192", "worker-172", "worker-192"} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) == 6 && f[0] == name && f[1] == "4" && f[3] == "1" && f[4] == "5" && f[5] == "true"
		}) {
			t.Errorf("kubectl get spiderippool has no row '%s 4 <subnet> 1 5 true'", name)
		}
	}

	t.Run("deleted pod returns its IP", func(t *testing.T) {
		name := sandbox.PodName("test-app-1", "master")
		var p corev1.Pod
		if err := sb.Client.Get(ctxT(t), client.ObjectKey{Namespace: "default", Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		if err := sb.Client.Delete(ctxT(t), &p); err != nil {
			t.Fatal(err)
		}
		err := testenv.WaitFor(ctxT(t), func(ctx context.Context) (bool, error) {
			var ep v2beta1.SpiderEndpoint
			err := sb.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &ep)
			return apierrors.IsNotFound(err) && len(allocated(t, sb, "master-172")) == 0, client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Fatalf("after deleting %s: endpoint or record %v still there: %v", name, allocated(t, sb, "master-172"), err)
		}
		if sb.Node("master").Net == nil {
			return // a guest node: its pods' namespaces live in the guest
		}
		// The kubelet tore the pod's sandbox down through the CNI chain: its namespace is gone.
		podNS := prefix + "-pod-" + strings.ReplaceAll(string(p.UID), "-", "")[:8]
		err = testenv.WaitFor(ctxT(t), func(context.Context) (bool, error) {
			names, err := netsim.Namespaces(prefix)
			return !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, podNS) }), err
		})
		if err != nil {
			t.Fatalf("the sandbox of %s (namespace %s*) is still there: %v", name, podNS, err)
		}
	})

	if beforeChurn != nil {
		beforeChurn()
	}

	t.Run("agents restart while pods are created", func(t *testing.T) {
		var names []string
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 3 {
			for _, node := range []string{"master", "worker"} {
				for _, nic := range []string{"eth0", "eth1"} {
					name := fmt.Sprintf("churn-%s-%s-%d", node, nic, i)
					names = append(names, name)
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := sb.CreatePod(ctxT(t), "default", name, node, map[string]string{"app": "churn"},
							map[string]string{"v1.multus-cni.io/default-network": "kube-system/" + sb.CNIType() + "-" + nic})
						errs <- err
					}()
				}
			}
			if i == 1 {
				for _, node := range []string{"master", "worker"} {
					if err := sb.RestartAgent(ctxT(t), node); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := sb.WaitPodsRunning(ctxT(t), "default", names, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		var pods corev1.PodList
		if err := sb.Client.List(ctxT(t), &pods, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, p := range pods.Items {
			if other, dup := seen[p.Status.PodIP]; dup {
				t.Errorf("%s and %s both have %s", other, p.Name, p.Status.PodIP)
			}
			seen[p.Status.PodIP] = p.Name
		}
		// Every pool's records are exactly its running pods.
		records := 0
		for _, name := range []string{"master-172", "master-192", "worker-172", "worker-192"} {
			for ip, holder := range allocated(t, sb, name) {
				records++
				if pod := strings.TrimPrefix(holder, "default/"); seen[ip] != pod {
					t.Errorf("pool %s records %s for %s, but that pod has %q", name, ip, holder, ip)
				}
			}
		}
		if records != len(pods.Items) {
			t.Errorf("%d records for %d pods", records, len(pods.Items))
		}
		t.Logf("%d pods, %d records, all addresses unique", len(pods.Items), records)
	})
}

// TestOverlayScenario is the Calico-overlay guide on the sandbox: the coordinator Synced with the
// guide's CIDRs, the NAD generated, and the overlay + macvlan pods reaching what they must.
func TestOverlayScenario(t *testing.T) {
	sb := up(t, sandbox.ScenarioOverlay, "e2eov")
	var scc v2beta1.SpiderCoordinator
	if err := sb.Client.Get(ctxT(t), client.ObjectKey{Name: "default"}, &scc); err != nil {
		t.Fatal(err)
	}
	if scc.Status.Phase != v2beta1.CoordinatorPhaseSynced || !slices.Equal(scc.Status.ServiceCIDR, []string{"10.233.0.0/18"}) ||
		!slices.Equal(scc.Status.OverlayPodCIDR, []string{"10.244.64.0/18"}) || ptr.Deref(scc.Spec.Mode, "") != "overlay" {
		t.Errorf("SpiderCoordinator default: mode %q status %+v", ptr.Deref(scc.Spec.Mode, ""), scc.Status)
	}
	verify(t, sb)
	var eps v2beta1.SpiderEndpointList
	if err := sb.Client.List(ctxT(t), &eps, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	if len(eps.Items) != 2 {
		t.Fatalf("%d endpoints, want one per nginx pod", len(eps.Items))
	}
	for _, ep := range eps.Items {
		// Only net1 is Spiderpool's: the overlay assigned eth0 (SPEC.md 12(b)).
		if len(ep.Status.Current.IPs) != 1 || ep.Status.Current.IPs[0].NIC != "net1" {
			t.Errorf("endpoint %s: %+v, want only net1", ep.Name, ep.Status.Current.IPs)
		}
		if ip := ptr.Deref(ep.Status.Current.IPs[0].IPv4, ""); !netip.MustParsePrefix("10.6.0.0/16").Contains(netip.MustParsePrefix(ip).Addr()) {
			t.Errorf("endpoint %s net1 address %s is not in the 10-6-v4 pool's subnet", ep.Name, ip)
		}
	}
}

// TestSandboxDownLeavesNothing runs the command as a user would: up --detach, status, then down;
// afterwards no namespace of the prefix, no process started from the state directory and no new
// link of the host's namespace may remain.
func TestSandboxDownLeavesNothing(t *testing.T) {
	testDownLeavesNothing(t, "overlay", "host", "e2edn")
}

// TestSandboxDownLeavesNothingUML is the same with user-mode-linux nodes: no guest process, tap
// or bridge may remain either.
func TestSandboxDownLeavesNothingUML(t *testing.T) {
	requireEnv(t)
	if err := uml.Available(); err != nil {
		t.Skipf("user-mode-linux nodes cannot boot here: %v", err)
	}
	testDownLeavesNothing(t, "public-cloud", "uml", "e2edu")
}

func testDownLeavesNothing(t *testing.T, scenario, nodeKernel, prefix string) {
	requireEnv(t)
	bin := filepath.Join(binaries(t), "spiderpool-sandbox")
	dir := filepath.Join(t.TempDir(), "state")
	linksBefore := hostLinks(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("spiderpool-sandbox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("up", "--scenario", scenario, "--node-kernel", nodeKernel, "--detach", "--verify", "--dir", dir, "--prefix", prefix, "--plugin-dir", binaries(t))
	if !strings.Contains(out, "verify: every check passed") || !strings.Contains(out, "export KUBECONFIG="+filepath.Join(dir, "kubeconfig")) {
		t.Errorf("up --detach output:\n%s", out)
	}
	st, err := sandbox.ReadState(dir)
	if err != nil || !sandbox.Alive(st.PID) {
		t.Fatalf("state %+v, %v: the detached sandbox is not running", st, err)
	}
	if out := run("status", "--dir", dir); !strings.Contains(out, "running") {
		t.Errorf("status:\n%s", out)
	}
	if names, _ := netsim.Namespaces(prefix); len(names) < 2 {
		t.Errorf("namespaces while up: %v", names)
	}
	guests := umlProcesses()
	if nodeKernel == "uml" && len(guests) == 0 {
		t.Error("no linux.uml process while the UML sandbox is up")
	}
	kc := filepath.Join(dir, "kubeconfig")
	if scenario == "public-cloud" {
		if pools := kubectl(t, kc, "get", "spiderippool"); !strings.Contains(pools, "worker-192") {
			t.Errorf("kubectl get spiderippool:\n%s", pools)
		}
		if smcs := kubectl(t, kc, "get", "spidermultusconfig", "-n", "kube-system"); !strings.Contains(smcs, "ipvlan-eth0") {
			t.Errorf("kubectl get spidermultusconfig:\n%s", smcs)
		}
	}
	// kubectl against the detached sandbox: the coordinator Synced with the guide's CIDRs and
	// the NAD generated from the SpiderMultusConfig.
	if scenario == "overlay" {
		scc := kubectl(t, kc, "get", "spidercoordinator", "default", "-o", "yaml")
		for _, want := range []string{"phase: Synced", "- 10.233.0.0/18", "- 10.244.64.0/18", "mode: overlay"} {
			if !strings.Contains(scc, want) {
				t.Errorf("kubectl get spidercoordinator default -o yaml lacks %q:\n%s", want, scc)
			}
		}
		if nads := kubectl(t, kc, "get", "network-attachment-definitions", "-A"); !strings.Contains(nads, "macvlan-eth0") {
			t.Errorf("kubectl get network-attachment-definitions -A:\n%s", nads)
		}
		if pools := kubectl(t, kc, "get", "spiderippool"); !strings.Contains(pools, "10-6-v4") {
			t.Errorf("kubectl get spiderippool:\n%s", pools)
		}
	}
	out = run("down", "--dir", dir)
	t.Logf("down:\n%s", out)
	if sandbox.Alive(st.PID) {
		t.Errorf("sandbox process %d still runs", st.PID)
	}
	if names, _ := netsim.Namespaces(prefix); len(names) > 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if left := umlProcesses(); len(left) > 0 {
		t.Errorf("guest processes left: %v", left)
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
	// down is idempotent and cleans up after a crash too: nothing left to do now.
	if out := run("down", "--dir", dir); !strings.Contains(out, "sandbox removed") {
		t.Errorf("second down:\n%s", out)
	}
}

func hostLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}

// umlProcesses lists the pids of running linux.uml processes.
func umlProcesses() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasSuffix(exe, "linux.uml") {
			out = append(out, pid)
		}
	}
	return out
}
