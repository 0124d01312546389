package ctl

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
)

// The snapshot holds the blocks of the pools in block format, and reads no block when no pool is
// in block format, so that a cluster without the SpiderIPBlock kind works as before.
func TestLoadSnapshotBlocks(t *testing.T) {
	ctx := context.Background()
	status := testPool(t, "a", "10.1.0.0/24", []string{"10.1.0.10-10.1.0.20"}, rec{"10.1.0.10": "ns/p1@u1"})
	converting := testPool(t, "b", "10.2.0.0/24", []string{"10.2.0.10-10.2.0.40"}, rec{"10.2.0.10": "ns/p2@u2", "10.2.0.33": "ns/p3@u3"})
	inBlocks, blocks := blockstoretest.InBlocks(t, &converting, "node-1")
	noBlockKind := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*ipblock.SpiderIPBlockList); ok {
			return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: ipblock.GroupName, Kind: "SpiderIPBlock"}}
		}
		return c.List(ctx, list, opts...)
	}}

	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(&status).WithInterceptorFuncs(noBlockKind).Build()
	s, err := loadSnapshot(ctx, c, false)
	if err != nil || len(s.Pools) != 1 || s.Blocks != nil {
		t.Fatalf("status pools only, no block kind: %+v, %v", s, err)
	}

	objs := []client.Object{&status, inBlocks}
	for _, b := range blocks {
		objs = append(objs, b)
	}
	c = fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objs...).Build()
	if s, err = loadSnapshot(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	x := newIndex(s)
	got := map[string][]string{}
	for pool, recs := range x.poolOf {
		for _, r := range recs {
			got[pool] = append(got[pool], r.Addr.String()+" "+r.Pod+"@"+r.PodUID)
		}
	}
	want := map[string][]string{"a": {"10.1.0.10 ns/p1@u1"}, "b": {"10.2.0.10 ns/p2@u2", "10.2.0.33 ns/p3@u3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}

	c = fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objs...).WithInterceptorFuncs(noBlockKind).Build()
	if _, err := loadSnapshot(ctx, c, false); err == nil || !strings.Contains(err.Error(), "SpiderIPPool b keeps its records in SpiderIPBlocks, a kind this cluster does not serve") {
		t.Errorf("block-format pool without the kind: %v", err)
	}
}
