package ip

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The brute-force model: a universe of 64 consecutive addresses starting at
// base, and a set of them as a uint64 bit mask (bit i = base+i). The bases
// are chosen to hit the awkward places: the top of the IPv4 space (where
// Next() becomes invalid), the top of the IPv6 space, and a carry between the
// two 64-bit halves of an IPv6 address.
var modelBases = []netip.Addr{
	netip.MustParseAddr("10.0.0.0"),
	netip.MustParseAddr("255.255.255.192"),
	netip.MustParseAddr("fd00::ffff:ffff:ffff:ffe0"),
	netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0"),
}

// modelCase is one randomly generated scenario.
type modelCase struct {
	base   netip.Addr
	a, b   [][2]uint8 // inclusive offset ranges, each < 64, any order
	used   []uint8    // offsets < 80; those >= 64 lie outside the universe
	offset uint64
}

func (c modelCase) String() string {
	return fmt.Sprintf("base=%v a=%v b=%v used=%v offset=%d", c.base, c.a, c.b, c.used, c.offset)
}

func (c modelCase) addr(i uint64) (netip.Addr, bool) {
	return AddOffset(c.base, Uint128From64(i))
}

func rangesMask(rs [][2]uint8) uint64 {
	var m uint64
	for _, r := range rs {
		lo, hi := min(r[0], r[1]), max(r[0], r[1])
		for i := lo; i <= hi; i++ {
			m |= 1 << i
		}
	}
	return m
}

// build turns offset ranges into a Set, through the string parser or through
// NewSet depending on viaStrings, so that both paths are exercised.
func (c modelCase) build(t testing.TB, rs [][2]uint8, viaStrings bool) Set {
	t.Helper()
	var (
		ranges  []Range
		entries []string
	)
	for _, r := range rs {
		lo, hi := min(r[0], r[1]), max(r[0], r[1])
		f, _ := c.addr(uint64(lo))
		l, _ := c.addr(uint64(hi))
		ranges = append(ranges, Range{First: f, Last: l})
		entries = append(entries, Range{First: f, Last: l}.String())
	}
	var (
		s   Set
		err error
	)
	if viaStrings {
		s, err = ParseSet(entries, Version(c.base))
	} else {
		s, err = NewSet(Version(c.base), ranges...)
	}
	if err != nil {
		t.Fatalf("%v: building set: %v", c, err)
	}
	return s
}

// mask converts s back into the model, failing if s holds anything outside
// the universe.
func (c modelCase) mask(t testing.TB, s Set) uint64 {
	t.Helper()
	checkNormalised(t, s)
	var m uint64
	for _, r := range s.Ranges() {
		lo, ok1 := Distance(c.base, r.First)
		hi, ok2 := Distance(c.base, r.Last)
		if !ok1 || !ok2 || r.First.Less(c.base) || hi.Hi != 0 || hi.Lo >= 64 {
			t.Fatalf("%v: range %v outside the universe", c, r)
		}
		for i := lo.Lo; i <= hi.Lo; i++ {
			m |= 1 << i
		}
	}
	return m
}

func (c modelCase) usedAddrs() ([]netip.Addr, uint64) {
	var (
		out  []netip.Addr
		mask uint64
	)
	for _, u := range c.used {
		a, ok := c.addr(uint64(u))
		if !ok {
			continue // past the top of the family
		}
		out = append(out, a)
		if u < 64 {
			mask |= 1 << u
		}
	}
	// Always include addresses just below the universe and of the other
	// family; they must be ignored.
	if p := c.base.Prev(); p.IsValid() {
		out = append(out, p)
	}
	if c.base.Is4() {
		out = append(out, netip.MustParseAddr("fd00::1"))
	} else {
		out = append(out, netip.MustParseAddr("10.0.0.1"))
	}
	SortAddrs(out)
	return out, mask
}

// bruteFirstFree scans the members of set in order from position
// offset mod |set|, wrapping around.
func bruteFirstFree(set, used uint64, offset uint64) (int, bool) {
	var members []int
	for i := range 64 {
		if set&(1<<i) != 0 {
			members = append(members, i)
		}
	}
	n := uint64(len(members))
	if n == 0 {
		return 0, false
	}
	for k := range n {
		i := members[(offset%n+k)%n]
		if used&(1<<i) == 0 {
			return i, true
		}
	}
	return 0, false
}

// checkModel compares every Set operation with the bit-mask model.
func checkModel(t testing.TB, c modelCase) {
	t.Helper()
	a := c.build(t, c.a, len(c.a)%2 == 0)
	b := c.build(t, c.b, len(c.b)%2 == 1)
	ma, mb := rangesMask(c.a), rangesMask(c.b)
	if got := c.mask(t, a); got != ma {
		t.Fatalf("%v: a = %v, mask %064b, want %064b", c, a, got, ma)
	}
	if got := c.mask(t, b); got != mb {
		t.Fatalf("%v: b = %v, mask %064b, want %064b", c, b, got, mb)
	}

	u, err := a.Union(b)
	if err != nil {
		t.Fatalf("%v: union: %v", c, err)
	}
	if got := c.mask(t, u); got != ma|mb {
		t.Fatalf("%v: union = %v, want mask %064b", c, u, ma|mb)
	}
	if got := c.mask(t, a.Subtract(b)); got != ma&^mb {
		t.Fatalf("%v: subtract = %v, want mask %064b", c, a.Subtract(b), ma&^mb)
	}
	if got := c.mask(t, a.Intersect(b)); got != ma&mb {
		t.Fatalf("%v: intersect = %v, want mask %064b", c, a.Intersect(b), ma&mb)
	}
	if got := a.Overlaps(b); got != (ma&mb != 0) {
		t.Fatalf("%v: overlaps = %v", c, got)
	}
	if got := a.ContainsSet(b); got != (mb&^ma == 0) {
		t.Fatalf("%v: ContainsSet = %v", c, got)
	}
	for _, r := range c.b {
		lo, hi := min(r[0], r[1]), max(r[0], r[1])
		f, _ := c.addr(uint64(lo))
		l, _ := c.addr(uint64(hi))
		want := rangesMask([][2]uint8{r})&^ma == 0
		if got := a.ContainsRange(Range{First: f, Last: l}); got != want {
			t.Fatalf("%v: ContainsRange(%v-%v) = %v", c, f, l, got)
		}
	}
	for i := range uint64(64) {
		x, _ := c.addr(i)
		if got := a.Contains(x); got != (ma&(1<<i) != 0) {
			t.Fatalf("%v: Contains(%v) = %v", c, x, got)
		}
	}
	if got := a.Count(); got != int64(bits.OnesCount64(ma)) {
		t.Fatalf("%v: Count = %d", c, got)
	}
	if got := a.Size(); !got.IsInt64() || got.Int64() != int64(bits.OnesCount64(ma)) {
		t.Fatalf("%v: Size = %v", c, got)
	}
	if back, err := ParseSet(a.Strings(), 0); err != nil || !back.Equal(a) {
		t.Fatalf("%v: round trip of %v = %v, %v", c, a, back, err)
	}

	used, um := c.usedAddrs()
	got, ok := a.FirstFree(used, c.offset)
	wi, wok := bruteFirstFree(ma, um, c.offset)
	want, _ := c.addr(uint64(wi))
	if ok != wok || (ok && got != want) {
		t.Fatalf("%v: FirstFree = %v, %v, want %v, %v", c, got, ok, want, wok)
	}
	if got, want := a.FreeCount(used), int64(bits.OnesCount64(ma&^um)); got != want {
		t.Fatalf("%v: FreeCount = %d, want %d", c, got, want)
	}
}

func randomModelCase(r *rand.Rand) modelCase {
	c := modelCase{base: modelBases[r.IntN(len(modelBases))]}
	randRanges := func() [][2]uint8 {
		rs := make([][2]uint8, r.IntN(6))
		for i := range rs {
			lo := uint8(r.IntN(64))
			// Mostly short ranges so that the sets have holes.
			hi := min(lo+uint8(r.IntN(12)), 63)
			if r.IntN(4) == 0 {
				hi = uint8(r.IntN(64))
			}
			rs[i] = [2]uint8{lo, hi}
		}
		return rs
	}
	c.a, c.b = randRanges(), randRanges()
	c.used = make([]uint8, r.IntN(70))
	for i := range c.used {
		c.used[i] = uint8(r.IntN(80))
	}
	switch r.IntN(3) {
	case 0:
		c.offset = 0
	case 1:
		c.offset = uint64(r.IntN(200))
	default:
		c.offset = r.Uint64()
	}
	return c
}

// TestSetAgainstModel is the property test: random small sets, every
// operation cross-checked against brute force.
func TestSetAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		checkModel(t, randomModelCase(r))
	}
}

// TestToLabelValueInjective checks on random canonical prefixes, biased
// towards zero groups so that many IPv6 texts start with "::", that trimming
// dashes never maps two subnets to the same label value.
func TestToLabelValueInjective(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[string]netip.Prefix{}
	for range 20000 {
		var p netip.Prefix
		if r.IntN(3) == 0 {
			var b [4]byte
			for i := range b {
				if r.IntN(2) == 0 {
					b[i] = byte(r.IntN(256))
				}
			}
			p = netip.PrefixFrom(netip.AddrFrom4(b), r.IntN(33)).Masked()
		} else {
			var b [16]byte
			for i := 0; i < 16; i += 2 {
				if r.IntN(4) == 0 {
					b[i], b[i+1] = byte(r.IntN(3)), byte(r.IntN(256))
				}
			}
			p = netip.PrefixFrom(netip.AddrFrom16(b), r.IntN(129)).Masked()
		}
		if p.Addr().Is4In6() {
			continue
		}
		v := ToLabelValue(p.String())
		if q, ok := seen[v]; ok && q != p {
			t.Fatalf("ToLabelValue(%v) = ToLabelValue(%v) = %q", p, q, v)
		}
		seen[v] = p
		if len(v) > 63 || !labelValueRE.MatchString(v) {
			t.Fatalf("ToLabelValue(%v) = %q is not a label value", p, v)
		}
	}
}
