package v2beta1

import (
	"fmt"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// UsableIPs returns the addresses the pool may hand out, spec.ips minus spec.excludeIPs: the set
// the IPAM core allocates from, status.totalIPCount counts and spiderpoolctl reports. Both lists
// are read in the family of spec.subnet, which spec.ipVersion must match when set, so an entry of
// the other family is an error, as is a subnet that does not parse. SpiderReservedIPs are not
// subtracted: they are objects of their own that change independently of the pool, and the
// allocator leaves them out at each allocation. Errors name the field, not the pool; callers add
// the pool.
func (s *IPPoolSpec) UsableIPs() (ip.Set, error) {
	subnet, err := s.SubnetPrefix()
	if err != nil {
		return ip.Set{}, fmt.Errorf("spec.subnet: %w", err)
	}
	version := ip.Version(subnet.Addr())
	if s.IPVersion != nil && int(*s.IPVersion) != version {
		return ip.Set{}, fmt.Errorf("spec.ipVersion %d does not match spec.subnet %s", *s.IPVersion, subnet)
	}
	ips, err := ip.ParseSet(s.IPs, version)
	if err != nil {
		return ip.Set{}, fmt.Errorf("spec.ips: %w", err)
	}
	exclude, err := ip.ParseSet(s.ExcludeIPs, version)
	if err != nil {
		return ip.Set{}, fmt.Errorf("spec.excludeIPs: %w", err)
	}
	return ips.Subtract(exclude), nil
}
