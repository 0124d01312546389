package ip

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseCIDR parses a subnet as Spiderpool requires it: a valid CIDR in
// canonical network form, i.e. without host bits ("10.6.0.0/16" is accepted,
// "10.6.1.0/16" is rejected with a message naming "10.6.0.0/16"). Requiring
// the canonical form avoids two spellings of one subnet, which matters because
// subnets are also used as label values and object names. IPv4-mapped IPv6
// prefixes and surrounding white space are rejected; zones are rejected by
// net/netip itself.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := parseCIDR(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	return p, nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, ErrEmpty
	}
	if strings.TrimSpace(s) != s {
		return netip.Prefix{}, ErrWhitespace
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidCIDR, netipReason(err, "netip.ParsePrefix", s))
	}
	if p.Addr().Is4In6() && strings.Contains(s, ".") {
		return netip.Prefix{}, ErrMapped
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%w, want %q", ErrNotCanonical, FormatAddr(m.Addr())+"/"+strconv.Itoa(m.Bits()))
	}
	return p, nil
}

// IsCanonicalCIDR reports whether ParseCIDR accepts s.
func IsCanonicalCIDR(s string) bool {
	_, err := parseCIDR(s)
	return err == nil
}

// PrefixRange returns the range of all addresses covered by p (network to
// broadcast address, both included; host bits in p are ignored). It returns
// the zero Range for an invalid prefix.
func PrefixRange(p netip.Prefix) Range {
	if !p.IsValid() {
		return Range{}
	}
	p = p.Masked()
	first := p.Addr()
	hostBits := uint(first.BitLen() - p.Bits())
	var mask Uint128
	// Shifts by 64 yield 0 in Go, so (1<<64)-1 is all ones as needed.
	if hostBits >= 64 {
		mask = Uint128{Hi: 1<<(hostBits-64) - 1, Lo: ^uint64(0)}
	} else {
		mask = Uint128{Lo: 1<<hostBits - 1}
	}
	f := addrToU128(first)
	last, _ := u128ToAddr(Uint128{Hi: f.Hi | mask.Hi, Lo: f.Lo | mask.Lo}, first.Is4())
	return Range{First: first, Last: last}
}

// maxLabelValueLen is the Kubernetes limit on label value length.
const maxLabelValueLen = 63

// ToLabelValue converts a CIDR to the form Spiderpool uses as a label value
// (and in generated object names): '.', ':' and '/' become '-', so
// "172.31.192.0/20" gives "172-31-192-0-20" and "fd00::/64" gives
// "fd00---64", exactly as upstream does. Kubernetes label values must begin
// and end with an alphanumeric character, which upstream's plain replacement
// violates for IPv6 prefixes starting with "::" ("::/0" would give "----0"),
// so leading and trailing '-' are trimmed ("::/0" gives "0", "::1/128" gives
// "1-128"); for canonical CIDRs this cannot make two subnets collide because
// the dash counts and prefix lengths of the trimmed forms differ from every
// untrimmed one. The input is not validated; for anything but a valid CIDR the
// result is only guaranteed to be at most 63 characters long.
func ToLabelValue(cidr string) string {
	v := strings.Map(func(r rune) rune {
		switch r {
		case '.', ':', '/':
			return '-'
		}
		return r
	}, cidr)
	v = strings.Trim(v, "-")
	if len(v) > maxLabelValueLen {
		v = strings.TrimRight(v[:maxLabelValueLen], "-")
	}
	return v
}
