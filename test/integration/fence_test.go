package integration

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// stalePools answers reads of SpiderIPPools with one pool as it was, as an agent's informer does
// until a spec update reaches it; everything else comes from the cache. It stands in for an
// informer's lag, below which this test aims: the block store, the webhook and the apiserver are
// the real ones.
type stalePools struct {
	client.Reader
	pool *v2beta1.SpiderIPPool
}

func (r stalePools) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if p, ok := obj.(*v2beta1.SpiderIPPool); ok && key.Name == r.pool.Name {
		r.pool.DeepCopyInto(p)
		return nil
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// A pool in block format shrunk through the webhook while an agent still plans against the old
// spec: the webhook fences the removed addresses in the agent's own block and in a range nobody
// has claimed, and the agent hands out none of them, though its spec still calls them usable. A
// dry run writes no fence; an update removing more than the fence bound is refused, naming the
// field; one removing an address the stale agent holds is refused, naming the address.
func TestPoolShrinkFencesStaleAgents(t *testing.T) {
	w := startWebhooks(t)
	ctx := testContext(t)
	pool := rawPool("fence-shrink", "10.197.0.0/24", build.IPs("10.197.0.1-10.197.0.40"))
	pool.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	w.track(pool)

	// The stale agent: its blocks from an informer as spiderpool-agent's, its pool frozen as created.
	const node = "fence-node"
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, ByObject: map[client.Object]cache.ByObject{
		&ipblock.SpiderIPBlock{}: {Label: blockstore.NodeSelector(node)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = c.Start(cctx) }()
	if !c.WaitForCacheSync(cctx) {
		t.Fatal("cache did not sync")
	}
	st, err := blockstore.New(stalePools{Reader: c, pool: pool.DeepCopy()}, c, env.Client, blockstore.Options{NodeName: node})
	if err != nil {
		t.Fatal(err)
	}
	held := map[netip.Addr]string{}
	allocate := func(uid string) (netip.Addr, error) {
		var a netip.Addr
		err := st.UpdatePool(ctx, pool.Name, func(s *ipam.PoolState) error {
			var err error
			a, _, err = s.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "default/" + uid, PodUID: uid}})
			return err
		})
		if err == nil {
			held[a] = uid
		}
		return a, err
	}
	first, err := allocate("before-0")
	if err != nil {
		t.Fatal(err)
	}

	// Removed: five free addresses of the agent's own block, and five of the other range, which
	// nobody has claimed.
	var own, other netip.Prefix
	for _, b := range []string{"10.197.0.0/27", "10.197.0.32/27"} {
		if p := netip.MustParsePrefix(b); p.Contains(first) {
			own = p
		} else {
			other = p
		}
	}
	var excluded []string
	isRemoved := map[netip.Addr]bool{}
	for _, b := range []netip.Prefix{own, other} {
		n := 0
		for a := b.Addr().Next(); n < 5; a = a.Next() {
			if a != first {
				excluded = append(excluded, a.String())
				isRemoved[a] = true
				n++
			}
		}
	}
	var cur v2beta1.SpiderIPPool
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &cur); err != nil {
		t.Fatal(err)
	}
	dry := cur.DeepCopy()
	dry.Spec.ExcludeIPs = excluded[:1]
	if err := env.Client.Update(ctx, dry, client.DryRunAll); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if n := fenceCount(t, pool.Name); n != 0 {
		t.Fatalf("a dry run wrote %d fences", n)
	}
	shrunk := cur.DeepCopy()
	shrunk.Spec.ExcludeIPs = excluded
	if err := env.Client.Update(ctx, shrunk); err != nil {
		t.Fatalf("shrink: %v", err)
	}
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: pool.Name}); err != nil {
		t.Fatal(err)
	}
	for _, b := range list.Items {
		if len(b.Spec.Fences) != 1 || b.Spec.Fences[0].PoolGeneration != shrunk.Generation {
			t.Errorf("block %s (node %q): fences %+v, want one of generation %d", b.Spec.CIDR, b.Spec.Node, b.Spec.Fences, shrunk.Generation)
		}
		if b.Spec.CIDR == other.String() && b.Spec.Node != "" {
			t.Errorf("block %s of the unclaimed range belongs to %q, want nobody", b.Spec.CIDR, b.Spec.Node)
		}
	}
	if len(list.Items) != 2 {
		t.Errorf("%d blocks after the shrink, want the agent's and a fence block for the unclaimed range", len(list.Items))
	}

	// The agent, still on the old spec (.1-.40 usable), fills what it may: every address but the
	// ten removed.
	for i := 0; ; i++ {
		a, err := allocate(fmt.Sprint("after-", i))
		if errors.Is(err, ipam.ErrPoolExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if isRemoved[a] {
			t.Fatalf("removed address %s allocated by the agent with the stale spec", a)
		}
		if i > 64 {
			t.Fatal("the pool never ran out")
		}
	}
	if want := 40 - 10; len(held) != want {
		t.Errorf("%d addresses held, want %d (every address the new spec keeps)", len(held), want)
	}

	// Removing an address the agent holds is refused, naming it.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &cur); err != nil {
		t.Fatal(err)
	}
	taken := cur.DeepCopy()
	taken.Spec.ExcludeIPs = append(taken.Spec.ExcludeIPs, first.String())
	wantRejected(t, env.Client.Update(ctx, taken), "spec.excludeIPs", first.String(), "default/before-0")

	// More than the bound of blocks in one update: refused before anything is written.
	big := rawPool("fence-big", "10.198.0.0/16", build.IPs("10.198.0.1-10.198.255.254"))
	big.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	if err := env.Client.Create(ctx, big); err != nil {
		t.Fatal(err)
	}
	w.track(big)
	wide := big.DeepCopy()
	wide.Spec.ExcludeIPs = []string{"10.198.0.0-10.198.63.255"} // 512 blocks of 32
	wantRejected(t, env.Client.Update(ctx, wide), "spec.excludeIPs", fmt.Sprint(blockstore.MaxFenceBlocks))
	if n := fenceCount(t, big.Name); n != 0 {
		t.Errorf("the refused update wrote %d fences", n)
	}
}

// fenceCount is the number of fence entries in the blocks of pool, read live.
func fenceCount(t *testing.T, pool string) int {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(testContext(t), &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range list.Items {
		n += len(b.Spec.Fences)
	}
	return n
}
