package ipam_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// A view answers for its loaded ranges, allocates only from its allocatable part, and notes
// every question it cannot answer instead of answering it wrongly.
func TestPoolView(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"), build.ExcludeIPs("10.6.0.33"))
	own := netip.MustParsePrefix("10.6.0.32/27")
	lent := netip.MustParsePrefix("10.6.0.64/27")
	addr := netip.MustParseAddr
	newView := func(t *testing.T, complete bool) *ipam.PoolState {
		t.Helper()
		st, err := ipam.NewPoolView(pool, ipam.View{
			Loaded:      []netip.Prefix{lent, own},
			Complete:    complete,
			Records:     map[netip.Addr]ipam.Owner{addr("10.6.0.32"): owner("a"), addr("10.6.0.70"): owner("b")},
			Allocatable: mustSet(t, "10.6.0.32-10.6.0.63"),
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	tests := []struct {
		name     string
		complete bool
		fn       func(st *ipam.PoolState) (any, error)
		want     any
		wants    ipam.Wants
	}{
		{
			name: "new address from the allocatable part, skipping records and exclusions",
			fn: func(st *ipam.PoolState) (any, error) {
				a, _, err := st.Allocate(ipam.Claim{Owner: owner("c")})
				return a, err
			},
			want: addr("10.6.0.34"),
		},
		{
			name: "retry finds a record in a loaded block it may not allocate from",
			fn: func(st *ipam.PoolState) (any, error) {
				a, reused, err := st.Allocate(ipam.Claim{Owner: owner("b")})
				return []any{a, reused}, err
			},
			want: []any{addr("10.6.0.70"), true},
		},
		{
			name: "lookup outside the loaded ranges is a miss, not a free address",
			fn: func(st *ipam.PoolState) (any, error) {
				_, ok := st.Record(addr("10.6.0.5"))
				return ok, nil
			},
			want:  false,
			wants: ipam.Wants{Addrs: []netip.Addr{addr("10.6.0.5")}},
		},
		{
			name: "release and transfer outside are misses too",
			fn: func(st *ipam.PoolState) (any, error) {
				r := st.Release(addr("10.6.0.100"), "x")
				m := st.Transfer(addr("10.6.0.101"), owner("x"), owner("y"))
				return []bool{r, m}, nil
			},
			want:  []bool{false, false},
			wants: ipam.Wants{Addrs: []netip.Addr{addr("10.6.0.100"), addr("10.6.0.101")}},
		},
		{
			name:     "a complete view has no misses",
			complete: true,
			fn: func(st *ipam.PoolState) (any, error) {
				_, ok := st.Record(addr("10.6.0.5"))
				return []any{ok, st.ReleaseOwner("nobody")}, nil
			},
			want: []any{false, []netip.Addr(nil)},
		},
		{
			name: "release by owner in a partial view asks for every block",
			fn: func(st *ipam.PoolState) (any, error) {
				return st.ReleaseOwner("a"), nil
			},
			want:  []netip.Addr{addr("10.6.0.32")},
			wants: ipam.Wants{Owners: []string{"a"}},
		},
		{
			name: "a full allocatable part asks for space",
			fn: func(st *ipam.PoolState) (any, error) {
				for i := range 30 { // 32 addresses in the block: one recorded, one excluded
					if _, _, err := st.Allocate(ipam.Claim{Owner: owner(string(rune('A' + i)))}); err != nil {
						return i, err
					}
				}
				_, _, err := st.Allocate(ipam.Claim{Owner: owner("last")})
				return errors.Is(err, ipam.ErrPoolExhausted), nil
			},
			want:  true,
			wants: ipam.Wants{Space: true},
		},
		{
			name: "a pool in blocks is not capped by MaxRecords",
			fn: func(st *ipam.PoolState) (any, error) {
				a, _, err := st.Allocate(ipam.Claim{Owner: owner("c"), MaxRecords: 1})
				return a, err
			},
			want: addr("10.6.0.34"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newView(t, tc.complete)
			got, err := tc.fn(st)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			w := st.Wants()
			slices.SortFunc(w.Addrs, netip.Addr.Compare)
			if diff := cmp.Diff(tc.wants, w, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Wants (-want +got):\n%s", diff)
			}
			if !st.IsView() {
				t.Error("IsView = false")
			}
		})
	}
}

// A view refuses records outside its loaded ranges and cannot be written as a pool status.
func TestPoolViewRefusals(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.200"))
	_, err := ipam.NewPoolView(pool, ipam.View{
		Loaded:  []netip.Prefix{netip.MustParsePrefix("10.6.0.0/27")},
		Records: map[netip.Addr]ipam.Owner{netip.MustParseAddr("10.6.0.40"): owner("a")},
	})
	if err == nil {
		t.Error("record outside the loaded ranges accepted")
	}
	st, err := ipam.NewPoolView(pool, ipam.View{Loaded: []netip.Prefix{netip.MustParsePrefix("10.6.0.0/27")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Allocate(ipam.Claim{Owner: owner("a")}); !errors.Is(err, ipam.ErrPoolExhausted) || !st.Wants().Space {
		t.Errorf("allocation from a view with nothing allocatable: %v, wants %+v", err, st.Wants())
	}
	var status = pool.Status
	if err := st.WriteStatus(&status); err == nil {
		t.Error("a view was written as a pool status")
	}
}
