package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func blockScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblock.AddToScheme(s))
	return s
}

func reconcilePool(t *testing.T, r *IPPoolReconciler, name string) reconcile.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func getPool(t *testing.T, c client.Client, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	var p v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), types.NamespacedName{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// A pool filled in status format is converted without losing or moving a record: each lands in
// the block of its address with its pod, UID and the node its pod runs on; the pool is marked; the
// status then mirrors the blocks.
func TestConvertPoolToBlocks(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"),
		build.Allocated("10.6.0.5", "default/a", "ua"),
		build.Allocated("10.6.0.6", "default/b", "ub"),
		build.Allocated("10.6.0.40", "default/gone", "ugone"),
		build.Allocated("10.6.0.41", "default/a2", "ua2"))
	pool.UID = "7c3e91d2-1111-4000-8000-000000000000"
	pods := []client.Object{
		build.Pod("default", "a", build.OnNode("n1"), build.UID("ua")),
		build.Pod("default", "b", build.OnNode("n2"), build.UID("ub")),
		build.Pod("default", "a2", build.OnNode("n2"), build.UID("ua2")),
	}
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(append(pods, pool)...).WithStatusSubresource(pool).Build()
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Convert: true, Live: c})

	if res := reconcilePool(t, r, "p"); res.RequeueAfter == 0 {
		t.Fatalf("conversion did not ask to look again: %+v", res)
	}
	got := getPool(t, c, "p")
	if !ipblock.InBlocks(got) {
		t.Fatalf("pool not marked: %v", got.Annotations)
	}
	recs, err := blockstore.Records(context.Background(), c, got)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ipblock.BlockRecord{
		"10.6.0.5":  {Pod: "default/a", PodUID: "ua", Node: "n1"},
		"10.6.0.6":  {Pod: "default/b", PodUID: "ub", Node: "n2"},
		"10.6.0.40": {Pod: "default/gone", PodUID: "ugone"},
		"10.6.0.41": {Pod: "default/a2", PodUID: "ua2", Node: "n2"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d block records, want %d: %v", len(recs), len(want), recs)
	}
	for k, w := range want {
		if g := recs[netip.MustParseAddr(k)]; g != w {
			t.Errorf("%s: %+v, want %+v", k, g, w)
		}
	}
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{}
	for _, b := range list.Items {
		nodes[b.Spec.CIDR] = b.Spec.Node
	}
	// 10.6.0.0/27: n1 and n2 once each, the smaller name wins; 10.6.0.32/27: n2 (the gone pod's
	// record names nobody).
	if nodes["10.6.0.0/27"] != "n1" || nodes["10.6.0.32/27"] != "n2" || len(nodes) != 2 {
		t.Errorf("block nodes %v", nodes)
	}

	// The mirror: the status lists the blocks' records, counts exact.
	reconcilePool(t, r, "p")
	got = getPool(t, c, "p")
	allocs, err := got.Status.Allocations()
	if err != nil || len(allocs) != 4 || ptr.Deref(got.Status.AllocatedIPCount, 0) != 4 || ptr.Deref(got.Status.TotalIPCount, 0) != 200 {
		t.Fatalf("mirror: %v %v count=%v total=%v", allocs, err, got.Status.AllocatedIPCount, got.Status.TotalIPCount)
	}
}

// A record an agent writes into the status while the conversion copies it makes the marking fail
// (resourceVersion precondition); the next attempt copies it too.
func TestConvertRacingAgentWrite(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"), build.Allocated("10.6.0.5", "default/a", "ua"))
	pool.UID = "7c3e91d2-2222-4000-8000-000000000000"
	raced := false
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool).WithStatusSubresource(pool).
		WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*ipblock.SpiderIPBlock); ok && !raced {
				raced = true
				// An agent's status write lands between the copy and the marking.
				p := getPool(t, cl, "p")
				a, _ := p.Status.Allocations()
				a["10.6.0.77"] = v2beta1.PoolIPAllocation{NamespacedName: "default/late", PodUID: "ulate"}
				if err := p.Status.SetAllocations(a); err != nil {
					t.Fatal(err)
				}
				if err := cl.Status().Update(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			return cl.Create(ctx, obj, opts...)
		}}).Build()
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Convert: true, Live: c})
	reconcilePool(t, r, "p")
	if ipblock.InBlocks(getPool(t, c, "p")) {
		t.Fatal("pool marked although a record was written after the copy")
	}
	reconcilePool(t, r, "p")
	got := getPool(t, c, "p")
	if !ipblock.InBlocks(got) {
		t.Fatal("second attempt did not convert")
	}
	recs, err := blockstore.Records(context.Background(), c, got)
	if err != nil || len(recs) != 2 || recs[netip.MustParseAddr("10.6.0.77")].PodUID != "ulate" {
		t.Fatalf("records after the retry: %v %v", recs, err)
	}
}

// Conversion waits for the agents' rollout; a block already holding another pod for an address is
// left for an operator, never overwritten.
func TestConvertWaitsAndRefuses(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"), build.Allocated("10.6.0.5", "default/a", "ua"))
	pool.UID = "7c3e91d2-3333-4000-8000-000000000000"
	ds := &appsv1.DaemonSet{}
	ds.Namespace, ds.Name, ds.Generation = "kube-system", "spiderpool-agent", 2
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 2, NumberAvailable: 3}
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool, ds).WithStatusSubresource(pool, ds).Build()
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Convert: true, Live: c,
		AgentDaemonSet: types.NamespacedName{Namespace: "kube-system", Name: "spiderpool-agent"}})
	if res := reconcilePool(t, r, "p"); res.RequeueAfter == 0 || ipblock.InBlocks(getPool(t, c, "p")) {
		t.Fatalf("converted during the agents' rollout: %+v", res)
	}
	ds.Status.UpdatedNumberScheduled = 3
	if err := c.Status().Update(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	// Someone's block already holds 10.6.0.5 for another pod.
	other := blockstore.NewBlock(pool, netip.MustParsePrefix("10.6.0.0/27"), "n9",
		map[netip.Addr]ipblock.BlockRecord{netip.MustParseAddr("10.6.0.5"): {Pod: "default/x", PodUID: "ux", Node: "n9"}})
	if err := c.Create(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	_, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "p"}})
	if err == nil || !strings.Contains(err.Error(), "10.6.0.5") || ipblock.InBlocks(getPool(t, c, "p")) {
		t.Fatalf("conflicting block: err=%v", err)
	}
}

// Past MirrorMaxRecords the mirror leaves the records out and says so; the count stays exact, and
// the annotation goes once the pool is back under the bound.
func TestMirrorBound(t *testing.T) {
	pool := build.Pool("big", "10.8.0.0/16", build.IPs("10.8.0.1-10.8.15.254"))
	pool.UID = "7c3e91d2-4444-4000-8000-000000000000"
	pool.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	pool.Finalizers = []string{v2beta1.Finalizer}
	recs := map[netip.Addr]ipblock.BlockRecord{}
	a := netip.MustParseAddr("10.8.0.1")
	for i := range MirrorMaxRecords + 1 {
		recs[a] = ipblock.BlockRecord{Pod: fmt.Sprint("default/p", i), PodUID: fmt.Sprint("u", i), Node: "n1"}
		a = a.Next()
	}
	b := blockstore.NewBlock(pool, netip.MustParsePrefix("10.8.0.0/20"), "n1", recs) // one big block keeps the test short
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool, b).WithStatusSubresource(pool).Build()
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Live: c})
	reconcilePool(t, r, "big")
	got := getPool(t, c, "big")
	if got.Status.AllocatedIPs != nil || ptr.Deref(got.Status.AllocatedIPCount, 0) != MirrorMaxRecords+1 || got.Annotations[ipblock.AnnoRecordsInBlocks] != "true" {
		t.Fatalf("past the bound: allocatedIPs set=%v count=%v annotations=%v", got.Status.AllocatedIPs != nil, got.Status.AllocatedIPCount, got.Annotations)
	}
	// Two records released: under the bound again, after the 2 s between writes.
	var blk = b.DeepCopy()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(b), blk); err != nil {
		t.Fatal(err)
	}
	delete(blk.Spec.Records, "10.8.0.1")
	delete(blk.Spec.Records, "10.8.0.2")
	if err := c.Update(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	r.clock.last = nil // the 2 s have passed
	reconcilePool(t, r, "big")
	got = getPool(t, c, "big")
	allocs, _ := got.Status.Allocations()
	if len(allocs) != MirrorMaxRecords-1 || got.Annotations[ipblock.AnnoRecordsInBlocks] != "" {
		t.Fatalf("back under the bound: %d records, annotations %v", len(allocs), got.Annotations)
	}
}

// A deleted pool in block format keeps its finalizer while a block holds a record, even when the
// mirror shows none.
func TestBlockPoolFinalizer(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"))
	pool.UID = "7c3e91d2-5555-4000-8000-000000000000"
	pool.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	pool.Finalizers = []string{v2beta1.Finalizer}
	b := blockstore.NewBlock(pool, netip.MustParsePrefix("10.6.0.0/27"), "n1",
		map[netip.Addr]ipblock.BlockRecord{netip.MustParseAddr("10.6.0.3"): {Pod: "default/a", PodUID: "ua", Node: "n1"}})
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool, b, &corev1.Namespace{}).WithStatusSubresource(pool).Build()
	if err := c.Delete(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Live: c})
	reconcilePool(t, r, "p")
	if len(getPool(t, c, "p").Finalizers) == 0 {
		t.Fatal("finalizer removed while a block holds a record")
	}
	var blk = b.DeepCopy()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(b), blk); err != nil {
		t.Fatal(err)
	}
	blk.Spec.Records = nil
	if err := c.Update(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	reconcilePool(t, r, "p")
	var gone v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(pool), &gone); err == nil && len(gone.Finalizers) > 0 {
		t.Fatal("finalizer kept after the last record went")
	}
}
