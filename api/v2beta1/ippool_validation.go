package v2beta1

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// maxInUseErrors bounds the errors reported for addresses that an update would take away from their
// holders: removing a whole range from a busy pool would otherwise put thousands of lines in the
// admission response.
const maxInUseErrors = 10

// ValidateSpiderIPPool applies the object-local rules of docs/design/behaviour.md#pools-and-subnets to a pool being created.
// enableIPv4/enableIPv6 are the Helm values ipam.enableIPv4/ipam.enableIPv6.
func ValidateSpiderIPPool(pool *SpiderIPPool, enableIPv4, enableIPv6 bool) field.ErrorList {
	errs, _ := validateIPPool(pool, enableIPv4, enableIPv6)
	return errs
}

func validateIPPool(pool *SpiderIPPool, enableIPv4, enableIPv6 bool) (field.ErrorList, checkedSpec) {
	c, errs := validateAddrSpec(poolAddrSpec(&pool.Spec), enableIPv4, enableIPv6)

	errs = append(errs, validatePodAffinity(pool)...)
	if s := pool.Spec.NamespaceAffinity; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, specPath.Child("namespaceAffinity"))...)
	}
	if s := pool.Spec.NodeAffinity; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, specPath.Child("nodeAffinity"))...)
	}
	for i, n := range pool.Spec.NodeName {
		for _, msg := range k8svalidation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(specPath.Child("nodeName").Index(i), n, "not a valid node name: "+msg))
		}
	}
	for i, n := range pool.Spec.NamespaceName {
		for _, msg := range k8svalidation.IsDNS1123Label(n) {
			errs = append(errs, field.Invalid(specPath.Child("namespaceName").Index(i), n, "not a valid namespace name: "+msg))
		}
	}
	for i, n := range pool.Spec.MultusName {
		if ferr := validateMultusName(specPath.Child("multusName").Index(i), n); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if pool.Status.AllocatedIPs != nil {
		errs = append(errs, validateAllocatedIPs(&pool.Status)...)
	}
	return errs, c
}

// autoPoolAffinityKeys are the only matchLabels the controller puts on the pools it creates.
var autoPoolAffinityKeys = []string{
	AutoPoolPodAffinityAppAPIGrp, AutoPoolPodAffinityAppAPIVer, AutoPoolPodAffinityAppKind,
	AutoPoolPodAffinityAppNS, AutoPoolPodAffinityAppName,
}

// validatePodAffinity rejects an empty selector: {} matches every pod, which is never what a user
// writing podAffinity meant. Pools created for a workload (they carry the owner-application-name
// label) must keep exactly the selector the controller wrote, which the controller relies on to
// find the workload's pool again.
func validatePodAffinity(pool *SpiderIPPool) field.ErrorList {
	sel := pool.Spec.PodAffinity
	if sel == nil {
		return nil
	}
	p := specPath.Child("podAffinity")
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p)
	if _, auto := pool.Labels[LabelOwnerApplicationName]; auto {
		for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
			if !slices.Contains(autoPoolAffinityKeys, k) {
				errs = append(errs, field.Forbidden(p.Child("matchLabels").Key(k),
					"an auto-created SpiderIPPool may only carry the ipam.spidernet.io/app-* matchLabels"))
			}
		}
		if len(sel.MatchExpressions) != 0 {
			errs = append(errs, field.Forbidden(p.Child("matchExpressions"), "an auto-created SpiderIPPool may not carry matchExpressions"))
		}
		return errs
	}
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(p, "{}", "an empty podAffinity matches every Pod; remove it or add matchLabels/matchExpressions"))
	}
	return errs
}

// validateMultusName checks "name" or "namespace/name" of a NetworkAttachmentDefinition.
func validateMultusName(p *field.Path, s string) *field.Error {
	ns, name, hasNS := strings.Cut(s, "/")
	if !hasNS {
		ns, name = "", s
	}
	var msgs []string
	if hasNS {
		for _, m := range k8svalidation.IsDNS1123Label(ns) {
			msgs = append(msgs, "namespace: "+m)
		}
	}
	for _, m := range k8svalidation.IsDNS1123Subdomain(name) {
		msgs = append(msgs, "name: "+m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return field.Invalid(p, s, `want "name" or "namespace/name" of a NetworkAttachmentDefinition; `+strings.Join(msgs, "; "))
}

// validateAllocatedIPs checks that status.allocatedIPs decodes and that its keys are addresses.
func validateAllocatedIPs(st *IPPoolStatus) field.ErrorList {
	p := field.NewPath("status", "allocatedIPs")
	a, err := st.Allocations()
	if err != nil {
		return field.ErrorList{field.Invalid(p, *st.AllocatedIPs,
			`must be a JSON object {"<ip>":{"pod":"<namespace>/<name>","podUid":"<uid>"}}: `+err.Error())}
	}
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if _, err := ip.ParseAddr(k); err != nil {
			errs = append(errs, field.Invalid(p.Key(k), k, "key is not an IP address: "+reason(err, k)))
		}
	}
	return errs
}

// ValidateSpiderIPPoolUpdate validates newPool and the rules of an update: ipVersion and subnet are
// immutable, and no address allocated to a Pod (per oldPool's status, the stored truth) may leave
// the usable set, whether it is dropped from ips or added to excludeIPs.
//
// A family disabled after the pool was created does not block updates of that pool: otherwise an
// existing pool could not even have its finalizer removed.
func ValidateSpiderIPPoolUpdate(newPool, oldPool *SpiderIPPool, enableIPv4, enableIPv6 bool) field.ErrorList {
	oldVersion := oldPool.Spec.Version()
	errs := validateImmutable(newPool.Spec.IPVersion, oldPool.Spec.IPVersion, newPool.Spec.Subnet, oldPool.Spec.Subnet)
	localErrs, c := validateIPPool(newPool, enableIPv4 || oldVersion == 4, enableIPv6 || oldVersion == 6)
	errs = append(errs, localErrs...)
	if len(errs) != 0 || !c.entriesOK {
		return errs
	}

	a, err := oldPool.Status.Allocations()
	if err != nil {
		return append(errs, field.InternalError(field.NewPath("status", "allocatedIPs"), err))
	}
	if len(a) == 0 {
		return errs
	}
	// Records the old spec did not cover (left over from some earlier bug) are not the update's
	// doing, and refusing every update because of them would leave the pool stuck.
	oldUsable, oldOK := ip.Set{}, false
	if ov, _, u, ok := parseSpecSets(oldPool.Spec.IPVersion, oldPool.Spec.Subnet, oldPool.Spec.IPs, oldPool.Spec.ExcludeIPs); ok && ov == c.version {
		oldUsable, oldOK = u, true
	}
	newUsable := c.usable()

	type held struct {
		addr netip.Addr
		rec  PoolIPAllocation
	}
	var removed []held
	for k, rec := range a {
		addr, err := ip.ParseAddr(k)
		if err != nil || ip.Version(addr) != c.version {
			continue
		}
		if (!oldOK || oldUsable.Contains(addr)) && !newUsable.Contains(addr) {
			removed = append(removed, held{addr, rec})
		}
	}
	slices.SortFunc(removed, func(x, y held) int { return x.addr.Compare(y.addr) })
	for i, h := range removed {
		if i == maxInUseErrors {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf("%d more allocated IPs would be removed", len(removed)-i)))
			break
		}
		p, how := ipsPath, "removed from spec.ips"
		if c.ips.Contains(h.addr) {
			p, how = excludeIPsPath, "added to spec.excludeIPs"
		}
		errs = append(errs, field.Forbidden(p, fmt.Sprintf(
			"IP %s is allocated to Pod %s (uid %s) and cannot be %s; the usable IPs are spec.ips minus spec.excludeIPs",
			h.addr, h.rec.NamespacedName, h.rec.PodUID, how)))
	}
	return errs
}

// ValidateIPPoolOverlap checks pool against the other pools of the cluster: a subnet must not overlap
// another pool's subnet of the same family unless the two are exactly equal, and pools of the same
// subnet must not share usable addresses (ips minus excludeIPs), since one address would then be
// handed out twice. An entry of others with pool's name (the stored version of pool itself) is
// ignored, as are other pools whose own spec does not parse. Local errors of pool are left to
// ValidateSpiderIPPool; when its spec does not parse, nothing is reported here.
func ValidateIPPoolOverlap(pool *SpiderIPPool, others []SpiderIPPool) field.ErrorList {
	version, prefix, usable, ok := parseSpecSets(pool.Spec.IPVersion, pool.Spec.Subnet, pool.Spec.IPs, pool.Spec.ExcludeIPs)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for i := range others {
		o := &others[i]
		if o.Name == pool.Name {
			continue
		}
		ov, op, ousable, ok := parseSpecSets(o.Spec.IPVersion, o.Spec.Subnet, o.Spec.IPs, o.Spec.ExcludeIPs)
		if !ok || ov != version {
			continue
		}
		switch {
		case op == prefix:
			if shared := usable.Intersect(ousable); !shared.IsEmpty() {
				errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
					"IPs %s are also usable in SpiderIPPool %q of the same subnet; pools of one subnet must not share IPs (usable IPs are spec.ips minus spec.excludeIPs)",
					shared, o.Name)))
			}
		case op.Overlaps(prefix):
			errs = append(errs, field.Invalid(subnetPath, pool.Spec.Subnet, fmt.Sprintf(
				"overlaps with spec.subnet %s of SpiderIPPool %q; pools must use the same subnet or disjoint ones", o.Spec.Subnet, o.Name)))
		}
	}
	return errs
}

// ValidatePoolInSubnet checks a pool against a SpiderSubnet: when their subnets are equal (the
// subnet then controls the pool), the pool's usable IPs must all be usable IPs of the subnet, since
// the subnet hands out its addresses to pools and would otherwise give them out a second time.
func ValidatePoolInSubnet(pool *SpiderIPPool, subnet *SpiderSubnet) field.ErrorList {
	version, prefix, usable, ok := parseSpecSets(pool.Spec.IPVersion, pool.Spec.Subnet, pool.Spec.IPs, pool.Spec.ExcludeIPs)
	if !ok {
		return nil
	}
	sv, sp, susable, ok := parseSpecSets(subnet.Spec.IPVersion, subnet.Spec.Subnet, subnet.Spec.IPs, subnet.Spec.ExcludeIPs)
	if !ok || sv != version || sp != prefix {
		return nil
	}
	if outside := usable.Subtract(susable); !outside.IsEmpty() {
		return field.ErrorList{field.Forbidden(ipsPath, fmt.Sprintf(
			"IPs %s are not usable IPs of SpiderSubnet %q, which controls subnet %s; add them to the SpiderSubnet first",
			outside, subnet.Name, subnet.Spec.Subnet))}
	}
	return nil
}
