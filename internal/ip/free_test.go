package ip

import (
	"math"
	"net/netip"
	"testing"
)

func addrs(t testing.TB, ss ...string) []netip.Addr {
	t.Helper()
	as, err := ParseAddrs(ss)
	if err != nil {
		t.Fatal(err)
	}
	SortAddrs(as)
	return as
}

func TestFirstFree(t *testing.T) {
	// Positions: .10-.12 are 0-2, .20 is 3, .30-.31 are 4-5.
	pool := []string{"10.0.0.10-10.0.0.12", "10.0.0.20", "10.0.0.30-10.0.0.31"}
	tests := []struct {
		name   string
		pool   []string
		used   []string
		offset uint64
		want   string // "" means none free
	}{
		{name: "offset 0 nothing used", pool: pool, want: "10.0.0.10"},
		{name: "offset 0 skips used run", pool: pool, used: []string{"10.0.0.10", "10.0.0.11"}, want: "10.0.0.12"},
		{name: "skips to next range", pool: pool, used: []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"}, want: "10.0.0.20"},
		{name: "offset inside range", pool: pool, offset: 1, want: "10.0.0.11"},
		{name: "offset at single", pool: pool, offset: 3, want: "10.0.0.20"},
		{name: "offset in last range", pool: pool, offset: 5, want: "10.0.0.31"},
		{name: "offset modulo size", pool: pool, offset: 6 + 4, want: "10.0.0.30"},
		{name: "huge offset modulo size", pool: pool, offset: math.MaxUint64, want: "10.0.0.20"}, // MaxUint64 % 6 == 3
		{name: "wrap around", pool: pool, offset: 4,
			used: []string{"10.0.0.30", "10.0.0.31", "10.0.0.10"}, want: "10.0.0.11"},
		{name: "wrap around to just before offset", pool: pool, offset: 4,
			used: []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.30", "10.0.0.31"}, want: "10.0.0.20"},
		{name: "fully used", pool: pool, offset: 2,
			used: []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.20", "10.0.0.30", "10.0.0.31"}},
		{name: "fully used offset 0", pool: pool,
			used: []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.20", "10.0.0.30", "10.0.0.31"}},
		{name: "used outside the set and duplicates", pool: pool,
			used: []string{"10.0.0.1", "10.0.0.10", "10.0.0.10", "10.0.0.11", "10.0.0.13", "10.0.0.21", "fd00::1"},
			want: "10.0.0.12"},
		{name: "empty set", pool: nil},
		{name: "top of v4 space", pool: []string{"255.255.255.254-255.255.255.255"},
			used: []string{"255.255.255.255"}, offset: 1, want: "255.255.255.254"},
		{name: "top of v4 space fully used", pool: []string{"255.255.255.254-255.255.255.255"},
			used: []string{"255.255.255.254", "255.255.255.255"}},
		{name: "v6 /64 offset into high half", pool: []string{"fd00::/64"},
			offset: 1 << 40, used: []string{"fd00::100:0:0"}, want: "fd00::100:0:1"},
		{name: "v6 /64 huge offset is not reduced", pool: []string{"fd00::/64"},
			offset: math.MaxUint64, want: "fd00::ffff:ffff:ffff:ffff"},
		{name: "v6 /64 last used wraps to first", pool: []string{"fd00::/64"},
			offset: math.MaxUint64, used: []string{"fd00::ffff:ffff:ffff:ffff"}, want: "fd00::"},
		{name: "v6 /0", pool: []string{"::/0"}, offset: 7, used: []string{"::7", "::8"}, want: "::9"},
		{name: "v6 /0 top", pool: []string{"::/0"},
			used: []string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, want: "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, 0, tt.pool...)
			got, ok := s.FirstFree(addrs(t, tt.used...), tt.offset)
			if tt.want == "" {
				if ok {
					t.Fatalf("FirstFree = %v, want none", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("FirstFree = %v, %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestFreeCount(t *testing.T) {
	tests := []struct {
		name string
		pool []string
		used []string
		want int64
	}{
		{"nothing used", []string{"10.0.0.0/24"}, nil, 256},
		{"some used", []string{"10.0.0.0/24"}, []string{"10.0.0.1", "10.0.0.2"}, 254},
		{"outside and duplicates ignored", []string{"10.0.0.0/24"},
			[]string{"10.0.0.1", "10.0.0.1", "10.0.1.1", "fd00::1"}, 255},
		{"fully used", []string{"10.0.0.1-10.0.0.2"}, []string{"10.0.0.1", "10.0.0.2"}, 0},
		{"v4 /8", []string{"10.0.0.0/8"}, []string{"10.0.0.1"}, 1<<24 - 1},
		{"v6 /64 saturates", []string{"fd00::/64"}, []string{"fd00::1"}, math.MaxInt64},
		{"v6 /0 saturates", []string{"::/0"}, []string{"fd00::1"}, math.MaxInt64},
		{"v6 /65 minus one", []string{"fd00::/65"}, []string{"fd00::1"}, math.MaxInt64},
		{"v6 /66", []string{"fd00::/66"}, []string{"fd00::1", "fd00::2"}, 1<<62 - 2},
		{"empty", nil, []string{"10.0.0.1"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, 0, tt.pool...)
			if got := s.FreeCount(addrs(t, tt.used...)); got != tt.want {
				t.Errorf("FreeCount = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestFirstFreeUnsortedDoesNotHang(t *testing.T) {
	s := mustSet(t, 4, "10.0.0.1-10.0.0.3")
	used := []netip.Addr{
		netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"),
	}
	for off := range uint64(5) {
		s.FirstFree(used, off) // result unspecified, must terminate
	}
	if n := s.FreeCount(used); n < 0 || n > 3 {
		t.Errorf("FreeCount with unsorted input = %d", n)
	}
}
