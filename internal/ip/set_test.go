package ip

import (
	"errors"
	"math"
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func mustSet(t testing.TB, version int, entries ...string) Set {
	t.Helper()
	s, err := ParseSetWithCIDRs(entries, version)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSet(t *testing.T) {
	tests := []struct {
		name        string
		entries     []string
		version     int
		cidrs       bool
		want        []string
		wantVersion int
		wantErr     error
		wantError   string // prefix of the message, when set
	}{
		{name: "empty", entries: nil, version: 0, want: []string{}, wantVersion: 0},
		{name: "empty v6", entries: []string{}, version: 6, want: []string{}, wantVersion: 6},
		{name: "single", entries: []string{"10.6.212.145"}, want: []string{"10.6.212.145"}, wantVersion: 4},
		{name: "sorted output", version: 4,
			entries:     []string{"10.0.0.50", "10.0.0.1-10.0.0.10", "10.0.0.30-10.0.0.40"},
			want:        []string{"10.0.0.1-10.0.0.10", "10.0.0.30-10.0.0.40", "10.0.0.50"},
			wantVersion: 4},
		{name: "merge overlapping",
			entries:     []string{"10.0.0.1-10.0.0.10", "10.0.0.5-10.0.0.20", "10.0.0.7"},
			want:        []string{"10.0.0.1-10.0.0.20"},
			wantVersion: 4},
		{name: "merge adjacent",
			entries:     []string{"10.0.0.11-10.0.0.20", "10.0.0.1-10.0.0.10", "10.0.0.21", "10.0.0.23"},
			want:        []string{"10.0.0.1-10.0.0.21", "10.0.0.23"},
			wantVersion: 4},
		{name: "merge across octet", entries: []string{"10.0.0.255", "10.0.1.0"},
			want: []string{"10.0.0.255-10.0.1.0"}, wantVersion: 4},
		{name: "duplicates", entries: []string{"10.0.0.1", "10.0.0.1"}, want: []string{"10.0.0.1"}, wantVersion: 4},
		{name: "contained", entries: []string{"10.0.0.0-10.0.255.255", "10.0.3.0-10.0.4.0"},
			want: []string{"10.0.0.0-10.0.255.255"}, wantVersion: 4},
		{name: "top of v4 space", entries: []string{"255.255.255.255", "255.255.255.250-255.255.255.254", "0.0.0.0"},
			want: []string{"0.0.0.0", "255.255.255.250-255.255.255.255"}, wantVersion: 4},
		{name: "v6", version: 6,
			entries:     []string{"fd00::10-fd00::20", "fd00::1", "fd00::2-fd00::f", "fd00::ffff"},
			want:        []string{"fd00::1-fd00::20", "fd00::ffff"},
			wantVersion: 6},
		{name: "v6 adjacent across 64-bit halves",
			entries: []string{"fd00::ffff:ffff:ffff:ffff", "fd00:0:0:1::"},
			want:    []string{"fd00::ffff:ffff:ffff:ffff-fd00:0:0:1::"}, wantVersion: 6},
		{name: "cidr", cidrs: true, entries: []string{"10.6.0.0/16", "10.7.0.0", "10.5.255.255"},
			want: []string{"10.5.255.255-10.7.0.0"}, wantVersion: 4},
		{name: "v6 cidr", cidrs: true, entries: []string{"fd00::/64"},
			want: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, wantVersion: 6},

		{name: "bad entry index", entries: []string{"10.0.0.1", "10.0.0.2", "x"}, wantErr: ErrInvalidAddr,
			wantError: `entry 2 "x": invalid IP address`},
		{name: "reversed", entries: []string{"10.0.0.9-10.0.0.1"}, wantErr: ErrReversedRange,
			wantError: `entry 0 "10.0.0.9-10.0.0.1": first address is after last address`},
		{name: "family vs version", version: 4, entries: []string{"10.0.0.1", "fd00::1"}, wantErr: ErrFamilyMismatch,
			wantError: `entry 1 "fd00::1": IP family mismatch: IPv6 entry in an IPv4 set`},
		{name: "family inferred", entries: []string{"fd00::1", "10.0.0.1"}, wantErr: ErrFamilyMismatch,
			wantError: `entry 1 "10.0.0.1": IP family mismatch: IPv4 entry in an IPv6 set (family taken from entry 0)`},
		{name: "bad version", version: 5, entries: []string{"10.0.0.1"}, wantErr: ErrInvalidVersion},
		{name: "cidr not allowed", entries: []string{"10.6.0.0/16"}, wantErr: ErrCIDRNotAllowed},
		{name: "non-canonical cidr", cidrs: true, entries: []string{"10.0.0.1", "10.6.1.0/16"}, wantErr: ErrNotCanonical,
			wantError: `entry 1 "10.6.1.0/16": not in canonical network form, want "10.6.0.0/16"`},
		{name: "whitespace", entries: []string{"10.0.0.1 "}, wantErr: ErrWhitespace},
		{name: "empty entry", entries: []string{""}, wantErr: ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := ParseSet
			if tt.cidrs {
				parse = ParseSetWithCIDRs
			}
			got, err := parse(tt.entries, tt.version)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), tt.wantError) {
					t.Errorf("error = %q, want prefix %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Strings(); !reflect.DeepEqual(s, tt.want) {
				t.Errorf("Strings() = %q, want %q", s, tt.want)
			}
			if got.Version() != tt.wantVersion {
				t.Errorf("Version() = %d, want %d", got.Version(), tt.wantVersion)
			}
			if got.IsEmpty() != (len(tt.want) == 0) {
				t.Errorf("IsEmpty() = %v", got.IsEmpty())
			}
			checkNormalised(t, got)
			// The canonical form must parse back to the same set.
			back, err := ParseSet(got.Strings(), got.Version())
			if err != nil || !back.Equal(got) {
				t.Errorf("round trip = %v, %v", back, err)
			}
		})
	}
}

// checkNormalised asserts the Set invariants: valid ranges of the set's
// family, sorted, neither overlapping nor adjacent.
func checkNormalised(t testing.TB, s Set) {
	t.Helper()
	rs := s.Ranges()
	for i, r := range rs {
		if !r.IsValid() {
			t.Fatalf("range %d %v is invalid", i, r)
		}
		if r.Version() != s.Version() {
			t.Fatalf("range %d %v is IPv%d in an IPv%d set", i, r, r.Version(), s.Version())
		}
		if i > 0 && touches(rs[i-1], r) {
			t.Fatalf("ranges %d and %d (%v, %v) overlap or touch", i-1, i, rs[i-1], r)
		}
		if i > 0 && rs[i-1].Last.Compare(r.First) >= 0 {
			t.Fatalf("ranges %d and %d are not sorted", i-1, i)
		}
	}
}

func TestNewSet(t *testing.T) {
	a, b := mustRange(t, "10.0.0.5-10.0.0.9"), mustRange(t, "10.0.0.1-10.0.0.4")
	s, err := NewSet(0, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "10.0.0.1-10.0.0.9" {
		t.Errorf("NewSet = %s", got)
	}
	if _, err := NewSet(0, a, Range{}); !errors.Is(err, ErrInvalidAddr) || !strings.HasPrefix(err.Error(), "range 1 ") {
		t.Errorf("zero range error = %v", err)
	}
	if _, err := NewSet(0, Range{a.Last, a.First}); !errors.Is(err, ErrReversedRange) {
		t.Errorf("reversed range error = %v", err)
	}
	if _, err := NewSet(6, a); !errors.Is(err, ErrFamilyMismatch) {
		t.Errorf("family error = %v", err)
	}
	if _, err := NewSet(0, Range{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::1")}); !errors.Is(err, ErrMixedFamily) {
		t.Errorf("mixed family error = %v", err)
	}
	// Ranges returns a copy: mutating it must not change the set.
	rs := s.Ranges()
	rs[0].First = netip.MustParseAddr("1.1.1.1")
	if s.String() != "10.0.0.1-10.0.0.9" {
		t.Error("Set was mutated through Ranges()")
	}
}

func TestSetContains(t *testing.T) {
	s := mustSet(t, 4, "10.0.0.10-10.0.0.20", "10.0.0.30", "10.0.1.0-10.0.1.255", "255.255.255.255")
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.9", false}, {"10.0.0.10", true}, {"10.0.0.20", true}, {"10.0.0.21", false},
		{"10.0.0.29", false}, {"10.0.0.30", true}, {"10.0.0.31", false},
		{"10.0.1.128", true}, {"10.0.2.0", false}, {"255.255.255.255", true},
		{"0.0.0.0", false}, {"::a00:a", false}, {"::ffff:10.0.0.10", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := s.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if s.Contains(netip.Addr{}) || (Set{}).Contains(netip.MustParseAddr("10.0.0.10")) {
		t.Error("Contains of zero values")
	}
	v6 := mustSet(t, 6, "fe80::1-fe80::5")
	if !v6.Contains(netip.MustParseAddr("fe80::3%eth0")) {
		t.Error("zone should be ignored by Contains")
	}
}

func TestSetContainsRange(t *testing.T) {
	s := mustSet(t, 4, "10.0.0.10-10.0.0.20", "10.0.0.22-10.0.0.30")
	tests := []struct {
		r    string
		want bool
	}{
		{"10.0.0.10-10.0.0.20", true},
		{"10.0.0.12-10.0.0.15", true},
		{"10.0.0.25", true},
		{"10.0.0.9-10.0.0.12", false},
		{"10.0.0.18-10.0.0.24", false}, // spans the hole at .21
		{"10.0.0.21", false},
		{"10.0.0.30-10.0.0.31", false},
		{"fd00::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.r, func(t *testing.T) {
			if got := s.ContainsRange(mustRange(t, tt.r)); got != tt.want {
				t.Errorf("ContainsRange(%s) = %v, want %v", tt.r, got, tt.want)
			}
		})
	}
	if s.ContainsRange(Range{}) {
		t.Error("ContainsRange(zero) = true")
	}
	if !s.ContainsSet(mustSet(t, 4, "10.0.0.11", "10.0.0.25-10.0.0.26")) || s.ContainsSet(mustSet(t, 4, "10.0.0.11", "10.0.0.21")) {
		t.Error("ContainsSet")
	}
	if !s.ContainsSet(Set{}) || !(Set{}).ContainsSet(Set{}) {
		t.Error("empty set is a subset of everything")
	}
}

func TestSetAlgebra(t *testing.T) {
	tests := []struct {
		name                string
		a, b                []string
		union, minus, inter []string
		overlaps            bool
	}{
		{
			name:     "ips minus excludeIPs",
			a:        []string{"10.6.212.100-10.6.212.200"},
			b:        []string{"10.6.212.100", "10.6.212.150-10.6.212.160", "10.6.212.200"},
			union:    []string{"10.6.212.100-10.6.212.200"},
			minus:    []string{"10.6.212.101-10.6.212.149", "10.6.212.161-10.6.212.199"},
			inter:    []string{"10.6.212.100", "10.6.212.150-10.6.212.160", "10.6.212.200"},
			overlaps: true,
		},
		{
			name:  "disjoint and adjacent",
			a:     []string{"10.0.0.1-10.0.0.10"},
			b:     []string{"10.0.0.11-10.0.0.20"},
			union: []string{"10.0.0.1-10.0.0.20"},
			minus: []string{"10.0.0.1-10.0.0.10"},
			inter: []string{},
		},
		{
			name:     "b spans several a ranges",
			a:        []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.15", "10.0.0.20-10.0.0.25"},
			b:        []string{"10.0.0.3-10.0.0.22"},
			union:    []string{"10.0.0.1-10.0.0.25"},
			minus:    []string{"10.0.0.1-10.0.0.2", "10.0.0.23-10.0.0.25"},
			inter:    []string{"10.0.0.3-10.0.0.5", "10.0.0.10-10.0.0.15", "10.0.0.20-10.0.0.22"},
			overlaps: true,
		},
		{
			name:     "subtract everything",
			a:        []string{"10.0.0.1-10.0.0.5", "10.0.0.7"},
			b:        []string{"10.0.0.0/24"},
			union:    []string{"10.0.0.0-10.0.0.255"},
			minus:    []string{},
			inter:    []string{"10.0.0.1-10.0.0.5", "10.0.0.7"},
			overlaps: true,
		},
		{
			name:     "top of space",
			a:        []string{"255.255.255.250-255.255.255.255"},
			b:        []string{"255.255.255.255"},
			union:    []string{"255.255.255.250-255.255.255.255"},
			minus:    []string{"255.255.255.250-255.255.255.254"},
			inter:    []string{"255.255.255.255"},
			overlaps: true,
		},
		{
			name:     "v6 huge minus small",
			a:        []string{"fd00::/64"},
			b:        []string{"fd00::", "fd00::ffff:ffff:ffff:ffff"},
			union:    []string{"fd00::-fd00::ffff:ffff:ffff:ffff"},
			minus:    []string{"fd00::1-fd00::ffff:ffff:ffff:fffe"},
			inter:    []string{"fd00::", "fd00::ffff:ffff:ffff:ffff"},
			overlaps: true,
		},
		{
			name:  "empty b",
			a:     []string{"10.0.0.1"},
			b:     nil,
			union: []string{"10.0.0.1"},
			minus: []string{"10.0.0.1"},
			inter: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustSet(t, 0, tt.a...), mustSet(t, 0, tt.b...)
			u, err := a.Union(b)
			if err != nil {
				t.Fatal(err)
			}
			u2, _ := b.Union(a)
			for name, c := range map[string]struct {
				got  Set
				want []string
			}{
				"union": {u, tt.union}, "union reversed": {u2, tt.union},
				"subtract":  {a.Subtract(b), tt.minus},
				"intersect": {a.Intersect(b), tt.inter}, "intersect reversed": {b.Intersect(a), tt.inter},
			} {
				checkNormalised(t, c.got)
				if got := c.got.Strings(); !reflect.DeepEqual(got, c.want) {
					t.Errorf("%s = %q, want %q", name, got, c.want)
				}
			}
			if got := a.Overlaps(b); got != tt.overlaps {
				t.Errorf("Overlaps = %v, want %v", got, tt.overlaps)
			}
			if got := b.Overlaps(a); got != tt.overlaps {
				t.Errorf("reversed Overlaps = %v, want %v", got, tt.overlaps)
			}
		})
	}
}

func TestSetAlgebraFamilies(t *testing.T) {
	v4, v6 := mustSet(t, 4, "10.0.0.1-10.0.0.9"), mustSet(t, 6, "fd00::1-fd00::9")
	if _, err := v4.Union(v6); !errors.Is(err, ErrFamilyMismatch) {
		t.Errorf("v4 ∪ v6 error = %v", err)
	}
	emptyV6, _ := ParseSet(nil, 6)
	if _, err := v4.Union(emptyV6); !errors.Is(err, ErrFamilyMismatch) {
		t.Errorf("v4 ∪ empty v6 error = %v", err)
	}
	u, err := (Set{}).Union(v6)
	if err != nil || !u.Equal(v6) || u.Version() != 6 {
		t.Errorf("zero ∪ v6 = %v, %v", u, err)
	}
	if got := v4.Subtract(v6); !got.Equal(v4) || got.Version() != 4 {
		t.Errorf("v4 - v6 = %v", got)
	}
	if got := v4.Intersect(v6); !got.IsEmpty() || got.Version() != 4 {
		t.Errorf("v4 ∩ v6 = %v", got)
	}
	if v4.Overlaps(v6) {
		t.Error("v4 overlaps v6")
	}
	if !emptyV6.Equal(Set{}) {
		t.Error("empty sets of different versions should be Equal")
	}
}

func TestSetSizeCount(t *testing.T) {
	pow2 := func(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }
	tests := []struct {
		name      string
		entries   []string
		wantSize  *big.Int
		wantCount int64
	}{
		{"empty", nil, big.NewInt(0), 0},
		{"two ranges", []string{"10.0.0.1-10.0.0.10", "10.0.1.0/24"}, big.NewInt(266), 266},
		{"v4 /8", []string{"10.0.0.0/8"}, pow2(24), 1 << 24},
		{"v4 all", []string{"0.0.0.0/0"}, pow2(32), 1 << 32},
		{"v6 /64 is 2^64 and saturates Count", []string{"fd00::/64"}, pow2(64), math.MaxInt64},
		{"v6 /66 fits", []string{"fd00::/66"}, pow2(62), 1 << 62},
		{"v6 two /65 merge to 2^64", []string{"fd00::/65", "fd00::8000:0:0:0/65"}, pow2(64), math.MaxInt64},
		{"v6 /0 is 2^128", []string{"::/0"}, pow2(128), math.MaxInt64},
		{"v6 all but one", []string{"::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			new(big.Int).Sub(pow2(128), big.NewInt(1)), math.MaxInt64},
		{"v6 two halves", []string{"::/1", "8000::/1"}, pow2(128), math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, 0, tt.entries...)
			if got := s.Size(); got.Cmp(tt.wantSize) != 0 {
				t.Errorf("Size() = %v, want %v", got, tt.wantSize)
			}
			if got := s.Count(); got != tt.wantCount {
				t.Errorf("Count() = %d, want %d", got, tt.wantCount)
			}
		})
	}
}

// A set built from an IPv6 prefix or from set algebra can end inside the IPv4-mapped block; its
// printed form must parse back to the same set (found by FuzzParseSet).
func TestStringsRoundTripThroughMappedBlock(t *testing.T) {
	for _, entries := range [][]string{{"::/80"}, {"::/64"}, {"::ffff:0:0/96"}} {
		s, err := ParseSetWithCIDRs(entries, 6)
		if err != nil {
			t.Fatalf("%v: %v", entries, err)
		}
		back, err := ParseSet(s.Strings(), 6)
		if err != nil {
			t.Fatalf("%v printed as %v does not parse: %v", entries, s.Strings(), err)
		}
		if !back.Equal(s) {
			t.Errorf("%v: round trip gave %v", entries, back.Strings())
		}
	}
	// Subtracting inside the mapped block leaves ends there too.
	s, _ := ParseSet([]string{"::-::1:0:0:0"}, 6)
	ex, _ := ParseSet([]string{"::ffff:a00:5"}, 6)
	got := s.Subtract(ex).Strings()
	want := []string{"::-::ffff:a00:4", "::ffff:a00:6-::1:0:0:0"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Subtract = %v, want %v", got, want)
	}
}
