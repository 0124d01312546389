package ipam

import (
	"fmt"
	"net/netip"
	"sync"

	"k8s.io/apimachinery/pkg/types"

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

// specCache keeps the parsed subnet and usable addresses of each pool's spec, keyed by UID and
// generation: allocations (status writes) leave both alone, so an ADD parses the spec of another
// pool only when that spec changed, not every time it looks at it.
type specCache struct {
	mu sync.Mutex
	m  map[string]poolSpec
}

type poolSpec struct {
	uid    types.UID
	gen    int64
	subnet netip.Prefix
	usable ip.Set
	ok     bool // false: the spec does not parse
}

// get returns p's parsed spec.
func (c *specCache) get(p *v2beta1.SpiderIPPool) poolSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, hit := c.m[p.Name]; hit && s.uid == p.UID && s.gen == p.Generation {
		return s
	}
	s := poolSpec{uid: p.UID, gen: p.Generation}
	if st, err := NewPoolState(&v2beta1.SpiderIPPool{ObjectMeta: p.ObjectMeta, Spec: p.Spec}); err == nil {
		s.subnet, s.usable, s.ok = st.Subnet(), st.Usable(), true
	}
	if c.m == nil {
		c.m = map[string]poolSpec{}
	}
	c.m[p.Name] = s
	return s
}

// olderClaims returns the addresses of st's usable set that older pools of the same subnet also
// list, or, when an older pool's subnet overlaps st's without being equal, a reason st must not
// allocate at all. Pools whose spec does not parse are skipped (the webhook reports them).
func (c *specCache) olderClaims(st *PoolState, all []*v2beta1.SpiderIPPool) (ip.Set, string) {
	claimed, _ := ip.NewSet(st.Version())
	for _, o := range all {
		if o.Name == st.Name() || !older(o, st.Pool()) {
			continue
		}
		spec := c.get(o)
		if !spec.ok || spec.usable.Version() != st.Version() {
			continue
		}
		if spec.subnet.Masked() != st.Subnet().Masked() {
			if spec.subnet.Overlaps(st.Subnet()) {
				return claimed, fmt.Sprintf("its subnet %s overlaps subnet %s of the older IPPool %q; pools must use the same subnet or disjoint ones", st.Subnet(), spec.subnet, o.Name)
			}
			continue
		}
		if shared := st.Usable().Intersect(spec.usable); !shared.IsEmpty() {
			var err error
			if claimed, err = claimed.Union(shared); err != nil {
				return claimed, err.Error()
			}
		}
	}
	c.prune(all)
	return claimed, ""
}

// prune drops the entries of pools that are gone once they outnumber the live ones.
func (c *specCache) prune(all []*v2beta1.SpiderIPPool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) <= 2*len(all)+16 {
		return
	}
	live := make(map[string]bool, len(all))
	for _, p := range all {
		live[p.Name] = true
	}
	for name := range c.m {
		if !live[name] {
			delete(c.m, name)
		}
	}
}
