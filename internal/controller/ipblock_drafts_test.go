package controller

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// A reconcile that reads the pool from a cache that has not seen its conversion yet must not copy
// the stale status into blocks that agents already write: a record released through the blocks
// since would come back.
func TestConvertStaleCacheDoesNotResurrect(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"),
		build.Allocated("10.6.0.5", "default/a", "ua"), build.Allocated("10.6.0.6", "default/b", "ub"))
	pool.UID = "7c3e91d2-6666-4000-8000-000000000000"
	var stale *v2beta1.SpiderIPPool
	live := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool).WithStatusSubresource(pool).Build()
	cached := interceptor.NewClient(live, interceptor.Funcs{Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if p, ok := obj.(*v2beta1.SpiderIPPool); ok && stale != nil {
			stale.DeepCopyInto(p)
			return nil
		}
		return cl.Get(ctx, key, obj, opts...)
	}})
	r := NewIPPoolReconciler(cached, BlockFormat{Served: true, Convert: true, Live: live})
	stale = getPool(t, live, "p") // what the cache holds until it sees the marking
	stale.Finalizers = append(stale.Finalizers, v2beta1.Finalizer)
	reconcilePool(t, r, "p")
	if !ipblock.InBlocks(getPool(t, live, "p")) {
		t.Fatal("not converted")
	}
	// An agent releases 10.6.0.6 through its block.
	var list ipblock.SpiderIPBlockList
	if err := live.List(context.Background(), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("blocks: %v %v", list.Items, err)
	}
	blk := list.Items[0]
	delete(blk.Spec.Records, "10.6.0.6")
	if err := live.Update(context.Background(), &blk); err != nil {
		t.Fatal(err)
	}
	// The requeued reconcile still reads the unmarked pool from the cache.
	_, _ = r.Reconcile(context.Background(), reconcileRequest("p"))
	recs, err := blockstore.Records(context.Background(), live, getPool(t, live, "p"))
	if err != nil {
		t.Fatal(err)
	}
	if _, back := recs[netip.MustParseAddr("10.6.0.6")]; back {
		t.Fatalf("10.6.0.6, released through its block, is back: %v", recs)
	}
}

func reconcileRequest(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
}

// Between two attempts of one conversion, the status-format agents released one copied record and
// gave the address of another to a new pod: the second attempt brings its own copies in line with
// the status instead of keeping a released record or giving up on the reassigned address.
func TestConvertRetryFollowsStatus(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"),
		build.Allocated("10.6.0.5", "default/a", "ua"), build.Allocated("10.6.0.6", "default/b", "ub"),
		build.Allocated("10.6.0.40", "default/c", "uc"))
	pool.UID = "7c3e91d2-7777-4000-8000-000000000000"
	raced := false
	c := fake.NewClientBuilder().WithScheme(blockScheme()).WithObjects(pool).WithStatusSubresource(pool).
		WithInterceptorFuncs(interceptor.Funcs{Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*v2beta1.SpiderIPPool); ok && !raced {
				raced = true
				p := getPool(t, cl, "p")
				a, _ := p.Status.Allocations()
				delete(a, "10.6.0.5")  // a released
				delete(a, "10.6.0.40") // c released: its block has nothing left
				a["10.6.0.6"] = v2beta1.PoolIPAllocation{NamespacedName: "default/q", PodUID: "uq"}
				if err := p.Status.SetAllocations(a); err != nil {
					t.Fatal(err)
				}
				if err := cl.Status().Update(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			return cl.Update(ctx, obj, opts...)
		}}).Build()
	r := NewIPPoolReconciler(c, BlockFormat{Served: true, Convert: true, Live: c})
	reconcilePool(t, r, "p")
	if ipblock.InBlocks(getPool(t, c, "p")) {
		t.Fatal("marked although the status changed after the copy")
	}
	reconcilePool(t, r, "p")
	got := getPool(t, c, "p")
	if !ipblock.InBlocks(got) {
		t.Fatal("second attempt did not convert")
	}
	recs, err := blockstore.Records(context.Background(), c, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[netip.MustParseAddr("10.6.0.6")].PodUID != "uq" {
		t.Fatalf("block records %v, want only 10.6.0.6 for uq", recs)
	}
}

func TestMergeDrafts(t *testing.T) {
	a := ipblock.BlockRecord{Pod: "default/a", PodUID: "ua", Node: "n1"}
	b := ipblock.BlockRecord{Pod: "default/b", PodUID: "ub", Node: "n1"}
	q := ipblock.BlockRecord{Pod: "default/q", PodUID: "uq", Node: "n2"}
	for _, tt := range []struct {
		name          string
		have, want    ipblock.BlockRecords
		mine          map[string]string
		merged, ours  ipblock.BlockRecords
		changed, errs bool
	}{
		{name: "adds what the block lacks",
			have: ipblock.BlockRecords{"10.6.0.5": a}, want: ipblock.BlockRecords{"10.6.0.5": a, "10.6.0.6": b},
			merged: ipblock.BlockRecords{"10.6.0.5": a, "10.6.0.6": b}, ours: ipblock.BlockRecords{"10.6.0.6": b}, changed: true},
		{name: "keeps a record it did not write",
			have: ipblock.BlockRecords{"10.6.0.5": a}, want: ipblock.BlockRecords{},
			merged: ipblock.BlockRecords{"10.6.0.5": a}, ours: ipblock.BlockRecords{}},
		{name: "removes its own copy of a released record",
			have: ipblock.BlockRecords{"10.6.0.5": a, "10.6.0.6": b}, want: ipblock.BlockRecords{"10.6.0.6": b},
			mine:   map[string]string{"10.6.0.5": "ua", "10.6.0.6": "ub"},
			merged: ipblock.BlockRecords{"10.6.0.6": b}, ours: ipblock.BlockRecords{"10.6.0.6": b}, changed: true},
		{name: "replaces its own copy of a reassigned address",
			have: ipblock.BlockRecords{"10.6.0.6": b}, want: ipblock.BlockRecords{"10.6.0.6": q},
			mine:   map[string]string{"10.6.0.6": "ub"},
			merged: ipblock.BlockRecords{"10.6.0.6": q}, ours: ipblock.BlockRecords{"10.6.0.6": q}, changed: true},
		{name: "refuses another holder it did not write",
			have: ipblock.BlockRecords{"10.6.0.6": b}, want: ipblock.BlockRecords{"10.6.0.6": q},
			mine: map[string]string{"10.6.0.6": "uother"}, errs: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			merged, ours, changed, err := mergeDrafts(tt.have, tt.want, tt.mine)
			if (err != nil) != tt.errs {
				t.Fatalf("err = %v, want error %v", err, tt.errs)
			}
			if tt.errs {
				return
			}
			if diff := cmp.Diff(tt.merged, merged); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.ours, ours); diff != "" {
				t.Errorf("ours (-want +got):\n%s", diff)
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
		})
	}
}
