package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

var gcNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// gcPod is pod default/name with uid.
func gcPod(name, uid string, opts ...build.Option) *corev1.Pod {
	return build.Pod("default", name, append([]build.Option{build.UID(uid)}, opts...)...)
}

// terminatingPod is gcPod deleted with a grace period of grace seconds that ends at gcNow+endsIn,
// holding the finalizer the fake client refuses a deleted object without.
func terminatingPod(name, uid string, grace int64, endsIn time.Duration, opts ...build.Option) *corev1.Pod {
	deleted := []build.Option{build.DeletedAt(gcNow.Add(endsIn)), build.DeletionGrace(grace), build.Finalizer("test/keep")}
	return gcPod(name, uid, append(deleted, opts...)...)
}

// gcEndpoint is the endpoint the agent writes for pod default/name (of StatefulSet sts, unless
// "") on node1: addr/24 of pool on eth0.
func gcEndpoint(name, uid, pool, addr string, sts string) *v2beta1.SpiderEndpoint {
	top := build.TopController("Pod", name)
	if sts != "" {
		top = build.TopController("StatefulSet", sts)
	}
	return build.Endpoint("default", name, build.Finalizer(v2beta1.Finalizer), build.PodUID(uid), build.OnNode("node1"),
		build.IPv4("eth0", addr+"/24", pool), top)
}

type gcFixture struct {
	r     *GCReconciler
	c     client.Client
	store *ipamtest.Store       // the pool in status format
	pool  *v2beta1.SpiderIPPool // the pool in block format, whose blocks c holds
}

// Formats of the pool a GC test runs against (docs/design/ipam-blocks.md).
const (
	formatStatus = "status"
	formatBlocks = "blocks"
)

var gcFormats = []string{formatStatus, formatBlocks}

func newGCFixture(t *testing.T, opts GCOptions, pool *v2beta1.SpiderIPPool, objs ...client.Object) *gcFixture {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(objs...).WithIndex(&corev1.Pod{}, podVMIIndex, indexPodVMI).Build()
	store := ipamtest.NewStore(pool)
	r := NewGCReconciler(c, c, store, opts)
	r.now = func() time.Time { return gcNow }
	return &gcFixture{r: r, c: c, store: store}
}

// newGCFixtureIn is newGCFixture with the pool in format: for formatBlocks its records are in
// SpiderIPBlocks of node1 and its status is left without them (blockstoretest.InBlocks), and the
// GC releases them through the router NewGCStore builds, over the fake client.
func newGCFixtureIn(t *testing.T, format string, opts GCOptions, pool *v2beta1.SpiderIPPool, objs ...client.Object) *gcFixture {
	t.Helper()
	if format == formatStatus {
		return newGCFixture(t, opts, pool, objs...)
	}
	p, blocks := blockstoretest.InBlocks(t, pool, "node1")
	all := append([]client.Object{p}, objs...)
	for _, b := range blocks {
		all = append(all, b)
	}
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(all...).
		WithIndex(&corev1.Pod{}, podVMIIndex, indexPodVMI).WithIndex(&ipblock.SpiderIPBlock{}, blockPodIndex, indexBlockPods).Build()
	bs, err := blockstore.New(c, c, c, blockstore.Options{AllBlocks: true})
	if err != nil {
		t.Fatal(err)
	}
	opts.BlockRecords = true
	r := NewGCReconciler(c, c, blockstore.NewRouter(bs, kubestore.New(c, c, kubestore.Options{})), opts)
	r.now = func() time.Time { return gcNow }
	return &gcFixture{r: r, c: c, pool: p}
}

// basePool is pool p of 10.6.0.10-10.6.0.20, with the records opts give it.
func basePool(opts ...build.Option) *v2beta1.SpiderIPPool {
	return build.Pool("p", "10.6.0.0/24", append([]build.Option{build.IPs("10.6.0.10-10.6.0.20")}, opts...)...)
}

// records returns the pool's records as IP -> pod UID, read where they live.
func (f *gcFixture) records(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if f.pool != nil {
		recs, err := blockstore.Records(context.Background(), f.c, f.pool)
		if err != nil {
			t.Fatal(err)
		}
		for a, rec := range recs {
			out[ip.FormatAddr(a)] = rec.PodUID
		}
		return out
	}
	allocs, err := f.store.Pool("p").Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	for a, rec := range allocs {
		out[a] = rec.PodUID
	}
	return out
}

func (f *gcFixture) endpointUID(t *testing.T, name string) string {
	t.Helper()
	var ep v2beta1.SpiderEndpoint
	err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &ep)
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return ep.Status.Current.UID
}

func (f *gcFixture) reconcile(t *testing.T, name string) reconcile.Result {
	t.Helper()
	res, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: name}})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return res
}

func TestGCRules(t *testing.T) {
	cases := []struct {
		name        string
		pod         string
		opts        GCOptions
		pool        *v2beta1.SpiderIPPool
		objs        []client.Object
		wantRecords map[string]string
		wantEP      string // UID of the endpoint left, "" when deleted
		wantReason  string // reason counted once per released record, "" when none
		wantRequeue bool
	}{
		{
			name:        "live pod with the same UID is never released",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
			objs:        []client.Object{gcPod("web", "u1", build.Phase(corev1.PodRunning)), gcEndpoint("web", "u1", "p", "10.6.0.10", "")},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantEP:      "u1",
		},
		{
			name:        "pod deleted",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "u1"), build.Allocated("10.6.0.11", "default/other", "o1")),
			objs:        []client.Object{gcEndpoint("web", "u1", "p", "10.6.0.10", ""), gcPod("other", "o1")},
			wantRecords: map[string]string{"10.6.0.11": "o1"},
			wantReason:  GCReasonPodDeleted,
		},
		{
			name:        "pod recreated: the old record goes, the new pod's record and endpoint stay",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "old"), build.Allocated("10.6.0.12", "default/web", "new")),
			objs:        []client.Object{gcPod("web", "new", build.Phase(corev1.PodRunning)), gcEndpoint("web", "new", "p", "10.6.0.12", "")},
			wantRecords: map[string]string{"10.6.0.12": "new"},
			wantEP:      "new",
			wantReason:  GCReasonPodUIDChanged,
		},
		{
			name:        "recreated pod's stale endpoint is deleted",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "old")),
			objs:        []client.Object{gcPod("web", "new"), gcEndpoint("web", "old", "p", "10.6.0.10", "")},
			wantRecords: map[string]string{},
			wantReason:  GCReasonPodUIDChanged,
		},
		{
			name:        "succeeded pod",
			pod:         "job",
			pool:        basePool(build.Allocated("10.6.0.10", "default/job", "u1")),
			objs:        []client.Object{gcPod("job", "u1", build.Phase(corev1.PodSucceeded))},
			wantRecords: map[string]string{},
			wantReason:  GCReasonPodFinished,
		},
		{
			name:        "failed (evicted) pod",
			pod:         "job",
			pool:        basePool(build.Allocated("10.6.0.10", "default/job", "u1")),
			objs:        []client.Object{gcPod("job", "u1", build.Phase(corev1.PodFailed))},
			wantRecords: map[string]string{},
			wantReason:  GCReasonPodFinished,
		},
		{
			// deletionTimestamp is the API server's clock: first seen now, the pod keeps its IPs for a
			// whole grace period on this controller's clock (TestGCTerminatingClockSkew).
			name:        "terminating past its grace period by the API server's clock, first seen now",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
			objs:        []client.Object{terminatingPod("web", "u1", 30, -2*time.Second), gcEndpoint("web", "u1", "p", "10.6.0.10", "")},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantEP:      "u1",
			wantRequeue: true,
		},
		{
			name:        "terminating within its grace period",
			pod:         "web",
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
			objs:        []client.Object{terminatingPod("web", "u1", 30, 10*time.Second), gcEndpoint("web", "u1", "p", "10.6.0.10", "")},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantEP:      "u1",
			wantRequeue: true,
		},
		{
			name:        "terminating past the grace period but within the extra delay",
			pod:         "web",
			opts:        GCOptions{DeletingTimeoutDelay: time.Minute},
			pool:        basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
			objs:        []client.Object{terminatingPod("web", "u1", 30, -time.Second)},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantRequeue: true,
		},
		{
			name:        "StatefulSet member briefly gone is kept",
			pod:         "db-1",
			opts:        GCOptions{EnableStatefulSet: true},
			pool:        basePool(build.Allocated("10.6.0.10", "default/db-1", "u1")),
			objs:        []client.Object{build.StatefulSet("default", "db", build.Replicas(3)), gcEndpoint("db-1", "u1", "p", "10.6.0.10", "db")},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantEP:      "u1",
		},
		{
			name: "StatefulSet member that finished is kept for its next incarnation",
			pod:  "db-1",
			opts: GCOptions{EnableStatefulSet: true},
			pool: basePool(build.Allocated("10.6.0.10", "default/db-1", "u1")),
			objs: []client.Object{build.StatefulSet("default", "db", build.Replicas(3)), gcPod("db-1", "u1", build.ControlledBy("apps/v1", "StatefulSet", "db", "sts-uid"), build.Phase(corev1.PodFailed)),
				gcEndpoint("db-1", "u1", "p", "10.6.0.10", "db")},
			wantRecords: map[string]string{"10.6.0.10": "u1"},
			wantEP:      "u1",
		},
		{
			name:        "StatefulSet scaled down",
			pod:         "db-1",
			opts:        GCOptions{EnableStatefulSet: true},
			pool:        basePool(build.Allocated("10.6.0.10", "default/db-1", "u1")),
			objs:        []client.Object{build.StatefulSet("default", "db", build.Replicas(1)), gcEndpoint("db-1", "u1", "p", "10.6.0.10", "db")},
			wantRecords: map[string]string{},
			wantReason:  GCReasonStatefulSetScaled,
		},
		{
			name:        "StatefulSet deleted",
			pod:         "db-0",
			opts:        GCOptions{EnableStatefulSet: true},
			pool:        basePool(build.Allocated("10.6.0.10", "default/db-0", "u1")),
			objs:        []client.Object{gcEndpoint("db-0", "u1", "p", "10.6.0.10", "db")},
			wantRecords: map[string]string{},
			wantReason:  GCReasonStatefulSetScaled,
		},
		{
			name:        "StatefulSet handling off: a gone member is reclaimed like any pod",
			pod:         "db-1",
			pool:        basePool(build.Allocated("10.6.0.10", "default/db-1", "u1")),
			objs:        []client.Object{build.StatefulSet("default", "db", build.Replicas(3)), gcEndpoint("db-1", "u1", "p", "10.6.0.10", "db")},
			wantRecords: map[string]string{},
			wantReason:  GCReasonPodDeleted,
		},
		{
			name: "StatefulSet member recreated: records its endpoint does not name are leaks",
			pod:  "db-1",
			opts: GCOptions{EnableStatefulSet: true},
			pool: basePool(build.Allocated("10.6.0.10", "default/db-1", "old"), build.Allocated("10.6.0.11", "default/db-1", "new")),
			objs: []client.Object{build.StatefulSet("default", "db", build.Replicas(3)), gcPod("db-1", "new", build.ControlledBy("apps/v1", "StatefulSet", "db", "sts-uid"), build.Phase(corev1.PodRunning)),
				gcEndpoint("db-1", "new", "p", "10.6.0.11", "db")},
			wantRecords: map[string]string{"10.6.0.11": "new"},
			wantEP:      "new",
			wantReason:  GCReasonPodUIDChanged,
		},
	}
	for _, format := range gcFormats {
		for _, tc := range cases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				f := newGCFixtureIn(t, format, tc.opts, tc.pool, tc.objs...)
				var before float64
				if tc.wantReason != "" {
					before = counterValue(t, gcCounts.WithLabelValues(tc.wantReason))
				}
				name := tc.pod
				res := f.reconcile(t, name)
				if diff := cmp.Diff(tc.wantRecords, f.records(t)); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				if got := f.endpointUID(t, name); got != tc.wantEP {
					t.Errorf("endpoint UID = %q, want %q", got, tc.wantEP)
				}
				if got := res.RequeueAfter > 0; got != tc.wantRequeue {
					t.Errorf("RequeueAfter = %v, want requeue %v", res.RequeueAfter, tc.wantRequeue)
				}
				if tc.wantReason != "" {
					if got := counterValue(t, gcCounts.WithLabelValues(tc.wantReason)) - before; got != 1 {
						t.Errorf("spiderpool_ip_gc_counts{reason=%q} grew by %v, want 1", tc.wantReason, got)
					}
				}
				// A second pass finds nothing more to do.
				f.reconcile(t, name)
				if diff := cmp.Diff(tc.wantRecords, f.records(t)); diff != "" {
					t.Errorf("records after a second pass (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The terminating pod is looked at again when its window closes, and released then. The window
// runs on this controller's clock from its first sighting of the deletion.
func TestGCTerminatingRequeuedUntilDeadline(t *testing.T) {
	f := newGCFixture(t, GCOptions{DeletingTimeoutDelay: 5 * time.Second}, basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
		terminatingPod("web", "u1", 30, 10*time.Second))
	res := f.reconcile(t, "web")
	if res.RequeueAfter != 36*time.Second {
		t.Fatalf("RequeueAfter = %v, want 36s (the whole grace from the first sighting + delay + 1s of timestamp rounding)", res.RequeueAfter)
	}
	f.r.now = func() time.Time { return gcNow.Add(res.RequeueAfter) }
	f.reconcile(t, "web")
	if recs := f.records(t); len(recs) != 0 {
		t.Errorf("records after the deadline: %v", recs)
	}
}

// A release races with an agent that gives the address to a new incarnation between the GC's
// decision and its write: the UID-matching release leaves the new record alone.
func TestGCReleaseNeverFreesANewerIncarnation(t *testing.T) {
	for _, format := range gcFormats {
		t.Run(format, func(t *testing.T) {
			f := newGCFixtureIn(t, format, GCOptions{}, basePool(build.Allocated("10.6.0.10", "default/web", "old")))
			recs, err := f.r.recordsOf(context.Background(), types.NamespacedName{Namespace: "default", Name: "web"})
			if err != nil || len(recs) != 1 {
				t.Fatalf("recordsOf = %v, %v", recs, err)
			}
			// Meanwhile the old record was released by a DEL and the address handed to the new pod.
			if format == formatStatus {
				f.store.Put(basePool(build.Allocated("10.6.0.10", "default/web", "new")))
			} else {
				f.setBlockRecord(t, "10.6.0.10", ipblock.BlockRecord{Pod: "default/web", PodUID: "new", Node: "node1"})
			}
			if err := f.r.release(context.Background(), "p", recs, map[string]verdict{"old": {release: true, reason: GCReasonPodDeleted}}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"10.6.0.10": "new"}, f.records(t)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// setBlockRecord writes rec as the record of addr into the block holding it, as an agent does.
func (f *gcFixture) setBlockRecord(t *testing.T, addr string, rec ipblock.BlockRecord) {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := f.c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		b := &list.Items[i]
		if !netip.MustParsePrefix(b.Spec.CIDR).Contains(netip.MustParseAddr(addr)) {
			continue
		}
		if b.Spec.Records == nil {
			b.Spec.Records = map[string]ipblock.BlockRecord{}
		}
		b.Spec.Records[addr] = rec
		if err := f.c.Update(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no block holds %s", addr)
}

// The full scan reclaims leaked records and orphan endpoints, and leaves live pods alone.
func TestGCFullScan(t *testing.T) {
	for _, format := range gcFormats {
		t.Run(format, func(t *testing.T) {
			pool := basePool(
				build.Allocated("10.6.0.10", "default/live", "l1"),
				build.Allocated("10.6.0.11", "default/gone", "g1"),
				build.Allocated("10.6.0.12", "default/recreated", "r-old"),
				build.Allocated("10.6.0.13", "default/recreated", "r-new"))
			f := newGCFixtureIn(t, format, GCOptions{}, pool,
				gcPod("live", "l1", build.Phase(corev1.PodRunning)),
				gcPod("recreated", "r-new", build.Phase(corev1.PodRunning)),
				gcEndpoint("live", "l1", "p", "10.6.0.10", ""),
				gcEndpoint("recreated", "r-new", "p", "10.6.0.13", ""),
				gcEndpoint("orphan", "o1", "p", "10.6.0.19", ""), // its record is already gone
			)
			before := counterValue(t, gcCounts.WithLabelValues(GCReasonOrphanEndpoint))
			if err := f.r.FullScan(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"10.6.0.10": "l1", "10.6.0.13": "r-new"}
			if diff := cmp.Diff(want, f.records(t)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			for name, uid := range map[string]string{"live": "l1", "recreated": "r-new", "orphan": ""} {
				if got := f.endpointUID(t, name); got != uid {
					t.Errorf("endpoint %s UID = %q, want %q", name, got, uid)
				}
			}
			if got := counterValue(t, gcCounts.WithLabelValues(GCReasonOrphanEndpoint)) - before; got != 1 {
				t.Errorf("orphan_endpoint grew by %v, want 1", got)
			}
		})
	}
}

// Without the SpiderIPBlock kind a pool in block format is left alone: its records are not
// collected from its status (the mirror), and the full scan says why.
func TestGCFullScanWithoutBlocks(t *testing.T) {
	p, _ := blockstoretest.InBlocks(t, basePool(build.Allocated("10.6.0.11", "default/gone", "g1")), "node1")
	p.Status.AllocatedIPs = ptr.To(`{"10.6.0.11":{"pod":"default/gone","podUid":"g1"}}`) // a mirror within its bound
	f := newGCFixture(t, GCOptions{}, p)
	err := f.r.FullScan(context.Background())
	if err == nil || !strings.Contains(err.Error(), `IPPool "p": its records are in SpiderIPBlocks, a kind this cluster does not serve`) {
		t.Errorf("full scan: %v, want the block-format pool reported", err)
	}
	if recs, err := f.r.recordsOf(context.Background(), types.NamespacedName{Namespace: "default", Name: "gone"}); err != nil || len(recs) != 0 {
		t.Errorf("recordsOf = %v, %v; want nothing read from the mirror", recs, err)
	}
	if got := f.r.poolToPods(context.Background(), p); len(got) != 0 {
		t.Errorf("poolToPods of a block-format pool = %v, want nothing from the mirror", got)
	}
}

// Pool events, and for a pool in block format its blocks' events, enqueue only the pods the cache
// does not know as alive with the record's UID.
func TestGCPoolToPods(t *testing.T) {
	pool := basePool(
		build.Allocated("10.6.0.10", "default/live", "l1"),
		build.Allocated("10.6.0.11", "default/gone", "g1"),
		build.Allocated("10.6.0.12", "default/recreated", "r-old"))
	want := map[string]bool{"default/gone": true, "default/recreated": true}
	names := func(reqs []reconcile.Request) map[string]bool {
		out := map[string]bool{}
		for _, r := range reqs {
			out[r.String()] = true
		}
		return out
	}
	f := newGCFixture(t, GCOptions{}, pool, gcPod("live", "l1"), gcPod("recreated", "r-new"))
	if diff := cmp.Diff(want, names(f.r.poolToPods(context.Background(), pool))); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	p, blocks := blockstoretest.InBlocks(t, pool, "node1")
	if got := f.r.poolToPods(context.Background(), p); len(got) != 0 {
		t.Errorf("block-format pool event: %v, want none (its blocks' events stand for it)", got)
	}
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1", len(blocks))
	}
	if diff := cmp.Diff(want, names(f.r.blockToPods(context.Background(), blocks[0]))); diff != "" {
		t.Errorf("block event: requests (-want +got):\n%s", diff)
	}
}

// A StatefulSet event points at the endpoints kept for its members, and only with StatefulSet
// handling on.
func TestGCStatefulSetToEndpoints(t *testing.T) {
	objs := []client.Object{
		gcEndpoint("db-0", "u0", "p", "10.6.0.10", "db"),
		gcEndpoint("db-1", "u1", "p", "10.6.0.11", "db"),
		gcEndpoint("cache-0", "c0", "p", "10.6.0.12", "cache"),
		gcEndpoint("web", "w", "p", "10.6.0.13", ""),
	}
	f := newGCFixture(t, GCOptions{EnableStatefulSet: true}, basePool(), objs...)
	names := map[string]bool{}
	for _, r := range f.r.statefulSetToEndpoints(context.Background(), build.StatefulSet("default", "db", build.Replicas(1))) {
		names[r.String()] = true
	}
	if diff := cmp.Diff(map[string]bool{"default/db-0": true, "default/db-1": true}, names); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	f = newGCFixture(t, GCOptions{}, basePool(), objs...)
	if got := f.r.statefulSetToEndpoints(context.Background(), build.StatefulSet("default", "db", build.Replicas(1))); len(got) != 0 {
		t.Errorf("requests with StatefulSet handling off: %v", got)
	}
}

// TestGCTerminatingClockSkew is part of defect 3 of the fault issue: with the controller's clock
// five minutes ahead of the API server's, a pod deleted a moment ago looked five minutes past its
// grace period (freed at once); five minutes behind, it looked five minutes short of it (held five
// minutes too long, found by the fault suite). Either way it keeps its IPs for its grace period on
// the controller's own clock, and no longer.
func TestGCTerminatingClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{5 * time.Minute, -5 * time.Minute} {
		t.Run(fmt.Sprintf("controller clock %+v", skew), func(t *testing.T) {
			// Deleted now with 30 s of grace, on the API server's clock: its deletionTimestamp
			// is 30 s ahead of the API server, which is -skew from the controller's gcNow.
			f := newGCFixture(t, GCOptions{}, basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
				terminatingPod("web", "u1", 30, -skew+30*time.Second), gcEndpoint("web", "u1", "p", "10.6.0.10", ""))
			res := f.reconcile(t, "web")
			if recs := f.records(t); len(recs) != 1 || res.RequeueAfter != 31*time.Second {
				t.Fatalf("right after the deletion: records %v, requeue %v; want the record kept and a look in 31s", recs, res.RequeueAfter)
			}
			f.r.now = func() time.Time { return gcNow.Add(res.RequeueAfter) }
			f.reconcile(t, "web")
			if recs := f.records(t); len(recs) != 0 {
				t.Errorf("records after the grace period on the controller's clock: %v", recs)
			}
		})
	}
}

// TestGCTerminatingNodeSettings is the rest of defect 3: a pod past its window gives its IPs
// back according to its node's state and ipam.gc.statelessPod.zombieOnReadyNode /
// zombieOnNotReadyNode (a node whose kubelet died may still run the pod's containers).
func TestGCTerminatingNodeSettings(t *testing.T) {
	node := func(name string, ready corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	for _, tc := range []struct {
		name     string
		opts     GCOptions
		nodeName string
		released bool
	}{
		{"ready node, defaults", GCOptions{}, "up", true},
		{"not-ready node, defaults", GCOptions{}, "down", true},
		{"ready node, zombieOnReadyNode=false", GCOptions{KeepTerminatingOnReadyNode: true}, "up", false},
		{"not-ready node, zombieOnReadyNode=false", GCOptions{KeepTerminatingOnReadyNode: true}, "down", true},
		{"not-ready node, zombieOnNotReadyNode=false", GCOptions{KeepTerminatingOnNotReadyNode: true}, "down", false},
		{"unknown node state, zombieOnNotReadyNode=false", GCOptions{KeepTerminatingOnNotReadyNode: true}, "unknown", false},
		{"node gone, zombieOnNotReadyNode=false", GCOptions{KeepTerminatingOnNotReadyNode: true}, "gone", false},
		{"ready node, zombieOnNotReadyNode=false", GCOptions{KeepTerminatingOnNotReadyNode: true}, "up", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGCFixture(t, tc.opts, basePool(build.Allocated("10.6.0.10", "default/web", "u1")),
				node("up", corev1.ConditionTrue), node("down", corev1.ConditionFalse), node("unknown", corev1.ConditionUnknown),
				terminatingPod("web", "u1", 30, 0, build.OnNode(tc.nodeName)), gcEndpoint("web", "u1", "p", "10.6.0.10", ""))
			f.reconcile(t, "web") // first sighting
			f.r.now = func() time.Time { return gcNow.Add(time.Hour) }
			f.reconcile(t, "web")
			if got := len(f.records(t)) == 0; got != tc.released {
				t.Errorf("released %v, want %v (records %v)", got, tc.released, f.records(t))
			}
		})
	}
}

// TestGCEndpointDeleteLosesToTakeover is defect 5 of the fault issue: between the GC's removal of
// an old StatefulSet member's endpoint finalizer and its delete, the member's new incarnation takes
// the endpoint over (the agent rewrites its status). The delete, preconditioned on the version the
// GC saw, fails and the new incarnation keeps its endpoint.
func TestGCEndpointDeleteLosesToTakeover(t *testing.T) {
	ep := gcEndpoint("db-1", "old", "p", "10.6.0.10", "db")
	var c client.WithWatch
	tookOver := false
	c = fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(ep).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := cl.Update(ctx, obj, opts...); err != nil || tookOver {
				return err
			}
			// The agent of the new incarnation, right after the GC's write.
			tookOver = true
			cur := &v2beta1.SpiderEndpoint{}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				return err
			}
			cur.Status.Current.UID = "new"
			cur.Finalizers = []string{v2beta1.Finalizer}
			return cl.Update(ctx, cur)
		},
	}).Build()
	r := NewGCReconciler(c, c, ipamtest.NewStore(basePool()), GCOptions{})
	if err := r.deleteEndpoint(context.Background(), ep.DeepCopy(), GCReasonOrphanEndpoint); err != nil {
		t.Fatal(err)
	}
	got := &v2beta1.SpiderEndpoint{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ep), got); err != nil {
		t.Fatalf("the taken-over endpoint is gone: %v", err)
	}
	if !tookOver || got.Status.Current.UID != "new" || got.DeletionTimestamp != nil {
		t.Errorf("took over %v, endpoint UID %q, deleting since %v; want the new incarnation's, not being deleted",
			tookOver, got.Status.Current.UID, got.DeletionTimestamp)
	}
}

// ipam.enableCleanOutdatedEndpoint: the full scan deletes the endpoint of a live pod that no pool
// backs (confirmed on the API server's pools, not the cache) only when it is on.
func TestGCCleanOutdatedEndpoints(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("enableCleanOutdatedEndpoint=%v", on), func(t *testing.T) {
			cached := basePool(build.Allocated("10.6.0.10", "default/backed", "b1"))
			// The API server's copy also holds a record the cache has not seen yet.
			live := basePool(build.Allocated("10.6.0.10", "default/backed", "b1"), build.Allocated("10.6.0.12", "default/new", "n1"))
			f := newGCFixture(t, GCOptions{CleanOutdatedEndpoints: on}, cached,
				live,
				gcPod("backed", "b1", build.Phase(corev1.PodRunning)),
				gcPod("new", "n1", build.Phase(corev1.PodRunning)),
				gcPod("stale", "s1", build.Phase(corev1.PodRunning)),
				gcPod("poolgone", "g1", build.Phase(corev1.PodRunning)),
				gcEndpoint("backed", "b1", "p", "10.6.0.10", ""),
				gcEndpoint("new", "n1", "p", "10.6.0.12", ""),
				gcEndpoint("stale", "s1", "p", "10.6.0.11", ""),    // p holds no record for it
				gcEndpoint("poolgone", "g1", "q", "10.7.0.11", ""), // its pool was deleted
			)
			before := counterValue(t, gcCounts.WithLabelValues(GCReasonOutdatedEndpoint))
			if err := f.r.FullScan(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"backed": "b1", "new": "n1", "stale": "s1", "poolgone": "g1"}
			deleted := 0.0
			if on {
				want["stale"], want["poolgone"] = "", ""
				deleted = 2
			}
			for name, uid := range want {
				if got := f.endpointUID(t, name); got != uid {
					t.Errorf("endpoint %s UID = %q, want %q", name, got, uid)
				}
			}
			if got := counterValue(t, gcCounts.WithLabelValues(GCReasonOutdatedEndpoint)) - before; got != deleted {
				t.Errorf("outdated_endpoint grew by %v, want %v", got, deleted)
			}
			if diff := cmp.Diff(map[string]string{"10.6.0.10": "b1"}, f.records(t)); diff != "" {
				t.Errorf("records changed (-want +got):\n%s", diff)
			}
		})
	}
}

// liveBlocks is the API reader of a GC whose cache has not seen the blocks of live yet: blocks are
// read from live, everything else from the cache.
type liveBlocks struct {
	client.Reader
	live client.Reader
}

func (r liveBlocks) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*ipblock.SpiderIPBlockList); ok {
		return r.live.List(ctx, list, opts...)
	}
	return r.Reader.List(ctx, list, opts...)
}

// ipam.enableCleanOutdatedEndpoint on a pool in block format: the endpoint no cached block record
// backs is deleted only once the blocks read from the API server confirm it.
func TestGCCleanOutdatedEndpointsInBlocks(t *testing.T) {
	cachedPool := basePool(build.Allocated("10.6.0.10", "default/backed", "b1"))
	f := newGCFixtureIn(t, formatBlocks, GCOptions{CleanOutdatedEndpoints: true}, cachedPool,
		gcPod("backed", "b1", build.Phase(corev1.PodRunning)),
		gcPod("new", "n1", build.Phase(corev1.PodRunning)),
		gcPod("stale", "s1", build.Phase(corev1.PodRunning)),
		gcEndpoint("backed", "b1", "p", "10.6.0.10", ""),
		gcEndpoint("new", "n1", "p", "10.6.0.12", ""),
		gcEndpoint("stale", "s1", "p", "10.6.0.11", ""), // p holds no record for it
	)
	// The API server's blocks also hold a record the cache has not seen yet.
	_, liveBlockObjs := blockstoretest.InBlocks(t, basePool(build.Allocated("10.6.0.10", "default/backed", "b1"), build.Allocated("10.6.0.12", "default/new", "n1")), "node1")
	lb := fake.NewClientBuilder().WithScheme(NewScheme())
	for _, b := range liveBlockObjs {
		b.Spec.PoolUID = string(f.pool.UID)
		lb = lb.WithObjects(b)
	}
	f.r.reader = liveBlocks{Reader: f.c, live: lb.Build()}
	if err := f.r.FullScan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, uid := range map[string]string{"backed": "b1", "new": "n1", "stale": ""} {
		if got := f.endpointUID(t, name); got != uid {
			t.Errorf("endpoint %s UID = %q, want %q", name, got, uid)
		}
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.10": "b1"}, f.records(t)); diff != "" {
		t.Errorf("records changed (-want +got):\n%s", diff)
	}
}

// A KubeVirt VM's records and endpoint are named after its VMI, so no pod has their name: a live
// virt-launcher pod with the record's UID keeps them (an ADD between its pool write and its
// endpoint write looks just like this), and records of any other pod UID of the VM are released.
// Keeping them for a VM that still exists is tested against a real API server
// (test/integration TestKubeVirtVMKeepsItsAddress): this fake client has no KubeVirt kinds, so
// here the VM is gone.
func TestGCKubeVirtRecords(t *testing.T) {
	launcher := func(name, uid string) *corev1.Pod {
		return gcPod(name, uid, build.Phase(corev1.PodRunning), build.ControlledBy("kubevirt.io/v1", "VirtualMachineInstance", "vm1", "vmi-uid"))
	}
	vmEndpoint := func(uid, addr string) *v2beta1.SpiderEndpoint {
		ep := gcEndpoint("vm1", uid, "p", addr, "")
		ep.Status.OwnerControllerType, ep.Status.OwnerControllerName = "VirtualMachineInstance", "vm1"
		return ep
	}
	for _, tc := range []struct {
		name     string
		on       bool
		objs     []client.Object
		want     map[string]string // records left
		endpoint string            // UID of endpoint vm1 left, "" for none
	}{
		{"live pod, endpoint not written yet", true, []client.Object{launcher("virt-launcher-vm1-a", "u1")},
			map[string]string{"10.6.0.10": "u1", "10.6.0.11": "u1"}, ""},
		{"live pod with its endpoint", true, []client.Object{launcher("virt-launcher-vm1-a", "u1"), vmEndpoint("u1", "10.6.0.10")},
			map[string]string{"10.6.0.10": "u1", "10.6.0.11": "u1"}, "u1"},
		{"pod gone, VM gone", true, []client.Object{vmEndpoint("u1", "10.6.0.10")}, map[string]string{}, ""},
		{"handling off: a pod named vm1 never existed", false, []client.Object{launcher("virt-launcher-vm1-a", "u1")}, map[string]string{}, ""},
	} {
		for _, format := range gcFormats {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				pool := basePool(build.Allocated("10.6.0.10", "default/vm1", "u1"), build.Allocated("10.6.0.11", "default/vm1", "u1"),
					build.Allocated("10.6.0.12", "default/vm1", "u0")) // an earlier pod's leftover
				f := newGCFixtureIn(t, format, GCOptions{EnableKubevirtStaticIP: tc.on}, pool, tc.objs...)
				f.reconcile(t, "vm1")
				if diff := cmp.Diff(tc.want, f.records(t)); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				if got := f.endpointUID(t, "vm1"); got != tc.endpoint {
					t.Errorf("endpoint vm1 UID = %q, want %q", got, tc.endpoint)
				}
			})
		}
	}
}

// The full scan returns the empty blocks no agent will return (their node's Node object is gone,
// or they belong to no node) and keeps the empty blocks of existing nodes, which their agents
// return themselves, and every block that holds a record.
func TestGCReturnsOrphanBlocks(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.200"),
		build.Allocated("10.6.0.10", "default/live", "l1"))
	p, _ := blockstoretest.InBlocks(t, pool, "node1")
	block := func(cidr, node string, recs map[netip.Addr]ipblock.BlockRecord) *ipblock.SpiderIPBlock {
		return blockstore.NewBlock(p, netip.MustParsePrefix(cidr), node, recs)
	}
	kept := []*ipblock.SpiderIPBlock{
		block("10.6.0.32/27", "node1", nil), // its node exists: its agent returns it
		block("10.6.0.64/27", "gone", map[netip.Addr]ipblock.BlockRecord{ // not empty yet
			netip.MustParseAddr("10.6.0.70"): {Pod: "default/stuck", PodUID: "s1", Node: "gone"}}),
	}
	returned := []*ipblock.SpiderIPBlock{
		block("10.6.0.96/27", "gone", nil),
		block("10.6.0.128/27", "", nil),
	}
	objs := []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
		gcPod("live", "l1", build.Phase(corev1.PodRunning)),
		gcPod("stuck", "s1", build.Phase(corev1.PodRunning)),
	}
	for _, b := range append(kept, returned...) {
		objs = append(objs, b)
	}
	f := newGCFixtureIn(t, formatBlocks, GCOptions{}, pool, objs...)
	if err := f.r.FullScan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range kept {
		if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(b), &ipblock.SpiderIPBlock{}); err != nil {
			t.Errorf("block %s (node %q, %d records): %v, want it kept", b.Spec.CIDR, b.Spec.Node, len(b.Spec.Records), err)
		}
	}
	for _, b := range returned {
		if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(b), &ipblock.SpiderIPBlock{}); !apierrors.IsNotFound(err) {
			t.Errorf("block %s (node %q, empty): %v, want it returned", b.Spec.CIDR, b.Spec.Node, err)
		}
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.10": "l1", "10.6.0.70": "s1"}, f.records(t)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// A fenced block stays while its fence is needed, whatever it holds; the GC drops the fence once
// it is old enough and the pool has reached its generation, and then returns the block if it is
// empty and of nobody.
func TestGCDropsFences(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.200"),
		build.Allocated("10.6.0.10", "default/live", "l1"))
	p, _ := blockstoretest.InBlocks(t, pool, "node1")
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fenced := func(cidr string, gen int64, ago time.Duration) *ipblock.SpiderIPBlock {
		b := blockstore.NewBlock(p, netip.MustParsePrefix(cidr), "", nil)
		b.Spec.Fences = []ipblock.BlockFence{{PoolGeneration: gen, IPs: []string{netip.MustParsePrefix(cidr).Addr().Next().String()}, Since: metav1.NewTime(now.Add(-ago))}}
		return b
	}
	gen := p.Generation
	young := fenced("10.6.0.32/27", gen, blockstore.FenceTTL/2)                     // still needed
	ahead := fenced("10.6.0.64/27", gen+1, blockstore.FenceTTL+time.Second)         // the pool has not reached it
	done := fenced("10.6.0.96/27", gen, blockstore.FenceTTL+time.Second)            // no longer needed
	abandoned := fenced("10.6.0.128/27", gen+1, blockstore.FenceMaxAge+time.Second) // its update never came
	f := newGCFixtureIn(t, formatBlocks, GCOptions{}, pool,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
		gcPod("live", "l1", build.Phase(corev1.PodRunning)),
		young, ahead, done, abandoned)
	f.r.now = func() time.Time { return now }
	if err := f.r.FullScan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*ipblock.SpiderIPBlock{young, ahead} {
		var got ipblock.SpiderIPBlock
		if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(b), &got); err != nil || len(got.Spec.Fences) != 1 {
			t.Errorf("block %s: %v, fences %+v; want it kept with its fence", b.Spec.CIDR, err, got.Spec.Fences)
		}
	}
	for _, b := range []*ipblock.SpiderIPBlock{done, abandoned} {
		if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(b), &ipblock.SpiderIPBlock{}); !apierrors.IsNotFound(err) {
			t.Errorf("block %s (fence no longer needed, empty, of nobody): %v, want it returned", b.Spec.CIDR, err)
		}
	}
}
