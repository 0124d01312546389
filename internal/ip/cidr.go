package ip

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseCIDR parses a CIDR in canonical network form, i.e. without host bits
// ("10.6.0.0/16" is accepted, "10.6.1.0/16" is rejected with a message naming
// "10.6.0.0/16"). It is for input where host bits are more likely a typo than
// a request for the whole network, such as a CIDR entry of a list of
// addresses (ParseSetWithCIDRs). The CIDR fields of the CRDs accept host bits
// as upstream Spiderpool does and are read with ParsePrefixLenient. IPv4-mapped
// IPv6 prefixes in dotted form and surrounding white space are rejected; zones
// are rejected by net/netip itself.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := parseCIDR(s, false)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	return p, nil
}

// ParsePrefixLenient parses a CIDR the way upstream Spiderpool accepts one in
// spec.subnet and routes[].dst: host bits may be set ("10.6.0.1/16") and IPv6
// may be spelt any valid way ("2002::ac0f:0/64"). The result is masked
// (10.6.0.0/16, 2002::/64), so that two spellings of one network parse to
// equal prefixes; FormatPrefix writes its one canonical spelling. Everything
// else ParseCIDR rejects is rejected here too.
func ParsePrefixLenient(s string) (netip.Prefix, error) {
	p, err := parseCIDR(s, true)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	return p, nil
}

// parseCIDR parses s; lenient masks host bits away instead of rejecting them.
func parseCIDR(s string, lenient bool) (netip.Prefix, error) {
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
	m := p.Masked()
	if m != p && !lenient {
		return netip.Prefix{}, fmt.Errorf("%w, want %q", ErrNotCanonical, FormatPrefix(m))
	}
	return m, nil
}

// IsCanonicalCIDR reports whether ParseCIDR accepts s.
func IsCanonicalCIDR(s string) bool {
	_, err := parseCIDR(s, false)
	return err == nil
}

// FormatPrefix writes p as the CRDs store a CIDR: netip.Prefix.String, except
// that an IPv4-mapped IPv6 address is written in hex as FormatAddr does, the
// form the parsers of this package accept. For a masked prefix this is the
// one canonical spelling ("2002::/64", never "2002:0::/64").
func FormatPrefix(p netip.Prefix) string {
	if !p.IsValid() {
		return p.String()
	}
	return FormatAddr(p.Addr()) + "/" + strconv.Itoa(p.Bits())
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
