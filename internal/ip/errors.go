package ip

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors wrapped by the parse functions. The messages returned to
// users always carry the offending input as context; these values exist so
// that callers (for example the admission webhook) can classify a failure
// with errors.Is without matching on message text.
var (
	// ErrEmpty reports an empty string where an address, range or CIDR
	// was expected.
	ErrEmpty = errors.New("empty string")

	// ErrWhitespace reports leading or trailing white space. Input is
	// rejected rather than trimmed so that the strings stored in a CRD are
	// already in canonical form and can be compared textually.
	ErrWhitespace = errors.New("leading or trailing white space is not allowed")

	// ErrInvalidAddr reports text that net/netip cannot parse as an IP
	// address.
	ErrInvalidAddr = errors.New("invalid IP address")

	// ErrZone reports an IPv6 scoped address such as "fe80::1%eth0". Zones
	// are interface-local and have no meaning in a cluster-wide pool.
	ErrZone = errors.New("IPv6 zones are not allowed")

	// ErrMapped reports an IPv4-mapped IPv6 address written in dotted form
	// such as "::ffff:10.0.0.1", which reads like an IPv4 address but is
	// IPv6. The hex form ("::ffff:a00:1") is accepted as the IPv6 address
	// it is.
	ErrMapped = errors.New("IPv4-mapped IPv6 address in dotted form: write the IPv4 address, or the IPv6 address in hex (::ffff:a00:1)")

	// ErrMixedFamily reports a range whose two ends belong to different
	// IP families.
	ErrMixedFamily = errors.New("first and last address are of different IP families")

	// ErrReversedRange reports a range whose first address is after its
	// last address.
	ErrReversedRange = errors.New("first address is after last address")

	// ErrCIDRNotAllowed reports CIDR notation where only addresses and
	// ranges are accepted.
	ErrCIDRNotAllowed = errors.New("CIDR notation is not allowed here")

	// ErrInvalidCIDR reports text that net/netip cannot parse as a prefix.
	ErrInvalidCIDR = errors.New("invalid CIDR")

	// ErrNotCanonical reports a CIDR with host bits set, e.g.
	// "10.6.1.0/16", where ParseCIDR wants the network itself; the message
	// names the canonical form. ParsePrefixLenient masks such a CIDR instead.
	ErrNotCanonical = errors.New("not in canonical network form")

	// ErrFamilyMismatch reports an address or range whose family differs
	// from the one required by the set being built or combined.
	ErrFamilyMismatch = errors.New("IP family mismatch")

	// ErrInvalidVersion reports an IP version other than 0, 4 or 6.
	ErrInvalidVersion = errors.New("invalid IP version")
)

// netipReason strips the "Func(\"input\"): " prefix that net/netip puts in
// front of its messages, because our own wrappers already name the input and
// repeating it makes errors hard to read. If the prefix is not found the full
// message is kept, so a change in net/netip's wording only costs readability.
func netipReason(err error, fn, in string) string {
	return strings.TrimPrefix(err.Error(), fn+"("+strconv.Quote(in)+"): ")
}
