package ip

import (
	"errors"
	"math"
	"math/big"
	"net/netip"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in        string
		want      Range
		wantStr   string
		wantErr   error
		wantError string // exact message, when set
	}{
		{in: "10.6.212.100-10.6.212.200", wantStr: "10.6.212.100-10.6.212.200",
			want: Range{netip.MustParseAddr("10.6.212.100"), netip.MustParseAddr("10.6.212.200")}},
		{in: "10.6.212.145", wantStr: "10.6.212.145",
			want: Range{netip.MustParseAddr("10.6.212.145"), netip.MustParseAddr("10.6.212.145")}},
		{in: "10.0.0.1-10.0.0.1", wantStr: "10.0.0.1",
			want: Range{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.1")}},
		{in: "fd00::1-fd00::ffff", wantStr: "fd00::1-fd00::ffff",
			want: Range{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::ffff")}},
		{in: "FD00:0::1-fd00::A", wantStr: "fd00::1-fd00::a",
			want: Range{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::a")}},
		{in: "0.0.0.0-255.255.255.255", wantStr: "0.0.0.0-255.255.255.255",
			want: Range{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")}},

		{in: "10.0.0.9-10.0.0.1", wantErr: ErrReversedRange,
			wantError: `invalid IP range "10.0.0.9-10.0.0.1": first address is after last address`},
		{in: "10.0.0.1-fd00::1", wantErr: ErrMixedFamily,
			wantError: `invalid IP range "10.0.0.1-fd00::1": first and last address are of different IP families`},
		{in: "", wantErr: ErrEmpty},
		{in: "-", wantErr: ErrEmpty},
		{in: "10.0.0.1-", wantErr: ErrEmpty},
		{in: "-10.0.0.1", wantErr: ErrEmpty},
		{in: " 10.0.0.1-10.0.0.2", wantErr: ErrWhitespace},
		{in: "10.0.0.1-10.0.0.2 ", wantErr: ErrWhitespace},
		{in: "10.0.0.1 - 10.0.0.2", wantErr: ErrWhitespace},
		{in: "10.0.0.1-10.0.0.2-10.0.0.3", wantErr: ErrInvalidAddr},
		{in: "10.0.0.0/24", wantErr: ErrCIDRNotAllowed},
		{in: "10.0.0.1-10.0.0.300", wantErr: ErrInvalidAddr,
			wantError: `invalid IP range "10.0.0.1-10.0.0.300": last address "10.0.0.300": invalid IP address: IPv4 field has value >255`},
		{in: "x", wantErr: ErrInvalidAddr},
		{in: "fe80::1%eth0-fe80::2", wantErr: ErrZone},
		{in: "::ffff:10.0.0.1-::ffff:10.0.0.2", wantErr: ErrMapped},
		{in: "::ffff:a00:1-::ffff:a00:2", wantStr: "::ffff:a00:1-::ffff:a00:2", want: Range{netip.MustParseAddr("::ffff:a00:1"), netip.MustParseAddr("::ffff:a00:2")}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseRange(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				if tt.wantError != "" && err.Error() != tt.wantError {
					t.Errorf("error = %q, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRange(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.wantStr {
				t.Errorf("String() = %q, want %q", s, tt.wantStr)
			}
			if back, err := ParseRange(got.String()); err != nil || back != got {
				t.Errorf("round trip: %v, %v", back, err)
			}
		})
	}
}

func TestRangeBasics(t *testing.T) {
	r := mustRange(t, "10.0.0.10-10.0.0.20")
	for _, c := range []struct {
		a    string
		want bool
	}{
		{"10.0.0.9", false}, {"10.0.0.10", true}, {"10.0.0.15", true},
		{"10.0.0.20", true}, {"10.0.0.21", false}, {"::a", false},
	} {
		if got := r.Contains(netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.a, got, c.want)
		}
	}
	if r.Version() != 4 || mustRange(t, "fd00::1").Version() != 6 {
		t.Error("Version")
	}
	var zero Range
	if zero.IsValid() || zero.Version() != 0 || zero.Count() != 0 || zero.Size().Sign() != 0 ||
		zero.Contains(netip.Addr{}) || zero.String() != "invalid IP range" {
		t.Error("zero Range is not treated as invalid and empty")
	}
	reversed := Range{r.Last, r.First}
	if reversed.IsValid() || reversed.Count() != 0 {
		t.Error("reversed Range is valid")
	}
	zoned := Range{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::2")}
	if zoned.IsValid() {
		t.Error("zoned Range is valid")
	}
}

func TestRangeSizeCount(t *testing.T) {
	pow2 := func(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }
	tests := []struct {
		name      string
		r         Range
		wantSize  *big.Int
		wantCount int64
	}{
		{"single", mustRange(t, "10.0.0.1"), big.NewInt(1), 1},
		{"v4 /24", PrefixRange(netip.MustParsePrefix("10.0.0.0/24")), big.NewInt(256), 256},
		{"v4 /8", PrefixRange(netip.MustParsePrefix("10.0.0.0/8")), pow2(24), 1 << 24},
		{"v4 all", PrefixRange(netip.MustParsePrefix("0.0.0.0/0")), pow2(32), 1 << 32},
		{"v6 /65", PrefixRange(netip.MustParsePrefix("fd00::/65")), pow2(63), math.MaxInt64},
		{"v6 /66", PrefixRange(netip.MustParsePrefix("fd00::/66")), pow2(62), 1 << 62},
		{"v6 /64", PrefixRange(netip.MustParsePrefix("fd00::/64")), pow2(64), math.MaxInt64},
		{"v6 /0", PrefixRange(netip.MustParsePrefix("::/0")), pow2(128), math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Size(); got.Cmp(tt.wantSize) != 0 {
				t.Errorf("Size() = %v, want %v", got, tt.wantSize)
			}
			if got := tt.r.Count(); got != tt.wantCount {
				t.Errorf("Count() = %d, want %d", got, tt.wantCount)
			}
		})
	}
}

func mustRange(t testing.TB, s string) Range {
	t.Helper()
	r, err := ParseRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
