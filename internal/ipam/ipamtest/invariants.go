package ipamtest

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// CheckInvariants returns every violation of the allocation invariants in
// pools, or nil:
//   - status.allocatedIPs decodes and each record names a pod and a UID;
//   - status.allocatedIPCount equals the number of records;
//   - every record lies in spec.ips minus spec.excludeIPs;
//   - no address is recorded by two pools of the same subnet.
func CheckInvariants(pools []*v2beta1.SpiderIPPool) error {
	var errs []error
	holder := make(map[netip.Prefix]map[netip.Addr]string)
	for _, p := range pools {
		st, err := ipam.NewPoolState(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var count int64
		if p.Status.AllocatedIPCount != nil {
			count = *p.Status.AllocatedIPCount
		}
		if count != int64(st.Len()) {
			errs = append(errs, fmt.Errorf("IPPool %q: allocatedIPCount %d, but %d records", p.Name, count, st.Len()))
		}
		seen := holder[st.Subnet()]
		if seen == nil {
			seen = make(map[netip.Addr]string)
			holder[st.Subnet()] = seen
		}
		for addr, o := range st.All() {
			if o.Pod == "" || o.PodUID == "" {
				errs = append(errs, fmt.Errorf("IPPool %q: record %s has pod %q, UID %q", p.Name, addr, o.Pod, o.PodUID))
			}
			if !st.Usable().Contains(addr) {
				errs = append(errs, fmt.Errorf("IPPool %q: record %s is outside ips minus excludeIPs (%s)", p.Name, addr, st.Usable()))
			}
			if other, dup := seen[addr]; dup {
				errs = append(errs, fmt.Errorf("IPPool %q: %s is also recorded by IPPool %q", p.Name, addr, other))
			}
			seen[addr] = p.Name
		}
	}
	return errors.Join(errs...)
}
