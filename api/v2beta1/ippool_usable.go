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

// Usage returns how many addresses the pool may hand out (UsableIPs) and how many records it holds:
// status.allocatedIPCount, which every writer of the records keeps equal to them (SetAllocations),
// or the records themselves counted when the count is missing. It is what the metrics of both
// daemons report per pool, read without decoding the records of every pool at every scrape.
func (p *SpiderIPPool) Usage() (total, allocated int64, err error) {
	usable, err := p.Spec.UsableIPs()
	if err != nil {
		return 0, 0, fmt.Errorf("IPPool %q: %w", p.Name, err)
	}
	switch {
	case p.Status.AllocatedIPCount != nil:
		allocated = *p.Status.AllocatedIPCount
	case p.Status.AllocatedIPs != nil:
		records, err := p.Status.Allocations()
		if err != nil {
			return 0, 0, fmt.Errorf("IPPool %q: %w", p.Name, err)
		}
		allocated = int64(len(records))
	}
	return usable.Count(), allocated, nil
}
