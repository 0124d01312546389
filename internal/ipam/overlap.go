package ipam

import (
	"fmt"
	"net/netip"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The webhook refuses a pool whose usable addresses overlap another pool's of the same subnet, or
// whose subnet overlaps another's without being equal; but two such pools created at the same
// moment both pass its check of the pools that exist. Allocation therefore applies the same rule,
// ordered by age: a pool yields no address that an older pool may also yield, and a pool whose
// subnet overlaps an older pool's differently yields nothing. Both agents and pools agree on
// "older" (creation time, then name), so the same address cannot come out of both pools once
// the agents' caches hold both.

// older reports whether a was created before b (ties broken by name).
func older(a, b *v2beta1.SpiderIPPool) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

// olderClaims returns the addresses of st's usable set that older pools of the same subnet also
// list, or, when an older pool's subnet overlaps st's without being equal, a reason st must not
// allocate at all. Pools whose spec does not parse are skipped (the webhook reports them).
func olderClaims(st *PoolState, all []*v2beta1.SpiderIPPool) (ip.Set, string) {
	claimed, _ := ip.NewSet(st.Version())
	for _, o := range all {
		if o.Name == st.Name() || !older(o, st.Pool()) {
			continue
		}
		subnet, err := netip.ParsePrefix(o.Spec.Subnet)
		if err != nil || subnet.Addr().Is4() != (st.Version() == 4) {
			continue
		}
		if subnet.Masked() != st.Subnet().Masked() {
			if subnet.Overlaps(st.Subnet()) {
				return claimed, fmt.Sprintf("its subnet %s overlaps subnet %s of the older IPPool %q; pools must use the same subnet or disjoint ones", st.Subnet(), subnet, o.Name)
			}
			continue
		}
		ips, err := ip.ParseSet(o.Spec.IPs, st.Version())
		if err != nil {
			continue
		}
		exclude, err := ip.ParseSet(o.Spec.ExcludeIPs, st.Version())
		if err != nil {
			continue
		}
		if shared := st.Usable().Intersect(ips.Subtract(exclude)); !shared.IsEmpty() {
			if claimed, err = claimed.Union(shared); err != nil {
				return claimed, err.Error()
			}
		}
	}
	return claimed, ""
}
