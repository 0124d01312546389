package integration

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// The migration test (issue 16): a pool filled by the status-format code path (kubestore, what
// upstream and our previous version write) is converted by the controller without a record lost
// or moved, its status then mirrors the blocks, block agents allocate and release from it, and
// the old code path is fenced off.
func TestConvertPoolToBlocksLive(t *testing.T) {
	ctx := testContext(t)
	createPool(t, "convert", "10.121.0.0/16", "10.121.0.1-10.121.1.254")
	// Two real pods on two nodes, and 60 records of pods that do not exist (gone).
	pods := map[string]string{}
	old := startAgents(t, 3, false, nil)
	before := map[string]netip.Addr{}
	for i, node := range []string{"node-0", "node-1"} {
		p, err := createPod(t, "default", fmt.Sprint("conv-", i), node, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pods[string(p.UID)] = node
		res, err := old[i].alloc.Allocate(ctx, &ipam.Request{PodNamespace: "default", PodName: p.Name, PodUID: string(p.UID), NodeName: node, IfName: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		before[string(p.UID)] = res.IPs[0].Address.Addr()
	}
	for uid, a := range runAllocations(t, old, 60, 10, time.Minute) {
		before[uid] = a
	}
	checkPool(t, "convert", before)

	runController(t, func(c *controller.Config) { c.IPAMBlocks, c.GCEnabled = true, false })
	var pool v2beta1.SpiderIPPool
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "convert"}, &pool); err != nil {
			return false, err
		}
		return ipblock.InBlocks(&pool), nil
	})
	if err != nil {
		t.Fatalf("pool not converted: %v", err)
	}
	recs, err := blockstore.Records(ctx, env.Client, &pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(before) {
		t.Fatalf("%d block records after conversion, %d before", len(recs), len(before))
	}
	for uid, a := range before {
		r, ok := recs[a]
		if !ok || r.PodUID != uid || r.Node != pods[uid] {
			t.Errorf("%s: block record %+v, want UID %s on node %q", a, r, uid, pods[uid])
		}
	}

	// Block agents take over: 20 more addresses, 10 of the converted ones released.
	agents := startBlockAgents(t, 2, nil)
	after := map[string]netip.Addr{}
	for uid, a := range before {
		after[uid] = a
	}
	for i := range 20 {
		a := agents[i%2]
		uid := fmt.Sprint("uid-blocks-", i)
		res, err := a.alloc.Allocate(ctx, &ipam.Request{PodNamespace: "default", PodName: fmt.Sprint("blk-", i), PodUID: uid, NodeName: a.node, IfName: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		addr := res.IPs[0].Address.Addr()
		for u, b := range after {
			if b == addr {
				t.Fatalf("%s handed to %s, converted from %s", addr, uid, u)
			}
		}
		after[uid] = addr
	}
	released := 0
	for uid, a := range before {
		if _, real := pods[uid]; real || released == 10 {
			continue
		}
		if err := agents[released%2].alloc.Release(ctx, &ipam.ReleaseRequest{PodUID: uid, IPs: []ipam.PoolIP{{Pool: "convert", Addr: a}}}); err != nil {
			t.Fatal(err)
		}
		delete(after, uid)
		released++
	}
	checkBlocks(t, "convert", after)

	// The mirror follows within seconds: the same records, the exact count.
	err = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "convert"}, &pool); err != nil {
			return false, err
		}
		allocs, err := pool.Status.Allocations()
		if err != nil || len(allocs) != len(after) || ptr.Deref(pool.Status.AllocatedIPCount, -1) != int64(len(after)) {
			return false, err
		}
		for uid, a := range after {
			if allocs[a.String()].PodUID != uid {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the status does not mirror the blocks: %d records, count %v, want %d: %v",
			len(ptr.Deref(pool.Status.AllocatedIPs, "")), pool.Status.AllocatedIPCount, len(after), err)
	}

	// The old code path is fenced off: it refuses the converted pool instead of writing its status.
	_, err = old[0].alloc.Allocate(ctx, &ipam.Request{PodNamespace: "default", PodName: "late", PodUID: "uid-late", NodeName: "node-0", IfName: "eth0"})
	if !errorsIs(err, ipam.ErrInBlocks) {
		t.Fatalf("status-format store on a converted pool: %v, want ErrInBlocks", err)
	}
}
