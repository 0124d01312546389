package ip

import (
	"errors"
	"math"
	"math/big"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		addr netip.Addr
		want int
	}{
		{"ipv4", netip.MustParseAddr("10.0.0.1"), 4},
		{"ipv6", netip.MustParseAddr("fd00::1"), 6},
		{"mapped counts as ipv6", netip.MustParseAddr("::ffff:10.0.0.1"), 6},
		{"zero", netip.Addr{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Version(tt.addr); got != tt.want {
				t.Errorf("Version(%v) = %d, want %d", tt.addr, got, tt.want)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{in: "10.0.0.1", want: "10.0.0.1"},
		{in: "FD00::0001", want: "fd00::1"},
		{in: "", wantErr: ErrEmpty},
		{in: " 10.0.0.1", wantErr: ErrWhitespace},
		{in: "10.0.0.1\n", wantErr: ErrWhitespace},
		{in: "10.0.0.256", wantErr: ErrInvalidAddr},
		{in: "10.0.0.01", wantErr: ErrInvalidAddr},
		{in: "fe80::1%eth0", wantErr: ErrZone},
		{in: "::ffff:10.0.0.1", wantErr: ErrMapped},
		{in: "10.0.0.0/24", wantErr: ErrInvalidAddr},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseAddr(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not name the input", err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseAddr(%q) = %v, %v, want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseAddrsAndSort(t *testing.T) {
	got, err := ParseAddrs([]string{"10.0.0.3", "fd00::1", "10.0.0.1", "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	SortAddrs(got)
	want := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::1"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	_, err = ParseAddrs([]string{"10.0.0.1", "10.0.0.1", "bogus"})
	if err == nil || !strings.HasPrefix(err.Error(), `entry 2 "bogus": invalid IP address`) {
		t.Errorf("ParseAddrs error = %v, want entry 2 context", err)
	}
}

func TestUint128(t *testing.T) {
	maxU := Uint128{Hi: math.MaxUint64, Lo: math.MaxUint64}
	if got, want := maxU.Big(), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1)); got.Cmp(want) != 0 {
		t.Errorf("maxU.Big() = %v, want %v", got, want)
	}
	if _, of := maxU.add(Uint128From64(1)); !of {
		t.Error("max+1 did not report overflow")
	}
	if _, b := (Uint128{}).sub(Uint128From64(1)); !b {
		t.Error("0-1 did not report borrow")
	}
	got, _ := Uint128From64(math.MaxUint64).add(Uint128From64(1))
	if want := (Uint128{Hi: 1}); got != want {
		t.Errorf("carry: got %+v", got)
	}
	if Uint128From64(5).String() != "5" || !(Uint128{}).IsZero() {
		t.Error("String/IsZero")
	}
	for _, c := range []struct {
		a, b Uint128
		want int
	}{
		{Uint128{Hi: 1}, Uint128{Lo: math.MaxUint64}, 1},
		{Uint128{Lo: 1}, Uint128{Lo: 2}, -1},
		{Uint128{Hi: 3, Lo: 3}, Uint128{Hi: 3, Lo: 3}, 0},
	} {
		if got := c.a.Cmp(c.b); got != c.want {
			t.Errorf("%v.Cmp(%v) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestAddOffset(t *testing.T) {
	tests := []struct {
		name   string
		addr   string
		off    Uint128
		want   string
		wantOK bool
	}{
		{"v4 zero", "10.0.0.1", Uint128{}, "10.0.0.1", true},
		{"v4 carry octet", "10.0.0.255", Uint128From64(1), "10.0.1.0", true},
		{"v4 to max", "255.255.255.0", Uint128From64(255), "255.255.255.255", true},
		{"v4 past max", "255.255.255.255", Uint128From64(1), "", false},
		{"v4 huge offset", "0.0.0.0", Uint128{Hi: 1}, "", false},
		{"v6 carry into high half", "fd00::ffff:ffff:ffff:ffff", Uint128From64(1), "fd00:0:0:1::", true},
		{"v6 2^64", "fd00::", Uint128{Hi: 1}, "fd00:0:0:1::", true},
		{"v6 max", "::", Uint128{Hi: math.MaxUint64, Lo: math.MaxUint64}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"v6 past max", "::1", Uint128{Hi: math.MaxUint64, Lo: math.MaxUint64}, "", false},
		{"zone kept", "fe80::1%eth0", Uint128From64(1), "fe80::2%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AddOffset(netip.MustParseAddr(tt.addr), tt.off)
			if ok != tt.wantOK || (ok && got.String() != tt.want) {
				t.Errorf("AddOffset(%s, %v) = %v, %v, want %s, %v", tt.addr, tt.off, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if _, ok := AddOffset(netip.Addr{}, Uint128{}); ok {
		t.Error("AddOffset of zero Addr succeeded")
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b   string
		want   Uint128
		wantOK bool
	}{
		{"10.0.0.1", "10.0.0.1", Uint128{}, true},
		{"10.0.0.1", "10.0.1.0", Uint128From64(255), true},
		{"10.0.1.0", "10.0.0.1", Uint128From64(255), true},
		{"0.0.0.0", "255.255.255.255", Uint128From64(math.MaxUint32), true},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Uint128{Hi: math.MaxUint64, Lo: math.MaxUint64}, true},
		{"fd00::", "fd00:0:0:1::", Uint128{Hi: 1}, true},
		{"10.0.0.1", "::1", Uint128{}, false},
		{"10.0.0.1", "::ffff:10.0.0.1", Uint128{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.a+"_"+tt.b, func(t *testing.T) {
			got, ok := Distance(netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b))
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Distance = %v, %v, want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if _, ok := Distance(netip.Addr{}, netip.Addr{}); ok {
		t.Error("Distance of zero Addrs succeeded")
	}
}
