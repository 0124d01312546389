package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/controller/httpapi"
	"github.com/spiderpool-go/spiderpool/internal/ctl"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// The readers and writers of pool records outside the agent (the IP GC, PUT /v1/ipam/ip,
// spiderpoolctl) on a pool in block format (docs/design/ipam-blocks.md), allocated from by the
// real agent. No status mirror runs here: the pool's status holds no record, so a reader that
// still read it would see none.

// blockFormatSetup creates a node, a pool in block format only the test's pods name, and an agent
// for the node, which allocates from the pool through SpiderIPBlocks.
func blockFormatSetup(t *testing.T, node, pool, subnet, ips string) *runningAgent {
	t.Helper()
	makeNode(t, node, nil)
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: pool, Annotations: map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: subnet, IPs: []string{ips}},
	}
	if err := env.Client.Create(testContext(t), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	return startAgent(t, node, nil)
}

// blockFormatAllocate is gcAllocate checking that the record landed in a block, not the status.
func blockFormatAllocate(t *testing.T, a *runningAgent, pool string, pod *corev1.Pod) string {
	t.Helper()
	addr := gcAllocate(t, a, pod)
	if got := blockRecordsOf(t, pool)[addr]; got != string(pod.UID) {
		t.Fatalf("block record of %s = %q, want %s", addr, got, pod.UID)
	}
	if recs := poolRecords(t, pool); len(recs) != 0 {
		t.Fatalf("pool %s in block format has status records %v", pool, recs)
	}
	return addr
}

// blockRecordsOf returns the records of pool's blocks, read live: IP -> pod UID.
func blockRecordsOf(t *testing.T, pool string) map[string]string {
	t.Helper()
	recs, err := blockstore.Records(testContext(t), env.Client, getPool(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for a, r := range recs {
		out[ip.FormatAddr(a)] = r.PodUID
	}
	return out
}

// blockOf returns the live block of pool holding addr.
func blockOf(t *testing.T, pool, addr string) *ipblock.SpiderIPBlock {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(testContext(t), &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if _, ok := list.Items[i].Spec.Records[addr]; ok {
			return &list.Items[i]
		}
	}
	t.Fatalf("no block of %s records %s", pool, addr)
	return nil
}

// blockFormatWaitReclaimed waits until pool's blocks hold no record of uid and no endpoint name of
// uid is left, and returns how long that took from since.
func blockFormatWaitReclaimed(t *testing.T, pool, name, uid string, since time.Time) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer cancel()
	err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		for _, u := range blockRecordsOf(t, pool) {
			if u == uid {
				return false, nil
			}
		}
		return gcEndpointUID(t, name) != uid, nil
	})
	if err != nil {
		t.Fatalf("IP of pod %s (UID %s) not reclaimed from the blocks within %v: records %v, endpoint UID %q",
			name, uid, gcReclaimBudget, blockRecordsOf(t, pool), gcEndpointUID(t, name))
	}
	return time.Since(since)
}

// The GC reclaims from a block the record of a pod deleted without DEL, found through a block
// event, and a live pod's record and endpoint survive it and full scans.
func TestGCInBlocksReclaimsDeletedPod(t *testing.T) {
	const node, pool = "gcb-node-1", "gcb-pool-1"
	agent := blockFormatSetup(t, node, pool, "10.190.1.0/24", "10.190.1.10-10.190.1.40")
	startGCController(t, controller.GCOptions{Interval: time.Second, EnableStatefulSet: true})

	live := makePod(t, "default", "gcb-live", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, live.Name)
	liveAddr := blockFormatAllocate(t, agent, pool, live)

	gone := makePod(t, "default", "gcb-gone", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, gone.Name)
	blockFormatAllocate(t, agent, pool, gone)
	start := time.Now()
	if err := env.Client.Delete(testContext(t), gone, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	t.Logf("IP and SpiderEndpoint of the deleted pod reclaimed from its block %v after the deletion",
		blockFormatWaitReclaimed(t, pool, gone.Name, string(gone.UID), start))

	time.Sleep(3 * time.Second) // at least two full scans
	if got := blockRecordsOf(t, pool); len(got) != 1 || got[liveAddr] != string(live.UID) {
		t.Errorf("records after full scans = %v, want only the live pod's %s", got, liveAddr)
	}
	if got := gcEndpointUID(t, live.Name); got != string(live.UID) {
		t.Errorf("live pod's SpiderEndpoint UID = %q, want %s", got, live.UID)
	}

	// A record the agent never wrote an endpoint for (killed between its block write and its
	// endpoint write) of a pod that no longer exists: the block's event leads the GC to it.
	const leaked = "10.190.1.30"
	if liveAddr == leaked {
		t.Fatal("the live pod got the address the test injects")
	}
	leak := blockOf(t, pool, liveAddr)
	leak.Spec.Records[leaked] = ipblock.BlockRecord{Pod: "default/gcb-never", PodUID: "uid-never", Node: node}
	if err := env.Client.Update(testContext(t), leak); err != nil {
		t.Fatal(err)
	}
	t.Logf("leaked block record reclaimed %v after it was written", blockFormatWaitReclaimed(t, pool, "gcb-never", "uid-never", time.Now()))
	if got := blockRecordsOf(t, pool); len(got) != 1 || got[liveAddr] != string(live.UID) {
		t.Errorf("records after the leak's reclaim = %v, want only the live pod's %s", got, liveAddr)
	}
}

// A StatefulSet member's record in a block is kept while its StatefulSet expects the member back
// and reclaimed once it is scaled down, as for a pool in status format (TestGCStatefulSetMember).
func TestGCInBlocksStatefulSetMember(t *testing.T) {
	const node, pool = "gcb-node-2", "gcb-pool-2"
	agent := blockFormatSetup(t, node, pool, "10.190.2.0/24", "10.190.2.10-10.190.2.40")
	gc := startGCController(t, controller.GCOptions{Interval: time.Minute, EnableStatefulSet: true})

	labels := map[string]string{"app": "gcb-db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gcb-db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if err := env.Client.Create(testContext(t), sts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), sts) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gcb-db-1", Labels: labels, Annotations: gcPodAnno(pool),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := env.Client.Create(testContext(t), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	gcForgetEndpoint(t, pod.Name)
	addr := blockFormatAllocate(t, agent, pool, pod)
	if err := env.Client.Delete(testContext(t), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}

	gc.TriggerFullScan()
	time.Sleep(2 * time.Second)
	if got := blockRecordsOf(t, pool)[addr]; got != string(pod.UID) {
		t.Fatalf("member's block record of %s = %q while its StatefulSet expects it, want %s", addr, got, pod.UID)
	}
	if got := gcEndpointUID(t, pod.Name); got != string(pod.UID) {
		t.Fatalf("member's SpiderEndpoint UID = %q while its StatefulSet expects it, want %s", got, pod.UID)
	}

	start := time.Now()
	scaled := sts.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](1)
	if err := env.Client.Patch(testContext(t), scaled, client.MergeFrom(sts)); err != nil {
		t.Fatal(err)
	}
	t.Logf("scaled-down member reclaimed from its block %v after the scale-down", blockFormatWaitReclaimed(t, pool, pod.Name, string(pod.UID), start))
}

// PUT /v1/ipam/ip on a pool in block format records the address in the block holding it (a block
// of nobody when no node claimed its range) with the pod's node, the agent's ADD then returns it,
// and an address another pod holds in a block is refused with nothing written.
func TestControllerAPISetIPInBlocks(t *testing.T) {
	const node, pool = "apib-node", "apib-set"
	agent := blockFormatSetup(t, node, pool, "10.190.3.0/24", "10.190.3.10-10.190.3.40")
	a := makePod(t, "default", "apib-a", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, a.Name)
	addrA := blockFormatAllocate(t, agent, pool, a)
	b := makePod(t, "default", "apib-b", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, b.Name)
	srv := httptest.NewServer(httpapi.Handler(httpapi.Options{Live: env.Client, EnableStatefulSet: true, Logger: quietLogger()}))
	t.Cleanup(srv.Close)

	// An address of the one range of the pool the agent has not claimed (it fills its first block).
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(testContext(t), &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil || len(list.Items) != 1 {
		t.Fatalf("blocks of %s: %d, %v; want the agent's one", pool, len(list.Items), err)
	}
	far, farBlock := "10.190.3.35", "10.190.3.32/27"
	if list.Items[0].Spec.CIDR == farBlock {
		far, farBlock = "10.190.3.12", "10.190.3.0/27"
	}
	status, got, fail := putIP(t, srv.URL, httpapi.SetIPRequest{IP: far, Pool: pool, PodNamespace: "default", PodName: b.Name, PodUID: string(b.UID)})
	if status != http.StatusOK || !got.Recorded || got.IP != far+"/24" {
		t.Fatalf("PUT: %d %+v %+v", status, got, fail)
	}
	recs := blockRecordsOf(t, pool)
	if recs[far] != string(b.UID) || recs[addrA] != string(a.UID) || len(recs) != 2 {
		t.Fatalf("block records after PUT = %v", recs)
	}
	if st := poolRecords(t, pool); len(st) != 0 {
		t.Errorf("PUT wrote the status of a pool in block format: %v", st)
	}
	blk := blockOf(t, pool, far)
	if blk.Spec.CIDR != farBlock || blk.Spec.Node != "" || blk.Spec.Records[far].Node != node || blk.Labels[ipblock.HolderLabel(node)] != "true" {
		t.Errorf("block of %s = %s node %q, record %+v, labels %v; want a block of nobody whose record names %s and carries its holder label",
			far, blk.Spec.CIDR, blk.Spec.Node, blk.Spec.Records[far], blk.Labels, node)
	}
	if addr := gcAllocate(t, agent, b); addr != far {
		t.Errorf("agent ADD for eth0 after PUT returned %s, want %s", addr, far)
	}

	blockRV := blockOf(t, pool, addrA).ResourceVersion
	status, got, fail = putIP(t, srv.URL, httpapi.SetIPRequest{IP: addrA, PodNamespace: "default", PodName: b.Name, Interface: "net1"})
	want := fmt.Sprintf("IP %s is recorded in SpiderIPPool %s for pod default/apib-a (UID %s)", addrA, pool, a.UID)
	if status != http.StatusConflict || fail.Field != "ip" || !strings.Contains(fail.Error, want) {
		t.Errorf("PUT of a held IP: %d %+v %+v, want 409 on ip saying %q", status, got, fail, want)
	}
	if got := blockOf(t, pool, addrA); got.ResourceVersion != blockRV || got.Spec.Records[addrA].PodUID != string(a.UID) {
		t.Errorf("refused PUT wrote the block: %+v", got.Spec.Records)
	}
	if ep := getEndpoint(t, b.Name); len(ep.Status.Current.IPs) != 1 {
		t.Errorf("refused PUT changed the endpoint: %+v", ep.Status)
	}
}

// spiderpoolctl reads the records of a pool in block format from its blocks: doctor is clean on
// pods allocated through the real agent (with the count the mirror would write), then names the
// record of a pod deleted without DEL; ip show names its holder; ip release removes it from its
// block without --force, the pod being gone.
func TestCtlInBlocks(t *testing.T) {
	const node, pool = "ctlb-node", "ctlb-pool"
	agent := blockFormatSetup(t, node, pool, "10.190.4.0/24", "10.190.4.10-10.190.4.40")
	pods, addrs := map[string]*corev1.Pod{}, map[string]string{}
	for _, name := range []string{"ctlb-1", "ctlb-2"} {
		p := makePod(t, "default", name, node, gcPodAnno(pool), nil)
		gcForgetEndpoint(t, name)
		pods[name], addrs[name] = p, blockFormatAllocate(t, agent, pool, p)
	}
	// The controller's mirror would keep the count; none runs here.
	p := getPool(t, pool)
	p.Status.AllocatedIPCount = ptr.To[int64](2)
	if err := env.Client.Status().Update(testContext(t), p); err != nil {
		t.Fatal(err)
	}

	r := runCtl(t, "doctor", "--pool", pool)
	if r.code != ctl.ExitOK || !strings.Contains(r.out, "checked 1 SpiderIPPools, 2 IP records") || !strings.Contains(r.out, "0 finding(s)") {
		t.Fatalf("doctor on a healthy block-format pool: exit %d, output %q %q; want 2 records and no finding", r.code, r.out, r.errOut)
	}

	gone := pods["ctlb-2"]
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
	r = runCtl(t, "doctor", "--pool", pool)
	orphan := fmt.Sprintf("SpiderIPPool %s records %s for pod default/ctlb-2 (UID %s), which is gone", pool, addrs["ctlb-2"], gone.UID)
	if r.code != ctl.ExitFindings || !strings.Contains(r.out, orphan) {
		t.Errorf("doctor after the deletion: exit %d, output %q; want it to say %q", r.code, r.out, orphan)
	}

	r = runCtl(t, "ip", "show", addrs["ctlb-1"])
	if r.code != 0 || !hasAll(r.out, addrs["ctlb-1"], pool, "default/ctlb-1", string(pods["ctlb-1"].UID), "lists it") {
		t.Errorf("ip show: exit %d, output %q", r.code, r.out)
	}

	r = runCtl(t, "ip", "release", addrs["ctlb-2"])
	if r.code != 0 || !strings.Contains(r.out, "released "+addrs["ctlb-2"]+" from SpiderIPPool "+pool) {
		t.Fatalf("ip release of a gone pod's IP: exit %d, output %q %q", r.code, r.out, r.errOut)
	}
	if got := blockRecordsOf(t, pool); len(got) != 1 || got[addrs["ctlb-1"]] != string(pods["ctlb-1"].UID) {
		t.Errorf("block records after ip release = %v, want only ctlb-1's", got)
	}
	if ep := getEndpoint(t, gone.Name); ep != nil {
		t.Errorf("endpoint of the gone pod still exists: %+v", ep.Status)
	}
}

// A departed node's blocks go back to the pool: once its Node object is deleted and its pods are
// gone without DEL, the GC frees their records and then deletes the emptied block, which no agent
// would ever return. A running node's emptied block stays, its agent's to return.
func TestGCInBlocksReturnsDepartedNodeBlocks(t *testing.T) {
	const leave, stay, pool = "gcb-node-leave", "gcb-node-stay", "gcb-pool-4"
	leaving := blockFormatSetup(t, leave, pool, "10.190.4.0/24", "10.190.4.10-10.190.4.100")
	makeNode(t, stay, nil)
	staying := startAgent(t, stay, nil)
	startGCController(t, controller.GCOptions{Interval: time.Second, EnableStatefulSet: true})

	blocksOf := func(node string) []string {
		t.Helper()
		var list ipblock.SpiderIPBlockList
		if err := env.Client.List(testContext(t), &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range list.Items {
			if b.Spec.Node == node {
				out = append(out, b.Spec.CIDR)
			}
		}
		return out
	}

	// The staying node's block, emptied by a DEL.
	p1 := makePod(t, "default", "gcb-stay-1", stay, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, p1.Name)
	blockFormatAllocate(t, staying, pool, p1)
	if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: p1, socket: staying.socket}).run(t); err != nil {
		t.Fatalf("DEL %s: %v", p1.Name, err)
	}
	stayBlocks := blocksOf(stay)
	if len(stayBlocks) == 0 {
		t.Fatalf("node %s claimed no block", stay)
	}

	// The leaving node: its agent stops, its pod goes without DEL, its Node object is deleted.
	p2 := makePod(t, "default", "gcb-leave-1", leave, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, p2.Name)
	addr := blockFormatAllocate(t, leaving, pool, p2)
	leaveBlocks := blocksOf(leave)
	if len(leaveBlocks) == 0 {
		t.Fatalf("node %s claimed no block", leave)
	}
	leaving.Stop()
	start := time.Now()
	if err := env.Client.Delete(testContext(t), p2, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(testContext(t), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: leave}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer cancel()
	if err := testenv.WaitFor(ctx, func(context.Context) (bool, error) { return len(blocksOf(leave)) == 0, nil }); err != nil {
		t.Fatalf("blocks %v of departed node %s still there %v after its deletion; records %v",
			blocksOf(leave), leave, gcReclaimBudget, blockRecordsOf(t, pool))
	}
	t.Logf("record %s freed and blocks %v of the departed node returned %v after its pod and Node were deleted",
		addr, leaveBlocks, time.Since(start).Round(time.Millisecond))

	time.Sleep(3 * time.Second) // at least two more full scans
	if got := blocksOf(stay); fmt.Sprint(got) != fmt.Sprint(stayBlocks) {
		t.Errorf("blocks of running node %s = %v after full scans, want %v kept (empty, its agent's to return)", stay, got, stayBlocks)
	}
	if got := blockRecordsOf(t, pool); len(got) != 0 {
		t.Errorf("records = %v, want none", got)
	}
}
