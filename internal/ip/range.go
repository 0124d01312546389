package ip

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strings"
)

// Range is an inclusive range of IP addresses of one family, First <= Last.
// A single address is the range [a, a]. The zero Range is invalid (see
// IsValid) and behaves as empty.
type Range struct {
	First, Last netip.Addr
}

// ParseRange parses the forms Spiderpool stores in a pool's ips and
// excludeIPs fields: "a-b" or a single address "a". It rejects CIDR
// notation (use ParseCIDR or ParseSetWithCIDRs), IPv6 zones, IPv4-mapped
// IPv6 addresses in dotted form, mixed families, reversed ranges and surrounding white
// space. White space is rejected rather than trimmed because the webhook
// should keep CRD content canonical instead of silently rewriting it.
func ParseRange(s string) (Range, error) {
	r, err := parseRange(s)
	if err != nil {
		return Range{}, fmt.Errorf("invalid IP range %q: %w", s, err)
	}
	return r, nil
}

// parseRange returns the bare reason on failure; see parseAddr.
func parseRange(s string) (Range, error) {
	if s == "" {
		return Range{}, ErrEmpty
	}
	if strings.TrimSpace(s) != s {
		return Range{}, ErrWhitespace
	}
	if strings.Contains(s, "/") {
		return Range{}, ErrCIDRNotAllowed
	}
	firstStr, lastStr, isRange := strings.Cut(s, "-")
	if !isRange {
		a, err := parseAddr(s)
		if err != nil {
			return Range{}, err
		}
		return Range{First: a, Last: a}, nil
	}
	first, err := parseAddr(firstStr)
	if err != nil {
		return Range{}, fmt.Errorf("first address %q: %w", firstStr, err)
	}
	last, err := parseAddr(lastStr)
	if err != nil {
		// "a-b-c" ends up here with lastStr "b-c", which netip rejects.
		return Range{}, fmt.Errorf("last address %q: %w", lastStr, err)
	}
	if first.BitLen() != last.BitLen() {
		return Range{}, ErrMixedFamily
	}
	if first.Compare(last) > 0 {
		return Range{}, ErrReversedRange
	}
	return Range{First: first, Last: last}, nil
}

// IsValid reports whether r is a well-formed range: both ends valid, of the
// same family, without zones, and First <= Last. IPv4-mapped ends are valid:
// a range computed from a prefix such as ::/80 legitimately ends in the
// mapped block.
func (r Range) IsValid() bool {
	return r.First.IsValid() && r.Last.IsValid() &&
		r.First.BitLen() == r.Last.BitLen() &&
		r.First.Zone() == "" && r.Last.Zone() == "" &&
		r.First.Compare(r.Last) <= 0
}

// check returns why r is not valid, for NewSet's error messages.
func (r Range) check() error {
	switch {
	case !r.First.IsValid() || !r.Last.IsValid():
		return fmt.Errorf("%w: zero address", ErrInvalidAddr)
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return ErrZone
	case r.First.BitLen() != r.Last.BitLen():
		return ErrMixedFamily
	case r.First.Compare(r.Last) > 0:
		return ErrReversedRange
	}
	return nil
}

// Version returns the family of r (4 or 6), or 0 if r is invalid.
func (r Range) Version() int {
	if !r.IsValid() {
		return 0
	}
	return Version(r.First)
}

// String returns the canonical CRD form: "a" for a single address, "a-b"
// otherwise, with addresses in net/netip's canonical (RFC 5952) text. The
// result of ParseRange(r.String()) is r for every range ParseRange returns.
func (r Range) String() string {
	if !r.IsValid() {
		return "invalid IP range"
	}
	if r.First == r.Last {
		return FormatAddr(r.First)
	}
	return FormatAddr(r.First) + "-" + FormatAddr(r.Last)
}

// Contains reports whether a lies in r. A zone on a is ignored.
func (r Range) Contains(a netip.Addr) bool {
	if !r.IsValid() {
		return false
	}
	a = a.WithZone("")
	return r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// span returns Last-First, which always fits in 128 bits even though the
// size (span+1) of the IPv6 range ::/0 does not.
func (r Range) span() Uint128 {
	d, _ := Distance(r.First, r.Last)
	return d
}

// Size returns the number of addresses in r, exactly; it is 2^128 for the
// whole IPv6 space and 0 for an invalid range.
func (r Range) Size() *big.Int {
	if !r.IsValid() {
		return new(big.Int)
	}
	b := r.span().Big()
	return b.Add(b, big.NewInt(1))
}

// Count returns the number of addresses in r, saturating at math.MaxInt64
// (so any IPv6 /64 or larger reports MaxInt64); 0 for an invalid range.
func (r Range) Count() int64 {
	if !r.IsValid() {
		return 0
	}
	s := r.span()
	if s.Hi != 0 || s.Lo >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(s.Lo) + 1
}
