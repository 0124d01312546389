package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/ctl"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// ctlResult is one in-process run of spiderpoolctl.
type ctlResult struct {
	code        int
	out, errOut string
}

// runCtl runs spiderpoolctl through its cobra root against the test apiserver.
func runCtl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := ctl.Run(testContext(t), ctl.Options{Out: &out, Err: &errOut, RESTConfig: env.Config}, args...)
	t.Logf("spiderpoolctl %s -> exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return ctlResult{code: code, out: out.String(), errOut: errOut.String()}
}

// ctlSetup creates a node, a pool the test's pods name, an agent for the node, and allocates one
// address through the real plugin and agent for each named pod in namespace default.
func ctlSetup(t *testing.T, node, pool, subnet, ips string, pods ...string) (map[string]*corev1.Pod, map[string]string, *runningAgent) {
	t.Helper()
	a := gcSetup(t, node, pool, subnet, ips)
	objs, addrs := map[string]*corev1.Pod{}, map[string]string{}
	for _, name := range pods {
		p := makePod(t, "default", name, node, gcPodAnno(pool), nil)
		gcForgetEndpoint(t, name)
		objs[name], addrs[name] = p, gcAllocate(t, a, p)
	}
	return objs, addrs, a
}

// setRecords replaces the records of pool, as a buggy or racing writer could leave them.
func setRecords(t *testing.T, pool string, recs v2beta1.PoolIPAllocations) {
	t.Helper()
	p := getPool(t, pool)
	if err := p.Status.SetAllocations(recs); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(testContext(t), p); err != nil {
		t.Fatalf("write records of pool %s: %v", pool, err)
	}
}

func getEndpoint(t *testing.T, name string) *v2beta1.SpiderEndpoint {
	t.Helper()
	ep := &v2beta1.SpiderEndpoint{}
	err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: "default", Name: name}, ep)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// doctor is clean on pods allocated through a real agent, and then names a hand-injected
// duplicate and the orphan record and endpoint of a pod deleted without DEL, exiting 1.
func TestCtlDoctor(t *testing.T) {
	const node, pool, pool2 = "ctl-node-1", "ctl-doc", "ctl-doc-b"
	pods, addrs, _ := ctlSetup(t, node, pool, "10.180.1.0/24", "10.180.1.10-10.180.1.20", "ctl-doc-1", "ctl-doc-2")

	r := runCtl(t, "doctor", "--pool", pool)
	if r.code != ctl.ExitOK || !strings.Contains(r.out, "0 finding(s)") {
		t.Fatalf("doctor on a healthy pool: exit %d, output %q %q; want exit 0 and no finding", r.code, r.out, r.errOut)
	}
	if !strings.Contains(r.out, "checked ") {
		t.Errorf("doctor did not say what it checked: %q", r.out)
	}

	if r := runCtl(t, "doctor", "--pool", "ctl-no-such-pool"); r.code != ctl.ExitError || !strings.Contains(r.errOut, `SpiderIPPool "ctl-no-such-pool" not found`) {
		t.Errorf("doctor --pool of a missing pool: exit %d, stderr %q; want exit %d naming it", r.code, r.errOut, ctl.ExitError)
	}

	// A second pool of the same subnet (no webhook runs here to refuse the overlap) records the
	// first pod's address for a third, live pod: one address, two holders.
	createPool(t, pool2, "10.180.1.0/24", "10.180.1.10-10.180.1.12")
	intruder := makePod(t, "default", "ctl-doc-3", node, gcPodAnno(pool2), nil)
	setRecords(t, pool2, v2beta1.PoolIPAllocations{addrs["ctl-doc-1"]: {NamespacedName: "default/ctl-doc-3", PodUID: string(intruder.UID)}})
	// A pod deleted without CNI DEL (no GC runs in this test) leaves its record and endpoint.
	gone := pods["ctl-doc-2"]
	if err := env.Client.Delete(testContext(t), gone, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	err := testenv.WaitFor(testContext(t), func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(gone), &corev1.Pod{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}

	r = runCtl(t, "doctor", "--pool", pool, "--pool", pool2)
	if r.code != ctl.ExitFindings {
		t.Fatalf("doctor exit %d, want %d (findings)", r.code, ctl.ExitFindings)
	}
	for _, want := range []string{
		// the duplicate, with both pools and both pods
		fmt.Sprintf("IP %s is recorded 2 times: SpiderIPPool %s for pod default/ctl-doc-1 (UID %s); SpiderIPPool %s for pod default/ctl-doc-3 (UID %s)",
			addrs["ctl-doc-1"], pool, pods["ctl-doc-1"].UID, pool2, intruder.UID),
		// the orphan record and its endpoint
		fmt.Sprintf("SpiderIPPool %s records %s for pod default/ctl-doc-2 (UID %s), which is gone", pool, addrs["ctl-doc-2"], gone.UID),
		fmt.Sprintf("SpiderEndpoint default/ctl-doc-2 is of pod UID %s, which is gone", gone.UID),
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("doctor output lacks %q", want)
		}
	}

	r = runCtl(t, "doctor", "--pool", pool, "--pool", pool2, "-o", "json")
	var rep ctl.DoctorReport
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("doctor -o json: %v: %q", err, r.out)
	}
	got := map[string]int{}
	for _, f := range rep.Findings {
		got[f.Check+" "+f.IP]++
	}
	want := map[string]int{
		ctl.CheckDuplicateIP + " " + addrs["ctl-doc-1"]:           1,
		ctl.CheckRecordWithoutEndpoint + " " + addrs["ctl-doc-1"]: 1, // ctl-doc-3 has no endpoint for its record
		ctl.CheckOrphanRecord + " " + addrs["ctl-doc-2"]:          1,
		ctl.CheckOrphanEndpoint + " ":                             1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || r.code != ctl.ExitFindings {
		t.Errorf("doctor -o json findings %v (exit %d), want %v (exit 1)", got, r.code, want)
	}
}

// ip show names the holder; ip release refuses a live holder without --force, then releases
// through the pool's compare-and-swap and updates the endpoint, touching no other record; the IP
// of a gone pod is released without --force.
func TestCtlIPShowAndRelease(t *testing.T) {
	const node, pool = "ctl-node-2", "ctl-rel"
	pods, addrs, _ := ctlSetup(t, node, pool, "10.180.2.0/24", "10.180.2.10-10.180.2.20", "ctl-rel-a", "ctl-rel-b")
	a, b := pods["ctl-rel-a"], pods["ctl-rel-b"]

	t.Run("show", func(t *testing.T) {
		r := runCtl(t, "ip", "show", addrs["ctl-rel-a"])
		if r.code != 0 {
			t.Fatalf("ip show exit %d", r.code)
		}
		for _, want := range []string{addrs["ctl-rel-a"], pool, "default/ctl-rel-a", string(a.UID), node, "eth0", "Pending", "lists it"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("ip show output lacks %q", want)
			}
		}
		r = runCtl(t, "ip", "show", "--ip", addrs["ctl-rel-b"], "-o", "json")
		var rep ctl.IPReport
		if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
			t.Fatalf("ip show -o json: %v: %q", err, r.out)
		}
		if len(rep.Holders) != 1 || rep.Holders[0].Pod != "default/ctl-rel-b" || rep.Holders[0].PodUID != string(b.UID) ||
			rep.Holders[0].Pool != pool || rep.Holders[0].Node != node || rep.Holders[0].Interface != "eth0" || !rep.Holders[0].Recorded {
			t.Errorf("ip show --ip -o json = %+v", rep)
		}
		r = runCtl(t, "ip", "show", "10.180.2.19")
		if r.code == 0 || !strings.Contains(r.errOut, "IP 10.180.2.19 is not allocated") {
			t.Errorf("ip show of a free IP: exit %d, stderr %q; want non-zero and 'not allocated'", r.code, r.errOut)
		}
	})

	t.Run("release a live pod's IP", func(t *testing.T) {
		before := poolRecords(t, pool)
		epB := getEndpoint(t, b.Name)
		r := runCtl(t, "ip", "release", addrs["ctl-rel-a"])
		want := fmt.Sprintf("IP %s is held by pod default/ctl-rel-a (UID %s) on node %s", addrs["ctl-rel-a"], a.UID, node)
		if r.code == 0 || !strings.Contains(r.errOut, want) || !strings.Contains(r.errOut, "--force") {
			t.Fatalf("release without --force: exit %d, stderr %q; want a refusal saying %q", r.code, r.errOut, want)
		}
		if got := poolRecords(t, pool); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("refused release changed the records: %v, was %v", got, before)
		}

		r = runCtl(t, "ip", "release", "--ip", addrs["ctl-rel-a"], "--force")
		if r.code != 0 || !strings.Contains(r.out, "released "+addrs["ctl-rel-a"]+" from SpiderIPPool "+pool) {
			t.Fatalf("release --force: exit %d, output %q", r.code, r.out)
		}
		after := poolRecords(t, pool)
		delete(before, addrs["ctl-rel-a"])
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("records after release = %v, want %v (only the released IP gone)", after, before)
		}
		if p := getPool(t, pool); ptr.Deref(p.Status.AllocatedIPCount, -1) != int64(len(after)) {
			t.Errorf("allocatedIPCount = %v, want %d", ptr.Deref(p.Status.AllocatedIPCount, -1), len(after))
		}
		epA := getEndpoint(t, a.Name)
		if epA == nil || epA.Status.Current.UID != string(a.UID) || len(epA.Status.Current.IPs) != 0 {
			t.Errorf("endpoint of the live pod after release = %+v, want it kept with no address", epA)
		}
		if got := getEndpoint(t, b.Name); got == nil || got.ResourceVersion != epB.ResourceVersion {
			t.Errorf("endpoint of the other pod was written (resourceVersion %s -> %v)", epB.ResourceVersion, got)
		}
		// The address is free again: show says so.
		if r := runCtl(t, "ip", "show", addrs["ctl-rel-a"]); r.code == 0 {
			t.Errorf("ip show of the released IP exited 0")
		}
	})

	t.Run("release a gone pod's IP", func(t *testing.T) {
		if err := env.Client.Delete(testContext(t), b, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		err := testenv.WaitFor(testContext(t), func(ctx context.Context) (bool, error) {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(b), &corev1.Pod{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Fatal(err)
		}
		r := runCtl(t, "ip", "release", addrs["ctl-rel-b"])
		if r.code != 0 || !strings.Contains(r.out, "deleted SpiderEndpoint default/ctl-rel-b") {
			t.Fatalf("release of a gone pod's IP: exit %d, output %q %q", r.code, r.out, r.errOut)
		}
		if got := poolRecords(t, pool); len(got) != 0 {
			t.Errorf("records after both releases = %v, want none", got)
		}
		if ep := getEndpoint(t, b.Name); ep != nil {
			t.Errorf("endpoint of the gone pod still exists: %+v", ep.Status)
		}
		if r := runCtl(t, "doctor", "--pool", pool); r.code != 0 {
			t.Errorf("doctor after the releases: exit %d", r.code)
		}
	})
}

// pool usage counts the records of each pool, and of a node-bound pool per node.
func TestCtlPoolUsage(t *testing.T) {
	const node, pool, nodePool = "ctl-node-3", "ctl-use", "ctl-use-node"
	_, _, agent := ctlSetup(t, node, pool, "10.180.3.0/24", "10.180.3.10-10.180.3.29", "ctl-use-1", "ctl-use-2", "ctl-use-3")
	np := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: nodePool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.180.4.0/24", IPs: []string{"10.180.4.10-10.180.4.13"},
			NodeName: []string{node, "ctl-node-elsewhere"}},
	}
	if err := env.Client.Create(testContext(t), np); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), np) })
	p := makePod(t, "default", "ctl-use-4", node, gcPodAnno(nodePool), nil)
	gcForgetEndpoint(t, p.Name)
	gcAllocate(t, agent, p)

	r := runCtl(t, "pool", "usage", pool, nodePool)
	if r.code != 0 {
		t.Fatalf("pool usage exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	want := [][]string{
		{"NAME", "VERSION", "SUBNET", "TOTAL", "ALLOCATED", "FREE", "DISABLED", "NODE"},
		{pool, "4", "10.180.3.0/24", "20", "3", "17", "false", "-"},
		{nodePool, "4", "10.180.4.0/24", "4", "1", "3", "false", node + ",ctl-node-elsewhere"},
		{nodePool, "-", "-", "-", "1", "-", "-", node},
		{nodePool, "-", "-", "-", "0", "-", "-", "ctl-node-elsewhere"},
	}
	if len(lines) != len(want) {
		t.Fatalf("pool usage printed %d lines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("line %d = %q, want fields %v", i, lines[i], w)
		}
	}

	r = runCtl(t, "pool", "usage", "-o", "json", nodePool)
	var us []ctl.PoolUsage
	if err := json.Unmarshal([]byte(r.out), &us); err != nil {
		t.Fatalf("pool usage -o json: %v: %q", err, r.out)
	}
	if len(us) != 1 || us[0].Allocated != 1 || len(us[0].Nodes) != 2 || us[0].Nodes[0] != (ctl.NodeUsage{Node: node, Allocated: 1}) {
		t.Errorf("pool usage -o json = %+v", us)
	}
	if r := runCtl(t, "pool", "usage", "ctl-no-such-pool"); r.code == 0 || !strings.Contains(r.errOut, `SpiderIPPool "ctl-no-such-pool" not found`) {
		t.Errorf("pool usage of a missing pool: exit %d, stderr %q", r.code, r.errOut)
	}
}

// ctlOrphanEndpoint creates a SpiderEndpoint of a pod that never existed, holding no record.
func ctlOrphanEndpoint(t *testing.T, name, node, pool string) *v2beta1.SpiderEndpoint {
	t.Helper()
	ep := build.Endpoint("default", name, build.Finalizer(v2beta1.Finalizer), build.PodUID(name+"-uid"), build.OnNode(node),
		build.IPv4("eth0", "10.180.5.99/24", pool))
	if err := env.Client.Create(testContext(t), ep); err != nil {
		t.Fatal(err)
	}
	gcForgetEndpoint(t, name)
	return ep
}

// httpGet returns the status code and body of GET url.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// spiderpoolctl gc reaches a real controller.Run through its HTTP API on the health port: the
// full scan it triggers deletes an orphan SpiderEndpoint that no event points at (it survives
// until then: the startup scan is over and the next is ten minutes away), and the orphan record
// of a pod deleted without DEL is reclaimed (the pod's deletion event may already do that). The
// probes and the status summary are served on the same port.
func TestCtlGCThroughController(t *testing.T) {
	const node, pool = "ctl-node-4", "ctl-gc"
	pods, addrs, _ := ctlSetup(t, node, pool, "10.180.5.0/24", "10.180.5.10-10.180.5.20", "ctl-gc-live", "ctl-gc-gone")

	// An orphan endpoint only a full scan finds: its deletion tells that the startup scan has
	// listed the endpoints, so that one created afterwards waits for the next scan.
	canary := ctlOrphanEndpoint(t, "ctl-gc-canary", node, pool)

	// The controller's pool reconciler adds its finalizer; nothing removes it once it stops.
	t.Cleanup(func() {
		deleteIgnoringFinalizers(context.Background(), t, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool}})
	})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	runController(t, func(cfg *controller.Config) { cfg.HealthAddr = addr })
	base := "http://" + addr
	err := testenv.WaitFor(testContext(t), func(ctx context.Context) (bool, error) {
		code, _, err := httpGet(ctx, base+"/readyz")
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("controller never answered /readyz on %s: %v", addr, err)
	}
	if code, body, err := httpGet(testContext(t), base+"/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz = %d %q %v", code, body, err)
	}
	code, body, err := httpGet(testContext(t), base+"/v1/ipam/status")
	if err != nil || code != http.StatusOK || !hasAll(body, `"leader":true`, `"gcEnabled":true`) {
		t.Errorf("GET /v1/ipam/status = %d %q %v", code, body, err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer wcancel()
	err = testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(canary), &v2beta1.SpiderEndpoint{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("the startup scan did not delete the canary orphan endpoint: %v", err)
	}

	orphan := ctlOrphanEndpoint(t, "ctl-gc-orphan", node, pool)
	gone := pods["ctl-gc-gone"]
	if err := env.Client.Delete(testContext(t), gone, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if getEndpoint(t, orphan.Name) == nil {
		t.Fatal("orphan SpiderEndpoint deleted before any full scan was asked for: the test would prove nothing")
	}

	r := runCtl(t, "gc", "--address", addr)
	if r.code != 0 || !strings.Contains(r.out, "full IP GC scan triggered") {
		t.Fatalf("spiderpoolctl gc: exit %d, output %q %q", r.code, r.out, r.errOut)
	}
	wctx2, wcancel2 := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer wcancel2()
	err = testenv.WaitFor(wctx2, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(orphan), &v2beta1.SpiderEndpoint{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("orphan SpiderEndpoint not deleted after spiderpoolctl gc: %v", err)
	}
	gcWaitReclaimed(t, pool, gone.Name, string(gone.UID), time.Now())
	if got := poolRecords(t, pool); len(got) != 1 || got[addrs["ctl-gc-live"]] != string(pods["ctl-gc-live"].UID) {
		t.Errorf("records after GC = %v, want only the live pod's %s", got, addrs["ctl-gc-live"])
	}
	if r := runCtl(t, "doctor", "--pool", pool); r.code != 0 {
		t.Errorf("doctor after GC: exit %d", r.code)
	}
}

// ip set binds a free IP to a pod that has none: the pool records it for the pod's UID, a new
// SpiderEndpoint lists it, and the real agent's ADD for that interface then returns it. IPs held
// by another pod and interfaces that already have an address are refused.
func TestCtlIPSet(t *testing.T) {
	const node, pool = "ctl-node-5", "ctl-set"
	pods, addrs, agent := ctlSetup(t, node, pool, "10.180.6.0/24", "10.180.6.10-10.180.6.20", "ctl-set-a")
	b := makePod(t, "default", "ctl-set-b", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, b.Name)

	r := runCtl(t, "ip", "set", "10.180.6.15", "--pod", b.Name, "--namespace", "default")
	if r.code != 0 || !strings.Contains(r.out, "set 10.180.6.15 from SpiderIPPool ctl-set on interface eth0 of pod default/ctl-set-b") {
		t.Fatalf("ip set: exit %d, output %q %q", r.code, r.out, r.errOut)
	}
	recs := poolRecords(t, pool)
	if recs["10.180.6.15"] != string(b.UID) || recs[addrs["ctl-set-a"]] != string(pods["ctl-set-a"].UID) || len(recs) != 2 {
		t.Fatalf("records after ip set = %v", recs)
	}
	ep := getEndpoint(t, b.Name)
	if ep == nil || ep.Status.Current.UID != string(b.UID) || ep.Status.Current.Node != node || ep.Status.OwnerControllerType != "Pod" ||
		len(ep.Status.Current.IPs) != 1 || ep.Status.Current.IPs[0].NIC != "eth0" || deref(ep.Status.Current.IPs[0].IPv4) != "10.180.6.15/24" ||
		deref(ep.Status.Current.IPs[0].IPv4Pool) != pool || len(ep.Finalizers) != 1 {
		t.Fatalf("endpoint after ip set = %+v %+v", ep.ObjectMeta, ep.Status)
	}
	// The agent reads what ip set wrote as the pod's allocation.
	if got := gcAllocate(t, agent, b); got != "10.180.6.15" {
		t.Errorf("agent ADD for eth0 after ip set returned %s, want 10.180.6.15", got)
	}

	if r := runCtl(t, "ip", "set", "--ip", "10.180.6.15", "--pod", b.Name); r.code != 0 {
		t.Errorf("repeated ip set: exit %d, want 0", r.code)
	}
	r = runCtl(t, "ip", "set", addrs["ctl-set-a"], "--pod", b.Name, "--interface", "net1")
	if r.code == 0 || !strings.Contains(r.errOut, fmt.Sprintf("IP %s is recorded in SpiderIPPool %s for pod default/ctl-set-a (UID %s", addrs["ctl-set-a"], pool, pods["ctl-set-a"].UID)) {
		t.Errorf("ip set of a held IP: exit %d, stderr %q", r.code, r.errOut)
	}
	r = runCtl(t, "ip", "set", "10.180.6.16", "--pod", b.Name)
	if r.code == 0 || !strings.Contains(r.errOut, "interface eth0 already has 10.180.6.15/24") {
		t.Errorf("ip set on a busy interface: exit %d, stderr %q", r.code, r.errOut)
	}
	if _, ok := poolRecords(t, pool)["10.180.6.16"]; ok {
		t.Errorf("refused ip set left a record of 10.180.6.16")
	}
	r = runCtl(t, "ip", "set", "10.180.6.16", "--pod", b.Name, "--interface", "net1")
	if r.code != 0 {
		t.Fatalf("ip set on net1: exit %d", r.code)
	}
	if r := runCtl(t, "ip", "show", "10.180.6.16"); r.code != 0 || !hasAll(r.out, "net1", "default/ctl-set-b", "lists it") {
		t.Errorf("ip show after ip set on net1: exit %d, output %q", r.code, r.out)
	}
	if r := runCtl(t, "doctor", "--pool", pool); r.code != 0 {
		t.Errorf("doctor after ip set: exit %d", r.code)
	}
}

// doctor and ip release apply the StatefulSet rule of the agent and the GC
// (workload.StatefulSetWantsPod) through the live API: a gone member its StatefulSet expects back
// keeps its IP (no finding, release refused without --force) until the StatefulSet is scaled
// down; with --enable-statefulset=false the same records are orphans.
func TestCtlStatefulSetMember(t *testing.T) {
	const node, pool = "ctl-node-6", "ctl-sts"
	agent := gcSetup(t, node, pool, "10.180.8.0/24", "10.180.8.10-10.180.8.20")
	sts := build.StatefulSet("default", "ctl-db", build.Replicas(2), build.PodSelector(build.Selector("app", "ctl-db")),
		build.Template(build.Label("app", "ctl-db"), build.Container("c", "busybox")))
	if err := env.Client.Create(testContext(t), sts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), sts) })
	pod := stsFixedPod(t, sts, "ctl-db-1", node, gcPodAnno(pool))
	gcForgetEndpoint(t, pod.Name)
	addr := gcAllocate(t, agent, pod)
	if err := env.Client.Delete(testContext(t), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}

	if r := runCtl(t, "doctor", "--pool", pool); r.code != ctl.ExitOK {
		t.Errorf("doctor on a gone member its StatefulSet expects: exit %d, want 0", r.code)
	}
	r := runCtl(t, "ip", "release", addr)
	if r.code == 0 || !strings.Contains(r.errOut, "of StatefulSet default/ctl-db, which expects it back") {
		t.Errorf("release of a kept member's IP: exit %d, stderr %q; want a refusal", r.code, r.errOut)
	}
	if got := poolRecords(t, pool)[addr]; got != string(pod.UID) {
		t.Fatalf("record of %s = %q after the refused release, want %s", addr, got, pod.UID)
	}
	r = runCtl(t, "doctor", "--pool", pool, "--enable-statefulset=false")
	if r.code != ctl.ExitFindings || !hasAll(r.out, ctl.CheckOrphanRecord, ctl.CheckOrphanEndpoint, "default/ctl-db-1") {
		t.Errorf("doctor --enable-statefulset=false: exit %d; want the member's record and endpoint as orphans", r.code)
	}

	scaled := sts.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](1)
	if err := env.Client.Patch(testContext(t), scaled, client.MergeFrom(sts)); err != nil {
		t.Fatal(err)
	}
	r = runCtl(t, "doctor", "--pool", pool)
	if r.code != ctl.ExitFindings || !strings.Contains(r.out, fmt.Sprintf("SpiderIPPool %s records %s for pod default/ctl-db-1 (UID %s), which is gone, and StatefulSet ctl-db does not keep it", pool, addr, pod.UID)) {
		t.Errorf("doctor after the scale-down: exit %d; want the member's record as an orphan", r.code)
	}
	if r := runCtl(t, "ip", "release", addr); r.code != 0 {
		t.Errorf("release after the scale-down: exit %d", r.code)
	}
	if r := runCtl(t, "doctor", "--pool", pool); r.code != ctl.ExitOK {
		t.Errorf("doctor after releasing the scaled-down member: exit %d", r.code)
	}
}
