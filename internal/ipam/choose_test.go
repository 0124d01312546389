package ipam_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func mustState(t *testing.T, p *v2beta1.SpiderIPPool) *ipam.PoolState {
	t.Helper()
	st, err := ipam.NewPoolState(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustSet(t *testing.T, entries ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseSet(entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func owner(uid string) ipam.Owner { return ipam.Owner{Pod: "app/" + uid, PodUID: uid} }

func TestPoolStateAllocate(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.ExcludeIPs("10.6.0.10", "10.6.0.12"), build.Allocated("10.6.0.11", "app/old", "old"))
	tests := []struct {
		name  string
		claim ipam.Claim
		want  string
	}{
		{name: "lowest free skips excluded and allocated", claim: ipam.Claim{Owner: owner("a")}, want: "10.6.0.13"},
		{name: "reserved IPs are skipped", claim: ipam.Claim{Owner: owner("a"), Reserved: mustSet(t, "10.6.0.13-10.6.0.14")}, want: "10.6.0.15"},
		{name: "reserved IPs of the other family are ignored", claim: ipam.Claim{Owner: owner("a"), Reserved: mustSet(t, "fd00::1")}, want: "10.6.0.13"},
		// Offsets are positions in ips - excludeIPs - reserved, held addresses
		// included: 11, 13, 14, ..., 20 (9 positions).
		{name: "offset starts the search further", claim: ipam.Claim{Owner: owner("a"), Offset: 3}, want: "10.6.0.15"},
		{name: "offset wraps around", claim: ipam.Claim{Owner: owner("a"), Offset: 9 + 2}, want: "10.6.0.14"},
		{name: "offset at a held address moves on", claim: ipam.Claim{Owner: owner("a"), Offset: 9}, want: "10.6.0.13"},
		{name: "retry of the holder returns its address", claim: ipam.Claim{Owner: owner("old")}, want: "10.6.0.11"},
		{name: "holder avoiding its address gets a new one", claim: ipam.Claim{Owner: owner("old"), Avoid: []netip.Addr{netip.MustParseAddr("10.6.0.11")}}, want: "10.6.0.13"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := mustState(t, pool)
			got, reused, err := st.Allocate(tc.claim)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if wantReused := tc.want == "10.6.0.11"; reused != wantReused {
				t.Fatalf("reused %v, want %v", reused, wantReused)
			}
			if o, ok := st.Record(got); !ok || o != tc.claim.Owner && !reused {
				t.Fatalf("record of %s: %+v %v", got, o, ok)
			}
			if st.Changed() == reused {
				t.Fatalf("Changed %v after reused %v", st.Changed(), reused)
			}
		})
	}
}

func TestPoolStateExhaustion(t *testing.T) {
	st := mustState(t, build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.0.2")))
	for _, uid := range []string{"a", "b"} {
		if _, _, err := st.Allocate(ipam.Claim{Owner: owner(uid)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := st.Allocate(ipam.Claim{Owner: owner("c")})
	if err != ipam.ErrPoolExhausted { // the bare sentinel gives the short upstream message
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
	// A holder still gets its address back from a full pool.
	if a, reused, err := st.Allocate(ipam.Claim{Owner: owner("b")}); err != nil || !reused || a.String() != "10.6.0.2" {
		t.Fatalf("retry on a full pool: %s %v %v", a, reused, err)
	}

	st = mustState(t, build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.0.9")))
	for _, uid := range []string{"a", "b"} {
		if _, _, err := st.Allocate(ipam.Claim{Owner: owner(uid), MaxRecords: 2}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = st.Allocate(ipam.Claim{Owner: owner("c"), MaxRecords: 2})
	if !errors.Is(err, ipam.ErrPoolExhausted) || !strings.Contains(err.Error(), `IPPool "p" holds 2 IP records, the maximum`) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := st.Allocate(ipam.Claim{}); err == nil {
		t.Fatal("empty UID: want an error")
	}
}

func TestPoolStateHugeIPv6Pool(t *testing.T) {
	// A /64 has 2^64 addresses; nothing may iterate over them.
	st := mustState(t, build.Pool("v6", "fd00::/64", build.IPs("fd00::-fd00::ffff:ffff:ffff:ffff")))
	a, _, err := st.Allocate(ipam.Claim{Owner: owner("a"), Offset: 1 << 63})
	if err != nil || a.String() != "fd00::8000:0:0:0" {
		t.Fatalf("got %s %v", a, err)
	}
	if st.Usable().Count() <= 0 {
		t.Fatal("count overflowed")
	}
}

func TestPoolStateRelease(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.0.9"), build.Allocated("10.6.0.1", "app/a", "a"), build.Allocated("10.6.0.2", "app/a", "a"), build.Allocated("10.6.0.3", "app/b", "b"))
	st := mustState(t, pool)
	a1 := netip.MustParseAddr("10.6.0.1")
	if st.Release(a1, "b") {
		t.Fatal("released a record of another UID")
	}
	if st.Changed() {
		t.Fatal("a refused release changed the state")
	}
	if !st.Release(a1, "a") || st.Release(a1, "a") {
		t.Fatal("release is not exactly once")
	}
	if st.Release(netip.MustParseAddr("10.6.0.9"), "a") {
		t.Fatal("released a missing record")
	}
	if got := st.ReleaseOwner("a"); len(got) != 1 || got[0].String() != "10.6.0.2" {
		t.Fatalf("ReleaseOwner: %v", got)
	}
	if st.Len() != 1 {
		t.Fatalf("%d records left, want 1", st.Len())
	}
	if err := st.WriteStatus(&pool.Status); err != nil {
		t.Fatal(err)
	}
	if *pool.Status.AllocatedIPCount != 1 || *pool.Status.AllocatedIPs != `{"10.6.0.3":{"pod":"app/b","podUid":"b"}}` {
		t.Fatalf("status %q %d", *pool.Status.AllocatedIPs, *pool.Status.AllocatedIPCount)
	}
	st.ReleaseOwner("b")
	if err := st.WriteStatus(&pool.Status); err != nil {
		t.Fatal(err)
	}
	if pool.Status.AllocatedIPs != nil || *pool.Status.AllocatedIPCount != 0 {
		t.Fatalf("empty status %v %d", pool.Status.AllocatedIPs, *pool.Status.AllocatedIPCount)
	}
}

func TestPoolStateApplyUndoesFailure(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.0.9"), build.Allocated("10.6.0.5", "app/x", "x"))
	st := mustState(t, pool)
	if err := st.Apply(func(st *ipam.PoolState) error {
		_, _, err := st.Allocate(ipam.Claim{Owner: owner("a")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := st.Apply(func(st *ipam.PoolState) error {
		st.Allocate(ipam.Claim{Owner: owner("b")})
		st.Release(netip.MustParseAddr("10.6.0.5"), "x")
		st.Release(netip.MustParseAddr("10.6.0.1"), "a")
		return boom
	})
	if err != boom { // Apply returns fn's error unchanged
		t.Fatalf("got %v", err)
	}
	var got []string
	for a, o := range st.All() {
		got = append(got, a.String()+"="+o.PodUID)
	}
	if strings.Join(got, " ") != "10.6.0.1=a 10.6.0.5=x" || !st.Changed() {
		t.Fatalf("after undo: %v, changed %v", got, st.Changed())
	}
	// The undone address is free again for the next function.
	if a, _, _ := st.Allocate(ipam.Claim{Owner: owner("c")}); a.String() != "10.6.0.2" {
		t.Fatalf("got %s", a)
	}
}

func TestNewPoolStateErrors(t *testing.T) {
	raw := func(p *v2beta1.SpiderIPPool, s string) *v2beta1.SpiderIPPool {
		p.Status.AllocatedIPs = &s
		return p
	}
	for name, tc := range map[string]struct {
		pool *v2beta1.SpiderIPPool
		want string
	}{
		"bad subnet":        {build.Pool("p", "10.6.0.0", build.Version(4)), `IPPool "p": spec.subnet`},
		"version mismatch":  {build.Pool("p", "10.6.0.0/16", build.Version(6)), "spec.ipVersion 6 does not match"},
		"bad ips":           {build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.9-10.6.0.1")), "spec.ips"},
		"family of ips":     {build.Pool("p", "10.6.0.0/16", build.IPs("fd00::1")), "spec.ips"},
		"bad excludeIPs":    {build.Pool("p", "10.6.0.0/16", build.ExcludeIPs("x")), "spec.excludeIPs"},
		"bad allocatedIPs":  {raw(build.Pool("p", "10.6.0.0/16"), "{"), "decode status.allocatedIPs"},
		"bad allocated key": {raw(build.Pool("p", "10.6.0.0/16"), `{"x":{"pod":"a/b","podUid":"u"}}`), "status.allocatedIPs"},
		"two spellings": {
			raw(build.Pool("p", "fd00::/64"), `{"fd00::1":{"pod":"a/b","podUid":"u"},"fd00:0::1":{"pod":"a/c","podUid":"v"}}`),
			"address fd00::1 recorded twice",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ipam.NewPoolState(tc.pool)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A pool written past the webhook keeps upstream's spelling of its subnet; the state reads it
// masked, so addresses get the subnet's prefix length and pools of one network compare equal.
func TestNewPoolStateSubnetSpellings(t *testing.T) {
	for _, tc := range []struct {
		subnet, ips string
		want        netip.Prefix
	}{
		{"10.6.0.1/16", "10.6.168.101-10.6.168.110", netip.MustParsePrefix("10.6.0.0/16")},
		{"2002::ac0f:0/64", "2002::ac0f:10-2002::ac0f:20", netip.MustParsePrefix("2002::/64")},
		{"FD00:0::/64", "fd00::10", netip.MustParsePrefix("fd00::/64")},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			st := mustState(t, build.Pool("p", tc.subnet, build.IPs(tc.ips)))
			if st.Subnet() != tc.want {
				t.Errorf("Subnet() = %v, want %v", st.Subnet(), tc.want)
			}
			if want := mustSet(t, tc.ips); !st.Usable().Equal(want) {
				t.Errorf("Usable() = %v, want %v", st.Usable(), want)
			}
		})
	}
}
