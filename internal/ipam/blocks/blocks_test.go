package blocks

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

func set(t testing.TB, entries ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseSet(entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func layout(t testing.TB, subnet string, bits int) Layout {
	t.Helper()
	l, err := NewLayout(netip.MustParsePrefix(subnet), bits)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewLayout(t *testing.T) {
	for _, tc := range []struct {
		subnet   string
		bits     int
		wantBits int
		wantErr  string
	}{
		{"10.6.0.0/16", 5, 5, ""},
		{"10.6.0.1/16", 5, 5, ""},      // host bits: masked
		{"10.6.0.0/30", 5, 2, ""},      // smaller than a block: one block
		{"fd00::/64", 12, 12, ""},      // the largest block
		{"10.6.0.0/16", 1, 0, "2^1"},   // too small
		{"10.6.0.0/16", 13, 0, "2^13"}, // too large
		{"10.6.0.7/32", 5, 0, ""},      // a single address: a block of one
	} {
		l, err := NewLayout(netip.MustParsePrefix(tc.subnet), tc.bits)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s 2^%d: error %v, want one containing %q", tc.subnet, tc.bits, err, tc.wantErr)
			}
			continue
		}
		if err != nil || l.Bits != tc.wantBits {
			t.Errorf("%s 2^%d: bits %d err %v, want %d", tc.subnet, tc.bits, l.Bits, err, tc.wantBits)
		}
	}
}

func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		subnet string
		bits   int
		usable []string
		want   []string
	}{
		{"ranges across blocks", "10.6.0.0/24", 4, []string{"10.6.0.10-10.6.0.20", "10.6.0.40"},
			[]string{"10.6.0.0/28", "10.6.0.16/28", "10.6.0.32/28"}},
		{"holes skip blocks", "10.6.0.0/24", 5, []string{"10.6.0.1", "10.6.0.200-10.6.0.201"},
			[]string{"10.6.0.0/27", "10.6.0.192/27"}},
		{"one block for a small subnet", "10.6.0.0/29", 5, []string{"10.6.0.1-10.6.0.6"}, []string{"10.6.0.0/29"}},
		{"IPv6", "fd00::/120", 4, []string{"fd00::1-fd00::11"}, []string{"fd00::/124", "fd00::10/124"}},
		{"nothing usable", "10.6.0.0/24", 4, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for b := range layout(t, tc.subnet, tc.bits).Blocks(set(t, tc.usable...)) {
				got = append(got, b.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("blocks (-want +got):\n%s", diff)
			}
		})
	}

	// Lazy: an IPv6 pool of 2^64 addresses has 2^59 blocks; taking the first three is instant.
	l := layout(t, "fd00::/64", 5)
	var first []string
	for b := range l.Blocks(set(t, "fd00::-fd00::ffff:ffff:ffff:ffff")) {
		if first = append(first, b.String()); len(first) == 3 {
			break
		}
	}
	if want := []string{"fd00::/123", "fd00::20/123", "fd00::40/123"}; !slices.Equal(first, want) {
		t.Errorf("first blocks of a /64: %v, want %v", first, want)
	}
}

func TestUsableAndBlockOf(t *testing.T) {
	l := layout(t, "10.6.0.0/24", 4)
	u := set(t, "10.6.0.10-10.6.0.20")
	b, ok := l.BlockOf(netip.MustParseAddr("10.6.0.17"))
	if !ok || b.String() != "10.6.0.16/28" {
		t.Fatalf("BlockOf(10.6.0.17) = %v %v", b, ok)
	}
	if got := Usable(b, u).String(); got != "10.6.0.16-10.6.0.20" {
		t.Errorf("Usable = %s", got)
	}
	if _, ok := l.BlockOf(netip.MustParseAddr("10.7.0.1")); ok {
		t.Error("BlockOf an address outside the subnet succeeded")
	}
}

func TestName(t *testing.T) {
	b := netip.MustParsePrefix("10.6.0.32/27")
	if got := Name("pool-a", "7c3e91d2-1111-2222-3333-444455556666", b); got != "pool-a.7c3e91d2.10-6-0-32" {
		t.Errorf("Name = %q", got)
	}
	if got := Name("v6", "abc", netip.MustParsePrefix("fd00::20/123")); got != "v6.abc.fd00--20" {
		t.Errorf("IPv6 Name = %q", got)
	}
	long := strings.Repeat("p", 253)
	n1, n2 := Name(long, "7c3e91d2", b), Name(long[:252]+"q", "7c3e91d2", b)
	if len(n1) > 253 || n1 == n2 {
		t.Errorf("long names: %d bytes, distinct %v", len(n1), n1 != n2)
	}
	if Name("p", "uid-1", b) == Name("p", "uid-2", b) {
		t.Error("a recreated pool's block has its predecessor's name")
	}
}

func TestPlan(t *testing.T) {
	l := layout(t, "10.6.0.0/24", 2)       // blocks of 4
	usable := set(t, "10.6.0.0-10.6.0.11") // blocks .0, .4, .8
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	blk := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	for _, tc := range []struct {
		name    string
		claimed []Claimed
		want    Plan
	}{
		{"nothing claimed: claim", nil, Plan{Claim, netip.Prefix{}}},
		{"a block known only by name is full", []Claimed{{Prefix: blk("10.6.0.0/30"), Node: "b", Full: true}, {Prefix: blk("10.6.0.4/30"), Node: "b", Full: true}, {Prefix: blk("10.6.0.8/30"), Node: "b", Full: true}, {Prefix: blk("10.6.0.12/30"), Node: "b", Full: true}}, Plan{Exhausted, netip.Prefix{}}},
		{"own block with room", []Claimed{{Prefix: blk("10.6.0.0/30"), Node: "a", Used: addrs("10.6.0.0")}}, Plan{FromOwn, blk("10.6.0.0/30")}},
		{"fullest own block first", []Claimed{
			{Prefix: blk("10.6.0.0/30"), Node: "a", Used: addrs("10.6.0.0")},
			{Prefix: blk("10.6.0.4/30"), Node: "a", Used: addrs("10.6.0.4", "10.6.0.5", "10.6.0.6")},
		}, Plan{FromOwn, blk("10.6.0.4/30")}},
		{"own full: claim another", []Claimed{{Prefix: blk("10.6.0.0/30"), Node: "a", Used: addrs("10.6.0.0", "10.6.0.1", "10.6.0.2", "10.6.0.3")}},
			Plan{Claim, netip.Prefix{}}},
		{"all claimed: borrow the emptiest", []Claimed{
			{Prefix: blk("10.6.0.0/30"), Node: "a", Used: addrs("10.6.0.0", "10.6.0.1", "10.6.0.2", "10.6.0.3")},
			{Prefix: blk("10.6.0.4/30"), Node: "b", Used: addrs("10.6.0.4", "10.6.0.5", "10.6.0.6")},
			{Prefix: blk("10.6.0.8/30"), Node: "", Used: addrs("10.6.0.8")},
		}, Plan{Borrow, blk("10.6.0.8/30")}},
		{"exhausted", []Claimed{
			{Prefix: blk("10.6.0.0/30"), Node: "a", Used: addrs("10.6.0.0", "10.6.0.1", "10.6.0.2", "10.6.0.3")},
			{Prefix: blk("10.6.0.4/30"), Node: "b", Used: addrs("10.6.0.4", "10.6.0.5", "10.6.0.6", "10.6.0.7")},
			{Prefix: blk("10.6.0.8/30"), Node: "c", Used: addrs("10.6.0.8", "10.6.0.9", "10.6.0.10", "10.6.0.11")},
		}, Plan{Exhausted, netip.Prefix{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pool{Layout: l, Usable: usable, Claimed: map[netip.Prefix]*Claimed{}}
			for i := range tc.claimed {
				p.Claimed[tc.claimed[i].Prefix] = &tc.claimed[i]
			}
			got := p.Plan("a")
			if got.Step != tc.want.Step || (tc.want.Block.IsValid() && got.Block != tc.want.Block) {
				t.Fatalf("Plan = %v %v, want %v %v", got.Step, got.Block, tc.want.Step, tc.want.Block)
			}
			if got.Step == Claim {
				if _, taken := p.Claimed[got.Block]; taken || Usable(got.Block, usable).IsEmpty() {
					t.Errorf("claims %v, which is taken or has no usable address", got.Block)
				}
			}
		})
	}
}

func TestSplit(t *testing.T) {
	l := layout(t, "10.6.0.0/24", 4)
	recs := map[netip.Addr]string{
		netip.MustParseAddr("10.6.0.1"):  "u1",
		netip.MustParseAddr("10.6.0.15"): "u2",
		netip.MustParseAddr("10.6.0.16"): "u3",
	}
	got, err := Split(l, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]map[netip.Addr]string{
		netip.MustParsePrefix("10.6.0.0/28"):  {netip.MustParseAddr("10.6.0.1"): "u1", netip.MustParseAddr("10.6.0.15"): "u2"},
		netip.MustParsePrefix("10.6.0.16/28"): {netip.MustParseAddr("10.6.0.16"): "u3"},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("Split (-want +got):\n%s", diff)
	}
	if _, err := Split(l, map[netip.Addr]string{netip.MustParseAddr("10.7.0.1"): "x"}); err == nil || !strings.Contains(err.Error(), "10.7.0.1") {
		t.Errorf("Split of a record outside the subnet: %v", err)
	}
}

func TestMirror(t *testing.T) {
	l := layout(t, "10.6.0.0/24", 4)
	recs := map[netip.Addr]string{}
	for i := range 40 {
		recs[netip.AddrFrom4([4]byte{10, 6, 0, byte(i * 3)})] = fmt.Sprintf("u%d", i)
	}
	split, err := Split(l, recs)
	if err != nil {
		t.Fatal(err)
	}
	got, n, complete, err := Mirror(split, 40)
	if err != nil || n != 40 || !complete {
		t.Fatalf("Mirror = %d records, complete %v, %v; want all 40", n, complete, err)
	}
	if diff := cmp.Diff(recs, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Mirror after Split changed the records (-want +got):\n%s", diff)
	}
	if got, n, complete, err := Mirror(split, 39); err != nil || n != 40 || complete || got != nil {
		t.Errorf("past the bound: %d records, count %d, complete %v, %v; want none, 40, false", len(got), n, complete, err)
	}
	outside := map[netip.Prefix]map[netip.Addr]string{netip.MustParsePrefix("10.6.0.0/28"): {netip.MustParseAddr("10.6.0.200"): "x"}}
	if _, _, _, err := Mirror(outside, 10); err == nil || !strings.Contains(err.Error(), "10.6.0.200") {
		t.Errorf("a record outside its block: %v", err)
	}
}
