package blockstore_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// Allocations reads a pool's records where they live: the status of a pool in status format
// (without reading anything), the blocks of a pool in block format (never its status mirror).
func TestAllocations(t *testing.T) {
	ctx := context.Background()
	status := build.Pool("s", "10.30.0.0/24", build.IPs("10.30.0.10-10.30.0.50"), build.Allocated("10.30.0.10", "ns/a", "ua"))
	got, err := blockstore.Allocations(ctx, nil, status)
	want := v2beta1.PoolIPAllocations{"10.30.0.10": {NamespacedName: "ns/a", PodUID: "ua"}}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("status pool: %v, %v; want %v", got, err, want)
	}

	p, blocks := blockstoretest.InBlocks(t, build.Pool("b", "10.31.0.0/24", build.IPs("10.31.0.10-10.31.0.50"),
		build.Allocated("10.31.0.10", "ns/a", "ua"), build.Allocated("10.31.0.40", "ns/b", "ub")), "n1")
	p.Status.AllocatedIPs = ptr.To(`{"10.31.0.11":{"pod":"ns/stale","podUid":"us"}}`) // a mirror behind
	stale := blocks[0].DeepCopy()
	stale.Name, stale.Spec.PoolUID = "b.old", "uid-of-a-deleted-pool-b"
	stale.Spec.Records = map[string]ipblock.BlockRecord{"10.31.0.12": {Pod: "ns/old", PodUID: "uo"}}
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblock.AddToScheme(s))
	objs := []client.Object{p, stale}
	for _, b := range blocks {
		objs = append(objs, b)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	got, err = blockstore.Allocations(ctx, c, p)
	want = v2beta1.PoolIPAllocations{"10.31.0.10": {NamespacedName: "ns/a", PodUID: "ua"}, "10.31.0.40": {NamespacedName: "ns/b", PodUID: "ub"}}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("block pool: %v, %v; want %v", got, err, want)
	}
}
