package ipam_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// viewOp is one call a function of UpdatePool may make on a PoolState.
type viewOp struct {
	kind byte // 0 Record, 1 Release, 2 Transfer, 3 ReleaseOwner, 4 Allocate
	addr netip.Addr
	uid  string
	to   string
}

// runOps applies ops to st and returns what each returned, as text.
func runOps(st *ipam.PoolState, ops []viewOp, reserved ip.Set) []string {
	var out []string
	for _, o := range ops {
		switch o.kind {
		case 0:
			ow, ok := st.Record(o.addr)
			out = append(out, fmt.Sprint("record ", ow, ok))
		case 1:
			out = append(out, fmt.Sprint("release ", st.Release(o.addr, o.uid)))
		case 2:
			out = append(out, fmt.Sprint("transfer ", st.Transfer(o.addr, ipam.Owner{Pod: "ns/" + o.uid, PodUID: o.uid}, ipam.Owner{Pod: "ns/" + o.to, PodUID: o.to})))
		case 3:
			got := st.ReleaseOwner(o.uid)
			slices.SortFunc(got, netip.Addr.Compare)
			out = append(out, fmt.Sprint("release owner ", got))
		case 4:
			a, reused, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/" + o.uid, PodUID: o.uid}, Reserved: reserved})
			out = append(out, fmt.Sprint("allocate ", a, reused, errors.Is(err, ipam.ErrPoolExhausted)))
		}
	}
	return out
}

// FuzzPoolView checks the contract the block store relies on: given the records of the pods it
// allocates for, a view answers every call exactly as the whole pool does (allocations restricted
// to the view's allocatable part), or it says what it lacks; loading what it lacks and running
// again converges on the whole pool's answers, and the records of the loaded ranges end up the
// same.
func FuzzPoolView(f *testing.F) {
	f.Add([]byte{0x0f, 1, 10, 1, 40, 2, 3, 70, 1, 4, 5, 3, 1, 0, 9, 2})
	f.Add([]byte{0xff, 0, 4, 20, 0, 4, 21, 3, 2, 0, 100, 1, 0, 1, 50, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &bytesReader{b: data}
		// The pool: 10.6.0.1-10.6.0.200 in a /24, blocks of /27 (8 ranges).
		blocks := make([]netip.Prefix, 8)
		for i := range blocks {
			blocks[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 6, 0, byte(32 * i)}), 27)
		}
		addrOf := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 6, 0, b}) }
		uidOf := func(b byte) string { return fmt.Sprint("u", b%6) }
		records := map[netip.Addr]ipam.Owner{}
		loadedMask := r.next()
		own := int(r.next() % 8)
		loadedMask |= 1 << own
		for range int(r.next() % 24) {
			a := addrOf(1 + r.next()%200)
			u := uidOf(r.next())
			records[a] = ipam.Owner{Pod: "ns/" + u, PodUID: u}
		}
		var ops []viewOp
		for !r.done() && len(ops) < 40 {
			ops = append(ops, viewOp{kind: r.next() % 5, addr: addrOf(r.next()), uid: uidOf(r.next()), to: uidOf(r.next())})
		}

		allocs := v2beta1.PoolIPAllocations{}
		for a, o := range records {
			allocs[a.String()] = v2beta1.PoolIPAllocation{NamespacedName: o.Pod, PodUID: o.PodUID}
		}
		pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"), build.Allocations(allocs))
		usable, err := pool.Spec.UsableIPs()
		if err != nil {
			t.Fatal(err)
		}
		ownRange := ip.PrefixRange(blocks[own])
		allocatable, _ := ip.NewSet(4, ownRange)
		// The whole pool, with everything but the own block reserved, must pick as the view does.
		notOwn := usable.Subtract(allocatable)
		whole, err := ipam.NewPoolState(pool)
		if err != nil {
			t.Fatal(err)
		}
		want := runOps(whole, ops, notOwn)

		loaded := map[netip.Prefix]bool{}
		for i, b := range blocks {
			if loadedMask&(1<<i) != 0 {
				loaded[b] = true
			}
		}
		// The block store's guarantee (holder labels): every record of a pod the node allocates
		// for is in the node's cache, so in the view from the start.
		for a, o := range records {
			if slices.ContainsFunc(ops, func(op viewOp) bool { return op.kind == 4 && op.uid == o.PodUID }) {
				loaded[netip.PrefixFrom(a, 27).Masked()] = true
			}
		}
		complete := false
		for round := 0; ; round++ {
			if round > 10 {
				t.Fatal("loading what the view lacked did not converge")
			}
			v := ipam.View{Complete: complete, Records: map[netip.Addr]ipam.Owner{}, Allocatable: allocatable}
			for b := range loaded {
				v.Loaded = append(v.Loaded, b)
			}
			for a, o := range records {
				if complete || slices.ContainsFunc(v.Loaded, func(p netip.Prefix) bool { return p.Contains(a) }) {
					v.Records[a] = o
				}
			}
			if complete {
				v.Loaded = blocks
			}
			st, err := ipam.NewPoolView(pool, v)
			if err != nil {
				t.Fatal(err)
			}
			got := runOps(st, ops, notOwn)
			w := st.Wants()
			if len(w.Addrs) == 0 && len(w.Owners) == 0 {
				if !slices.Equal(got, want) {
					t.Fatalf("view with loaded %v answered\n%q\nthe whole pool\n%q", v.Loaded, got, want)
				}
				for a, o := range whole.All() {
					if loaded[netip.PrefixFrom(a, 27).Masked()] || complete {
						if vo, ok := st.Record(a); !ok || vo != o {
							t.Fatalf("record of %s: view %v %v, whole pool %v", a, vo, ok, o)
						}
					}
				}
				return
			}
			for _, a := range w.Addrs {
				if !netip.MustParsePrefix("10.6.0.0/24").Contains(a) {
					t.Fatalf("miss outside the pool's subnet reported: %s", a)
				}
				loaded[netip.PrefixFrom(a, 27).Masked()] = true
			}
			if len(w.Owners) > 0 {
				complete = true
			}
		}
	})
}
