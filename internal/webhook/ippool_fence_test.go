package webhook

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// listsBefore answers the first List of SpiderIPBlocks with none, as the apiserver did just before
// an agent's write: the webhook's check passes, and its fence then finds the record.
type listsBefore struct {
	client.Client
	listed bool
}

func (r *listsBefore) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*ipblock.SpiderIPBlockList); ok && !r.listed {
		r.listed = true
		return nil
	}
	return r.Client.List(ctx, list, opts...)
}

// A record of a removed address written between the webhook's check and its fence: the update is
// refused as if the check had seen it, naming the field, the address and its pod.
func TestIPPoolWebhookFenceFindsLateRecord(t *testing.T) {
	pool := build.Pool("p", "10.7.0.0/24", build.IPs("10.7.0.1-10.7.0.20"))
	pool.UID = types.UID("uid-p")
	pool.Generation = 3
	pool.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	blk := blockstore.NewBlock(pool, netip.MustParsePrefix("10.7.0.0/27"), "node-a",
		map[netip.Addr]ipblock.BlockRecord{netip.MustParseAddr("10.7.0.5"): {Pod: "default/late", PodUID: "uid-late", Node: "node-a"}})
	c := newAPIClient(t, pool)
	if err := ipblock.AddToScheme(c.Scheme()); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	r := &listsBefore{Client: c}
	w := &IPPoolWebhook{Reader: c, EnableIPv4: true, BlockReader: r, BlockWriter: c, now: func() time.Time { return time.Unix(1e9, 0) }}
	shrunk := pool.DeepCopy()
	shrunk.Spec.ExcludeIPs = []string{"10.7.0.5-10.7.0.6"}
	_, err := w.ValidateUpdate(context.Background(), pool, shrunk)
	if !r.listed {
		t.Fatal("the webhook never listed the blocks")
	}
	wantInvalid(t, err, "SpiderIPPool", "p", "spec.excludeIPs", "10.7.0.5", "default/late")
	var got ipblock.SpiderIPBlock
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(blk), &got); err != nil || len(got.Spec.Fences) != 0 {
		t.Errorf("block after the refusal: %v, fences %+v; want no fence", err, got.Spec.Fences)
	}

	// Without the record the same update is admitted, and fenced for generation 4.
	free := pool.DeepCopy()
	free.Spec.ExcludeIPs = []string{"10.7.0.6"}
	if _, err := w.ValidateUpdate(context.Background(), pool, free); err != nil {
		t.Fatalf("update removing a free address: %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(blk), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Fences) != 1 || got.Spec.Fences[0].PoolGeneration != 4 || got.Spec.Fences[0].IPs[0] != "10.7.0.6" {
		t.Errorf("fences %+v, want one for 10.7.0.6 at generation 4", got.Spec.Fences)
	}
}
