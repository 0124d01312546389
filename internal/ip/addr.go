package ip

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Version returns 4 for an IPv4 address, 6 for an IPv6 address and 0 for the
// zero (invalid) netip.Addr. An IPv4-mapped IPv6 address ("::ffff:1.2.3.4")
// is reported as 6, which is what it is on the wire.
func Version(a netip.Addr) int {
	switch {
	case a.Is4():
		return 4
	case a.Is6():
		return 6
	default:
		return 0
	}
}

// ParseAddr parses a single IP address with the same strictness as the range
// and set parsers: no surrounding white space, no IPv6 zone, and no
// IPv4-mapped IPv6 address in dotted form.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q: %w", s, err)
	}
	return a, nil
}

// parseAddr returns the bare reason on failure; callers add the context
// (which entry, which end of a range) that they know about.
func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, ErrEmpty
	}
	if strings.TrimSpace(s) != s {
		return netip.Addr{}, ErrWhitespace
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s", ErrInvalidAddr, netipReason(err, "ParseAddr", s))
	}
	if a.Zone() != "" {
		return netip.Addr{}, ErrZone
	}
	// "::ffff:10.0.0.1" reads like the IPv4 address 10.0.0.1 but is an IPv6
	// address; refusing the dotted form keeps a user from putting an IPv4
	// address into an IPv6 pool by accident. The same address in hex
	// ("::ffff:a00:1") is accepted: ranges computed from IPv6 prefixes and
	// set algebra can end inside the mapped block, and FormatAddr writes such
	// ends that way so that every set this package prints parses again.
	if a.Is4In6() && strings.Contains(s, ".") {
		return netip.Addr{}, ErrMapped
	}
	return a, nil
}

// FormatAddr formats a like netip.Addr.String, except that an IPv4-mapped
// IPv6 address is written in hex ("::ffff:a00:1"), the form ParseAddr
// accepts for it.
func FormatAddr(a netip.Addr) string {
	if !a.Is4In6() || a.Zone() != "" {
		return a.String()
	}
	b := a.As16()
	return fmt.Sprintf("::ffff:%x:%x", uint16(b[12])<<8|uint16(b[13]), uint16(b[14])<<8|uint16(b[15]))
}

// ParseAddrs parses every string with ParseAddr and returns the addresses in
// input order (not sorted: call SortAddrs before handing them to
// Set.FirstFree). The error names the index of the first bad entry.
func ParseAddrs(ss []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(ss))
	for i, s := range ss {
		a, err := parseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i, s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// SortAddrs sorts addrs in place into the ascending order (netip.Addr.Compare:
// IPv4 before IPv6, then numerically) that Set.FirstFree and Set.FreeCount
// expect. Duplicates are kept; the search functions tolerate them.
func SortAddrs(addrs []netip.Addr) {
	slices.SortFunc(addrs, netip.Addr.Compare)
}

// Uint128 is an unsigned 128-bit integer, big enough for any offset or
// distance inside an IP family. It exists because an IPv6 /64 holds 2^64
// addresses, one more than uint64 can count, while math/big would allocate on
// every step of the hot search paths. Hi holds the upper 64 bits.
type Uint128 struct {
	Hi, Lo uint64
}

// Uint128From64 returns v as a Uint128.
func Uint128From64(v uint64) Uint128 { return Uint128{Lo: v} }

// IsZero reports whether u is zero.
func (u Uint128) IsZero() bool { return u.Hi == 0 && u.Lo == 0 }

// Cmp returns -1, 0 or +1 as u is less than, equal to or greater than v.
func (u Uint128) Cmp(v Uint128) int {
	switch {
	case u.Hi < v.Hi:
		return -1
	case u.Hi > v.Hi:
		return 1
	case u.Lo < v.Lo:
		return -1
	case u.Lo > v.Lo:
		return 1
	default:
		return 0
	}
}

// Big returns u as a newly allocated big.Int.
func (u Uint128) Big() *big.Int {
	b := new(big.Int).SetUint64(u.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(u.Lo))
}

// String returns u in decimal.
func (u Uint128) String() string { return u.Big().String() }

// add returns u+v and whether the addition overflowed 128 bits.
func (u Uint128) add(v Uint128) (Uint128, bool) {
	lo, c := bits.Add64(u.Lo, v.Lo, 0)
	hi, c := bits.Add64(u.Hi, v.Hi, c)
	return Uint128{Hi: hi, Lo: lo}, c != 0
}

// sub returns u-v and whether the subtraction borrowed (v > u).
func (u Uint128) sub(v Uint128) (Uint128, bool) {
	lo, b := bits.Sub64(u.Lo, v.Lo, 0)
	hi, b := bits.Sub64(u.Hi, v.Hi, b)
	return Uint128{Hi: hi, Lo: lo}, b != 0
}

// int64Sat converts u to int64, saturating at math.MaxInt64 because the
// Kubernetes status counters this feeds are int64.
func (u Uint128) int64Sat() int64 {
	if u.Hi != 0 || u.Lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u.Lo)
}

// addrToU128 returns the numeric value of a (IPv4 in the low 32 bits).
func addrToU128(a netip.Addr) Uint128 {
	if a.Is4() {
		b := a.As4()
		return Uint128{Lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return Uint128{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
}

// u128ToAddr is the inverse of addrToU128; it fails when u does not fit the
// family (only possible for IPv4).
func u128ToAddr(u Uint128, is4 bool) (netip.Addr, bool) {
	if is4 {
		if u.Hi != 0 || u.Lo > math.MaxUint32 {
			return netip.Addr{}, false
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.Lo))
		return netip.AddrFrom4(b), true
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.Hi)
	binary.BigEndian.PutUint64(b[8:], u.Lo)
	return netip.AddrFrom16(b), true
}

// AddOffset returns a+n. It reports false instead of wrapping when the result
// would leave a's family (past 255.255.255.255 or ffff:...:ffff) or when a is
// invalid. An IPv6 zone on a is preserved, as netip.Addr.Next does.
func AddOffset(a netip.Addr, n Uint128) (netip.Addr, bool) {
	if !a.IsValid() {
		return netip.Addr{}, false
	}
	sum, overflow := addrToU128(a).add(n)
	if overflow {
		return netip.Addr{}, false
	}
	r, ok := u128ToAddr(sum, a.Is4())
	if !ok {
		return netip.Addr{}, false
	}
	if z := a.Zone(); z != "" {
		r = r.WithZone(z)
	}
	return r, true
}

// Distance returns |b-a|, the number of steps between two addresses of the
// same family (so a range [a, b] holds Distance(a, b)+1 addresses). Zones are
// ignored. It reports false if either address is invalid or the families
// differ; IPv4-mapped IPv6 addresses count as IPv6.
func Distance(a, b netip.Addr) (Uint128, bool) {
	if !a.IsValid() || !b.IsValid() || a.BitLen() != b.BitLen() {
		return Uint128{}, false
	}
	x, y := addrToU128(a), addrToU128(b)
	if x.Cmp(y) > 0 {
		x, y = y, x
	}
	d, _ := y.sub(x)
	return d, true
}
