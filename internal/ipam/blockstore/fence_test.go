package blockstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// shrink returns p with excludeIPs set, as the update the webhook admits.
func shrink(p *v2beta1.SpiderIPPool, exclude ...string) *v2beta1.SpiderIPPool {
	n := p.DeepCopy()
	n.Spec.ExcludeIPs = exclude
	return n
}

func poolBlocks(t *testing.T, c client.Client) map[string]ipblock.SpiderIPBlock {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]ipblock.SpiderIPBlock{}
	for _, b := range list.Items {
		out[b.Spec.CIDR] = b
	}
	return out
}

// An agent whose cached pool predates a shrink allocates none of the removed addresses of its own
// block once the fence is there, and allocates them again once its pool reaches the fence's
// generation (here with the old spec, to show that the generation decides).
func TestFenceInOwnBlock(t *testing.T) {
	p := pool("p", "10.7.0.0/24", build.IPs("10.7.0.1-10.7.0.8"))
	p.Generation = 1
	c := newClient(t, p)
	a := newStore(t, c, "a", 0)
	for i := range 2 {
		if _, _, err := allocate(a, "p", fmt.Sprintf("u%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	removed := Removed(p, shrink(p, "10.7.0.3-10.7.0.8"))
	if err := Fence(context.Background(), c, c, p, removed, now); err != nil {
		t.Fatalf("fence: %v", err)
	}
	blk := poolBlocks(t, c)["10.7.0.0/27"]
	want := []ipblock.BlockFence{{PoolGeneration: 2, IPs: []string{"10.7.0.3-10.7.0.8"}, Since: metav1.NewTime(now)}}
	if got := blk.Spec.Fences; len(got) != 1 || got[0].PoolGeneration != 2 || !slices.Equal(got[0].IPs, want[0].IPs) {
		t.Fatalf("fences %+v, want %+v", got, want)
	}
	if len(blk.Spec.Records) != 2 {
		t.Fatalf("the fence changed the records: %v", blk.Spec.Records)
	}
	// The store's pool is still at generation 1 with .3-.8 usable: nothing is left for it.
	if addr, _, err := allocate(a, "p", "u-stale"); !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("allocation under the stale spec: %s, %v; want ErrPoolExhausted", addr, err)
	}
	var cur v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: "p"}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Generation = 2
	if err := c.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	addr, _, err := allocate(a, "p", "u-new")
	if err != nil || addr != netip.MustParseAddr("10.7.0.3") {
		t.Fatalf("allocation at the fence's generation: %s, %v; want 10.7.0.3", addr, err)
	}
}

// A range nobody has claimed gets a block of nobody carrying the fence: a stale agent can neither
// claim it nor, borrowing from it, take a fenced address.
func TestFenceInUnclaimedRange(t *testing.T) {
	p := pool("p", "10.8.0.0/24", build.IPs("10.8.0.1-10.8.0.63"))
	p.Generation = 4
	c := newClient(t, p)
	a := newStore(t, c, "a", 0)
	if _, _, err := allocate(a, "p", "first"); err != nil {
		t.Fatal(err)
	}
	if err := Fence(context.Background(), c, c, p, Removed(p, shrink(p, "10.8.0.40-10.8.0.50")), time.Now()); err != nil {
		t.Fatalf("fence: %v", err)
	}
	fenceBlock := poolBlocks(t, c)["10.8.0.32/27"]
	if fenceBlock.Spec.Node != "" || len(fenceBlock.Spec.Records) != 0 || len(fenceBlock.Spec.Fences) != 1 || fenceBlock.Spec.Fences[0].PoolGeneration != 5 {
		t.Fatalf("block of the unclaimed range: node %q records %v fences %+v; want a block of nobody with one fence of generation 5",
			fenceBlock.Spec.Node, fenceBlock.Spec.Records, fenceBlock.Spec.Fences)
	}
	filled := fill(t, a, "p", "u")
	for _, addr := range filled {
		if addr.Compare(netip.MustParseAddr("10.8.0.40")) >= 0 && addr.Compare(netip.MustParseAddr("10.8.0.50")) <= 0 {
			t.Fatalf("fenced %s allocated under the stale spec", addr)
		}
	}
	if got, want := 1+len(filled), 63-11; got != want {
		t.Errorf("%d addresses allocated, want every one not fenced: %d", got, want)
	}
}

// A record of a removed address, written after the webhook's check, is what the fence finds: the
// update must be refused, and the block is left as it was.
func TestFenceFindsRecord(t *testing.T) {
	p := pool("p", "10.9.0.0/24", build.IPs("10.9.0.1-10.9.0.8"))
	c := newClient(t, p)
	a := newStore(t, c, "a", 0)
	addr, _, err := allocate(a, "p", "holder")
	if err != nil {
		t.Fatal(err)
	}
	before := poolBlocks(t, c)["10.9.0.0/27"]
	err = Fence(context.Background(), c, c, p, Removed(p, shrink(p, addr.String())), time.Now())
	var held *HeldError
	if !errors.As(err, &held) || held.Addr != addr || held.Record.PodUID != "holder" {
		t.Fatalf("fence over a held address: %v; want a HeldError for %s held by uid holder", err, addr)
	}
	if after := poolBlocks(t, c)["10.9.0.0/27"]; after.ResourceVersion != before.ResourceVersion {
		t.Error("the refused fence wrote the block")
	}
}

// Past MaxFenceBlocks the update is refused before anything is written.
func TestFenceBound(t *testing.T) {
	p := pool("big", "10.10.0.0/16", build.IPs("10.10.0.1-10.10.255.254"))
	c := newClient(t, p)
	// Removing 10.10.0.0/19 touches exactly 256 blocks: allowed. 257 is one too many.
	ok := Removed(p, shrink(p, "10.10.0.0-10.10.31.255"))
	tooMany := Removed(p, shrink(p, "10.10.0.0-10.10.32.0"))
	if err := Fence(context.Background(), c, c, p, tooMany, time.Now()); !errors.Is(err, ErrTooManyBlocks) {
		t.Fatalf("fence over 257 blocks: %v, want ErrTooManyBlocks", err)
	}
	if n := len(poolBlocks(t, c)); n != 0 {
		t.Fatalf("%d blocks written by a refused fence", n)
	}
	if err := Fence(context.Background(), c, c, p, ok, time.Now()); err != nil {
		t.Fatalf("fence over 256 blocks: %v", err)
	}
	if n := len(poolBlocks(t, c)); n != MaxFenceBlocks {
		t.Fatalf("%d fence blocks, want %d", n, MaxFenceBlocks)
	}
}

// An agent never returns a fenced block: deleted, its range could be claimed without the fence.
func TestFencedBlockNotReturned(t *testing.T) {
	p := pool("p", "10.11.0.0/24", build.IPs("10.11.0.1-10.11.0.8"))
	c := newClient(t, p)
	a := newStore(t, c, "a", 0)
	addr, _, err := allocate(a, "p", "u")
	if err != nil {
		t.Fatal(err)
	}
	release(t, a, "p", addr, "u")
	if err := Fence(context.Background(), c, c, p, Removed(p, shrink(p, "10.11.0.8")), time.Now()); err != nil {
		t.Fatal(err)
	}
	empty := map[string]emptySince{}
	t0 := time.Now()
	for _, at := range []time.Time{t0, t0.Add(2 * DefaultReturnAfter)} {
		if n, err := a.returnEmpty(context.Background(), at, empty); n != 0 || err != nil {
			t.Fatalf("fenced empty block returned: %d, %v", n, err)
		}
	}
}

func TestLiveFences(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration, gen int64) ipblock.BlockFence {
		return ipblock.BlockFence{PoolGeneration: gen, IPs: []string{"10.0.0.1"}, Since: metav1.NewTime(now.Add(-ago))}
	}
	tests := []struct {
		name  string
		fence ipblock.BlockFence
		gen   int64
		keep  bool
	}{
		{"young, generation reached", at(FenceTTL/2, 3), 3, true},
		{"young, generation not reached", at(FenceTTL/2, 3), 2, true},
		{"old, generation reached", at(FenceTTL+time.Second, 3), 3, false},
		{"old, generation passed", at(FenceTTL+time.Second, 3), 7, false},
		{"old, generation not reached", at(FenceTTL+time.Second, 3), 2, true},
		{"past the maximum age, generation not reached", at(FenceMaxAge, 3), 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &ipblock.SpiderIPBlock{Spec: ipblock.SpiderIPBlockSpec{Fences: []ipblock.BlockFence{tt.fence}}}
			if got := len(LiveFences(b, tt.gen, now)) == 1; got != tt.keep {
				t.Errorf("kept %v, want %v", got, tt.keep)
			}
		})
	}
}

// A fence entry that does not parse holds back its block's whole range.
func TestFencedForMalformed(t *testing.T) {
	prefix := netip.MustParsePrefix("10.0.0.32/27")
	b := &ipblock.SpiderIPBlock{Spec: ipblock.SpiderIPBlockSpec{Fences: []ipblock.BlockFence{
		{PoolGeneration: 5, IPs: []string{"10.0.0.40"}},
		{PoolGeneration: 9, IPs: []string{"not-an-ip"}},
	}}}
	if got := fencedFor(b, prefix, 4); len(got) != 1 || got[0].First != prefix.Addr() || got[0].Last != netip.MustParseAddr("10.0.0.63") {
		t.Errorf("fenced at generation 4: %v, want the whole %s", got, prefix)
	}
	if got := fencedFor(b, prefix, 9); len(got) != 0 {
		t.Errorf("fenced at generation 9: %v, want nothing", got)
	}
}

// FuzzFence: a store allocates some addresses of a two-block pool, an update removes any subset
// of its addresses, and the store, still on the old spec, then allocates until the pool is
// exhausted. The fence must be refused exactly when a removed address is held, and otherwise no
// removed address may be allocated while every other one is.
func FuzzFence(f *testing.F) {
	f.Add(uint64(0x00ff00), uint8(3))
	f.Add(uint64(1), uint8(0))
	f.Add(uint64(0xffffffffffffffff), uint8(61))
	f.Add(uint64(0x8000000000000000), uint8(40))
	f.Fuzz(func(t *testing.T, removeMask uint64, holdCount uint8) {
		const size = 62 // 10.12.0.1-10.12.0.62
		p := pool("p", "10.12.0.0/24", build.IPs("10.12.0.1-10.12.0.62"))
		p.Generation = 1
		c := newClient(t, p)
		s := newStore(t, c, "a", 0)
		held := map[netip.Addr]bool{}
		for i := range int(holdCount) % size {
			a, _, err := allocate(s, "p", fmt.Sprint("h", i))
			if err != nil {
				t.Fatal(err)
			}
			held[a] = true
		}
		var exclude []string
		removed := map[netip.Addr]bool{}
		heldRemoved := false
		for i := range size {
			if removeMask>>i&1 == 1 {
				a := netip.AddrFrom4([4]byte{10, 12, 0, byte(i + 1)})
				exclude = append(exclude, a.String())
				removed[a] = true
				heldRemoved = heldRemoved || held[a]
			}
		}
		next := p.DeepCopy()
		next.Spec.ExcludeIPs = exclude
		err := Fence(context.Background(), c, c, p, Removed(p, next), time.Now())
		var he *HeldError
		switch {
		case heldRemoved && !errors.As(err, &he):
			t.Fatalf("fence over a held address: %v, want a HeldError", err)
		case heldRemoved:
			if !held[he.Addr] || !removed[he.Addr] {
				t.Fatalf("HeldError names %s, which is not a held removed address", he.Addr)
			}
			return
		case err != nil:
			t.Fatalf("fence: %v", err)
		}
		for _, a := range fill(t, s, "p", "n") {
			if removed[a] {
				t.Fatalf("removed %s allocated under the stale spec", a)
			}
			held[a] = true
		}
		if want := size - len(removed); len(held) != want {
			t.Fatalf("%d addresses held at exhaustion, want %d", len(held), want)
		}
	})
}
