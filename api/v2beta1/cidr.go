package v2beta1

import (
	"net/netip"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// spec.subnet and routes[].dst accept every spelling upstream Spiderpool accepts: host bits
// ("10.6.0.1/16") and any IPv6 form ("2002::ac0f:0/64"). The mutating webhook stores the canonical
// form (DefaultSpiderIPPool, DefaultSpiderSubnet), but an object can reach the API server without
// it: written while the webhook was down or before it existed, or straight to etcd. So every
// component reads these fields through the functions below, which parse leniently and mask, and
// compares the parsed prefixes, never the strings.

// SubnetPrefix returns spec.subnet as a masked prefix: 10.6.0.0/16 for "10.6.0.1/16".
func (s *IPPoolSpec) SubnetPrefix() (netip.Prefix, error) { return ip.ParsePrefixLenient(s.Subnet) }

// SubnetPrefix returns spec.subnet as a masked prefix: 2002::/64 for "2002::ac0f:0/64".
func (s *SubnetSpec) SubnetPrefix() (netip.Prefix, error) { return ip.ParsePrefixLenient(s.Subnet) }

// DstPrefix returns dst as a masked prefix.
func (r *Route) DstPrefix() (netip.Prefix, error) { return ip.ParsePrefixLenient(r.Dst) }

// SameCIDR reports whether a and b are spellings of one network ("10.6.0.1/16" and
// "10.6.0.0/16" are); false when either does not parse. It is how a pool is matched to the
// SpiderSubnet of its CIDR.
func SameCIDR(a, b string) bool {
	if a == b {
		return true
	}
	pa, errA := ip.ParsePrefixLenient(a)
	pb, errB := ip.ParsePrefixLenient(b)
	return errA == nil && errB == nil && pa == pb
}

// specVersion returns the family of a spec: ipVersion when it is 4 or 6, else the family of
// subnet, else 0.
func specVersion(ipVersion *int64, subnet string) int {
	if ipVersion != nil && (*ipVersion == IPv4 || *ipVersion == IPv6) {
		return int(*ipVersion)
	}
	if p, err := ip.ParsePrefixLenient(subnet); err == nil {
		return ip.Version(p.Addr())
	}
	return 0
}

// Version returns the pool's family: spec.ipVersion when it is 4 or 6, else the family of
// spec.subnet (the webhook fills ipVersion from it, but a pool written past the webhook may lack
// it), else 0.
func (s *IPPoolSpec) Version() int { return specVersion(s.IPVersion, s.Subnet) }

// Version returns the subnet's family, as IPPoolSpec.Version does for a pool.
func (s *SubnetSpec) Version() int { return specVersion(s.IPVersion, s.Subnet) }

// canonicalCIDR returns the canonical spelling of a CIDR, or s itself when it does not parse, so
// that validation reports the user's own text.
func canonicalCIDR(s string) string {
	p, err := ip.ParsePrefixLenient(s)
	if err != nil {
		return s
	}
	return ip.FormatPrefix(p)
}
