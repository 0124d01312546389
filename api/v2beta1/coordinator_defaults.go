package v2beta1

import (
	"net/netip"
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// DefaultCoordinatorSpec applies the CRD schema defaults of docs/design/behaviour.md#spidercoordinator-admission: mode auto, tunePodRoutes
// true, hostRuleTable 500, podRPFilter 0, txQueueLen 0.
func DefaultCoordinatorSpec(spec *CoordinatorSpec) {
	if spec.Mode == nil {
		spec.Mode = new(CoordinatorModeAuto)
	}
	if spec.TunePodRoutes == nil {
		spec.TunePodRoutes = new(true)
	}
	if spec.HostRuleTable == nil {
		spec.HostRuleTable = new(500)
	}
	if spec.PodRPFilter == nil {
		spec.PodRPFilter = new(0)
	}
	if spec.TxQueueLen == nil {
		spec.TxQueueLen = new(0)
	}
}

// DefaultSpiderCoordinator is the mutating webhook of the cluster-wide SpiderCoordinator: the schema
// defaults, then what upstream's webhook adds (vethLinkAddress "", vethMTU 1500, the finalizer) and
// its rewriting of single addresses in hijackCIDR and policyRoutes[].dst into /32 or /128 CIDRs.
// CIDRs there are stored in canonical network form, as spec.subnet of a pool is.
func DefaultSpiderCoordinator(c *SpiderCoordinator) {
	DefaultCoordinatorSpec(&c.Spec)
	if c.Spec.VethLinkAddress == nil {
		c.Spec.VethLinkAddress = new("")
	}
	if c.Spec.VethMTU == nil {
		c.Spec.VethMTU = new(1500)
	}
	for i, s := range c.Spec.HijackCIDR {
		c.Spec.HijackCIDR[i] = canonicalIPOrCIDR(s)
	}
	for i := range c.Spec.PolicyRoutes {
		c.Spec.PolicyRoutes[i].Dst = canonicalIPOrCIDR(c.Spec.PolicyRoutes[i].Dst)
	}
	addFinalizer(&c.ObjectMeta.Finalizers, c.DeletionTimestamp == nil)
}

// canonicalIPOrCIDR turns a single address into its host CIDR and a CIDR into its canonical
// network form, and leaves anything else alone.
func canonicalIPOrCIDR(s string) string {
	if !strings.Contains(s, "/") {
		if a, err := ip.ParseAddr(s); err == nil {
			return ip.FormatPrefix(netip.PrefixFrom(a, a.BitLen()))
		}
		return s
	}
	return canonicalCIDR(s)
}
