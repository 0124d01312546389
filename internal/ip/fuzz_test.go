package ip

import (
	"errors"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// referenceRangeOK is an independent statement of what ParseRange must
// accept, written directly against net/netip.
func referenceRangeOK(s string) bool {
	first, last, found := strings.Cut(s, "-")
	if !found {
		last = first
	}
	a, err1 := netip.ParseAddr(first)
	b, err2 := netip.ParseAddr(last)
	return err1 == nil && err2 == nil &&
		a.Zone() == "" && b.Zone() == "" &&
		!(a.Is4In6() && strings.Contains(first, ".")) && !(b.Is4In6() && strings.Contains(last, ".")) &&
		a.BitLen() == b.BitLen() && a.Compare(b) <= 0
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"10.6.212.100-10.6.212.200", "10.6.212.145", "10.0.0.9-10.0.0.1", "fd00::1-fd00::ffff",
		"10.0.0.1-fd00::1", "::ffff:1.2.3.4", "fe80::1%eth0", " 10.0.0.1", "10.0.0.0/8", "-", "a-b-c",
		"0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "FD00::A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if want := referenceRangeOK(s); (err == nil) != want {
			t.Fatalf("ParseRange(%q) error = %v, reference accepts = %v", s, err, want)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid IP range "+strconv.Quote(s)+": ") {
				t.Fatalf("error %q does not name the input", err)
			}
			if _, serr := ParseSet([]string{s}, 0); serr == nil {
				t.Fatalf("ParseSet accepted %q which ParseRange rejects", s)
			}
			return
		}
		if !r.IsValid() {
			t.Fatalf("ParseRange(%q) = invalid %#v", s, r)
		}
		str := r.String()
		back, err := ParseRange(str)
		if err != nil || back != r {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, str, back, err)
		}
		if back.String() != str {
			t.Fatalf("String not stable: %q then %q", str, back.String())
		}
		if (r.First == r.Last) == strings.Contains(str, "-") {
			t.Fatalf("String() = %q for %#v", str, r)
		}
		d, _ := Distance(r.First, r.Last)
		if want := new(big.Int).Add(d.Big(), big.NewInt(1)); r.Size().Cmp(want) != 0 {
			t.Fatalf("Size = %v, want %v", r.Size(), want)
		}
		if c := r.Count(); c < 1 || (r.Size().IsInt64() && c != r.Size().Int64()) {
			t.Fatalf("Count = %d, Size = %v", c, r.Size())
		}
		if !r.Contains(r.First) || !r.Contains(r.Last) || r.Contains(r.First.Prev()) || r.Contains(r.Last.Next()) {
			t.Fatalf("Contains is wrong at the ends of %v", r)
		}
		set, err := ParseSet([]string{s}, r.Version())
		if err != nil || len(set.Ranges()) != 1 || set.Ranges()[0] != r {
			t.Fatalf("ParseSet([%q]) = %v, %v", s, set, err)
		}
	})
}

func FuzzParseSet(f *testing.F) {
	f.Add("10.0.0.1-10.0.0.10,10.0.0.5-10.0.0.20,10.0.0.21", uint8(0), false)
	f.Add("fd00::1,fd00::2-fd00::9,fd00::/64", uint8(6), true)
	f.Add("10.0.0.1,fd00::1", uint8(4), false)
	f.Add("255.255.255.255,0.0.0.0,10.6.0.0/16", uint8(0), true)
	f.Add("10.6.1.0/16", uint8(4), true)
	f.Add("", uint8(6), false)
	f.Fuzz(func(t *testing.T, data string, v uint8, cidrs bool) {
		var entries []string
		if data != "" {
			entries = strings.Split(data, ",")
		}
		version := []int{0, 4, 6}[v%3]
		parse := ParseSet
		if cidrs {
			parse = ParseSetWithCIDRs
		}
		set, err := parse(entries, version)

		// Model: parse every entry on its own and check families.
		var (
			ranges  []Range
			wantErr bool
			family  = version
		)
		for _, e := range entries {
			var r Range
			var perr error
			if cidrs && strings.Contains(e, "/") {
				var p netip.Prefix
				if p, perr = ParseCIDR(e); perr == nil {
					r = PrefixRange(p)
				}
			} else {
				r, perr = ParseRange(e)
			}
			if perr != nil {
				wantErr = true
				break
			}
			if family == 0 {
				family = r.Version()
			}
			if r.Version() != family {
				wantErr = true
				break
			}
			ranges = append(ranges, r)
		}
		if wantErr != (err != nil) {
			t.Fatalf("parse(%q, %d) error = %v, model error = %v", entries, version, err, wantErr)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "entry ") {
				t.Fatalf("error %q does not name the entry", err)
			}
			return
		}
		checkNormalised(t, set)
		if set.Version() != family {
			t.Fatalf("Version = %d, want %d", set.Version(), family)
		}
		want, err := NewSet(family, ranges...)
		if err != nil || !want.Equal(set) {
			t.Fatalf("set %v != NewSet of entries %v (%v)", set, want, err)
		}
		for _, r := range ranges {
			if !set.ContainsRange(r) {
				t.Fatalf("%v does not contain its entry %v", set, r)
			}
		}
		// Every gap between consecutive ranges is outside the set.
		rs := set.Ranges()
		for i := 1; i < len(rs); i++ {
			if set.Contains(rs[i-1].Last.Next()) || set.Contains(rs[i].First.Prev()) {
				t.Fatalf("gap between %v and %v is contained", rs[i-1], rs[i])
			}
		}
		back, err := ParseSet(set.Strings(), set.Version())
		if err != nil || !back.Equal(set) {
			t.Fatalf("round trip %q: %v, %v", set.Strings(), back, err)
		}
		total := new(big.Int)
		for _, r := range rs {
			total.Add(total, r.Size())
		}
		if set.Size().Cmp(total) != 0 {
			t.Fatalf("Size = %v, want %v", set.Size(), total)
		}
		if !set.Subtract(set).IsEmpty() || !set.Intersect(set).Equal(set) {
			t.Fatalf("s-s or s∩s wrong for %v", set)
		}
		if u, err := set.Union(set); err != nil || !u.Equal(set) {
			t.Fatalf("s∪s = %v, %v", u, err)
		}
		if a, ok := set.FirstFree(nil, 0); ok != !set.IsEmpty() || (ok && a != rs[0].First) {
			t.Fatalf("FirstFree(nil, 0) = %v, %v", a, ok)
		}
	})
}

func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{
		"10.6.0.0/16", "10.6.1.0/16", "fd00::/64", "fd00::1/64", "::/0", "0.0.0.0/0",
		"::ffff:10.0.0.0/104", "10.0.0.0/33", "fe80::%eth0/64", "172.31.192.0/20", "10.0.0.0/08",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		if IsCanonicalCIDR(s) != (err == nil) {
			t.Fatalf("IsCanonicalCIDR disagrees with ParseCIDR(%q) = %v", s, err)
		}
		ref, referr := netip.ParsePrefix(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid CIDR "+strconv.Quote(s)+": ") {
				t.Fatalf("error %q does not name the input", err)
			}
			if referr == nil && !(ref.Addr().Is4In6() && strings.Contains(s, ".")) {
				if ref == ref.Masked() {
					t.Fatalf("ParseCIDR rejected canonical %q: %v", s, err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(ref.Masked().String())) {
					t.Fatalf("error %q does not name the canonical form %v", err, ref.Masked())
				}
			}
			return
		}
		if referr != nil || ref != p || p != p.Masked() {
			t.Fatalf("ParseCIDR(%q) = %v, netip says %v, %v", s, p, ref, referr)
		}
		if back, err := ParseCIDR(p.String()); err != nil || back != p {
			t.Fatalf("round trip %q: %v, %v", p.String(), back, err)
		}
		r := PrefixRange(p)
		if !r.IsValid() || r.First != p.Addr() || !p.Contains(r.Last) {
			t.Fatalf("PrefixRange(%v) = %v", p, r)
		}
		if n := r.Last.Next(); n.IsValid() && p.Contains(n) {
			t.Fatalf("PrefixRange(%v) = %v stops early", p, r)
		}
		if want := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits())); r.Size().Cmp(want) != 0 {
			t.Fatalf("size of %v = %v, want %v", p, r.Size(), want)
		}
		set, err := ParseSetWithCIDRs([]string{s}, 0)
		if err != nil || len(set.Ranges()) != 1 || set.Ranges()[0] != r {
			t.Fatalf("ParseSetWithCIDRs([%q]) = %v, %v", s, set, err)
		}
		if v := ToLabelValue(p.String()); len(v) > 63 || !labelValueRE.MatchString(v) || v == "" {
			t.Fatalf("ToLabelValue(%v) = %q is not a label value", p, v)
		}
	})
}

// FuzzParsePrefixLenient checks the parser of the CRDs' CIDR fields against
// net/netip: it accepts exactly what ParseCIDR accepts plus host bits, returns
// the masked prefix, and FormatPrefix writes a spelling that both parsers read
// back to the same prefix and that makes a valid label value.
func FuzzParsePrefixLenient(f *testing.F) {
	for _, s := range []string{
		"10.6.0.1/16", "10.6.0.0/16", "2002::ac0f:0/64", "FD00:0::1/64", "::/0", "1.2.3.4/0",
		"::ffff:a00:1/104", "::ffff:10.0.0.1/104", "fe80::1%eth0/64", "10.0.0.0/33", "10.0.0.0/08",
		" 10.6.0.1/16", "10.6.0.1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefixLenient(s)
		ref, referr := netip.ParsePrefix(s)
		want := referr == nil && !(ref.Addr().Is4In6() && strings.Contains(s, "."))
		if (err == nil) != want {
			t.Fatalf("ParsePrefixLenient(%q) error = %v, netip says %v, %v", s, err, ref, referr)
		}
		strict, serr := ParseCIDR(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid CIDR "+strconv.Quote(s)+": ") {
				t.Fatalf("error %q does not name the input", err)
			}
			if serr == nil {
				t.Fatalf("ParseCIDR accepted %q which ParsePrefixLenient rejects", s)
			}
			return
		}
		if p != ref.Masked() || p != p.Masked() {
			t.Fatalf("ParsePrefixLenient(%q) = %v, want %v", s, p, ref.Masked())
		}
		if serr == nil && strict != p {
			t.Fatalf("ParseCIDR(%q) = %v, ParsePrefixLenient = %v", s, strict, p)
		}
		if serr != nil && (!errors.Is(serr, ErrNotCanonical) || ref == ref.Masked()) {
			t.Fatalf("ParseCIDR(%q) = %v, but the only difference allowed is host bits", s, serr)
		}
		canon := FormatPrefix(p)
		if back, err := ParseCIDR(canon); err != nil || back != p {
			t.Fatalf("ParseCIDR(FormatPrefix) %q = %v, %v, want %v", canon, back, err, p)
		}
		if back, err := ParsePrefixLenient(canon); err != nil || back != p || FormatPrefix(back) != canon {
			t.Fatalf("ParsePrefixLenient(FormatPrefix) %q = %v, %v, want %v", canon, back, err, p)
		}
		if v := ToLabelValue(canon); len(v) > 63 || !labelValueRE.MatchString(v) || v == "" {
			t.Fatalf("ToLabelValue(%q) = %q is not a label value", canon, v)
		}
	})
}

// FuzzSetAlgebra drives the brute-force model of model_test.go from fuzz
// input: set construction, union, subtract, intersect, overlaps, contains,
// counting and free-address search must all agree with bit-mask arithmetic.
func FuzzSetAlgebra(f *testing.F) {
	f.Add([]byte{0, 2, 1, 10, 20, 30, 1, 5, 25, 3, 1, 2, 3}, uint64(0))
	f.Add([]byte{1, 1, 0, 63, 1, 63, 63, 2, 63, 62}, uint64(1))
	f.Add([]byte{2, 3, 0, 31, 32, 40, 50, 63, 2, 0, 63, 10, 10, 0, 1, 2, 3, 4, 5}, uint64(1<<63))
	f.Add([]byte{3, 1, 0, 63, 0, 64}, uint64(12345))
	f.Fuzz(func(t *testing.T, data []byte, offset uint64) {
		next := func() (byte, bool) {
			if len(data) == 0 {
				return 0, false
			}
			b := data[0]
			data = data[1:]
			return b, true
		}
		b0, _ := next()
		c := modelCase{base: modelBases[int(b0)%len(modelBases)], offset: offset}
		readRanges := func() [][2]uint8 {
			n, _ := next()
			var rs [][2]uint8
			for range n % 8 {
				lo, ok1 := next()
				hi, ok2 := next()
				if !ok1 || !ok2 {
					break
				}
				rs = append(rs, [2]uint8{lo % 64, hi % 64})
			}
			return rs
		}
		c.a, c.b = readRanges(), readRanges()
		for {
			u, ok := next()
			if !ok {
				break
			}
			c.used = append(c.used, u%80)
		}
		checkModel(t, c)
	})
}
