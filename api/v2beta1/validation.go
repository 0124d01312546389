package v2beta1

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// This file holds the object-local validation rules of SPEC.md section 1 and the cross-object
// checks that only need the other objects handed in. The admission webhooks and the unit tests call
// the same functions, so every error names the exact field (spec.ips[2], spec.routes[0].gw, ...).
//
// The functions expect objects that went through the matching Default* function (as the mutating
// webhook runs before the validating one), but they do not depend on it: a missing ipVersion is
// taken from the subnet, a missing cniType means custom, and so on, so that validating a raw
// manifest gives the same verdict as validating the defaulted one.

var (
	specPath        = field.NewPath("spec")
	ipVersionPath   = specPath.Child("ipVersion")
	subnetPath      = specPath.Child("subnet")
	ipsPath         = specPath.Child("ips")
	excludeIPsPath  = specPath.Child("excludeIPs")
	gatewayPath     = specPath.Child("gateway")
	routesPath      = specPath.Child("routes")
	annotationsPath = field.NewPath("metadata", "annotations")
)

var supportedIPVersions = []string{"4", "6"}

// maxInUseErrors bounds the errors reported for addresses that an update would take away from their
// holders: removing a whole range from a busy pool would otherwise put thousands of lines in the
// admission response.
const maxInUseErrors = 10

// reason turns an error of internal/ip into a field detail. Those errors start with
// `invalid CIDR "<input>": `, and field.Invalid already prints the input, so the prefix is dropped.
func reason(err error, value string) string {
	msg := err.Error()
	for _, p := range []string{"invalid CIDR ", "invalid IP range ", "invalid IP address "} {
		if rest, ok := strings.CutPrefix(msg, p+strconv.Quote(value)+": "); ok {
			return rest
		}
	}
	return msg
}

func familyName(v int) string { return "IPv" + strconv.Itoa(v) }

// ---------------------------------------------------------------------------------------------
// Shared by SpiderIPPool and SpiderSubnet: ipVersion, subnet, ips, excludeIPs, gateway, routes.

// addrSpec is the part of IPPoolSpec and SubnetSpec that follows the same rules.
type addrSpec struct {
	ipVersion  *int64
	subnet     string
	ips        []string
	excludeIPs []string
	gateway    *string
	routes     []Route
}

func poolAddrSpec(s *IPPoolSpec) addrSpec {
	return addrSpec{s.IPVersion, s.Subnet, s.IPs, s.ExcludeIPs, s.Gateway, s.Routes}
}

func subnetAddrSpec(s *SubnetSpec) addrSpec {
	return addrSpec{s.IPVersion, s.Subnet, s.IPs, s.ExcludeIPs, s.Gateway, s.Routes}
}

// checkedSpec is what validateAddrSpec learned, for the checks that build on it.
type checkedSpec struct {
	// version is the family (4 or 6), or 0 when neither ipVersion nor subnet tells it.
	version int
	// prefix is the parsed subnet; invalid when the subnet was rejected.
	prefix netip.Prefix
	// ips and excludeIPs are valid only when entriesOK: every entry parsed, is of the family and
	// lies inside the subnet.
	ips, excludeIPs ip.Set
	entriesOK       bool
}

// usable returns ips minus excludeIPs, the addresses the pool or subnet may hand out.
func (c checkedSpec) usable() ip.Set { return c.ips.Subtract(c.excludeIPs) }

// parseSpecSets parses another object's spec for the cross-object checks. Those objects are already
// stored; when one is broken there is nothing useful to compare against, so ok is false and the
// caller skips it rather than blocking the object under review.
func parseSpecSets(ipVersion *int64, subnet string, ips, excludeIPs []string) (version int, prefix netip.Prefix, usable ip.Set, ok bool) {
	p, err := ip.ParsePrefixLenient(subnet)
	if err != nil {
		return 0, netip.Prefix{}, ip.Set{}, false
	}
	version = ip.Version(p.Addr())
	if ipVersion != nil && int(*ipVersion) != version {
		return 0, netip.Prefix{}, ip.Set{}, false
	}
	in, err := ip.ParseSet(ips, version)
	if err != nil {
		return 0, netip.Prefix{}, ip.Set{}, false
	}
	ex, err := ip.ParseSet(excludeIPs, version)
	if err != nil {
		return 0, netip.Prefix{}, ip.Set{}, false
	}
	return version, p, in.Subtract(ex), true
}

// validateCIDR checks a CIDR field where upstream Spiderpool accepts any valid CIDR: spec.subnet,
// routes[].dst, and the coordinator's hijackCIDR and policyRoutes[].dst. Host bits and any IPv6
// spelling are accepted and the returned prefix is masked; the mutating webhook stores the
// canonical spelling, and readers mask what got past it (see cidr.go).
func validateCIDR(p *field.Path, s string) (netip.Prefix, *field.Error) {
	if s == "" {
		return netip.Prefix{}, field.Required(p, "a CIDR such as 10.6.0.0/16 is required")
	}
	prefix, err := ip.ParsePrefixLenient(s)
	if err != nil {
		return netip.Prefix{}, field.Invalid(p, s, reason(err, s))
	}
	return prefix, nil
}

// validateCanonicalCIDR checks a CIDR our own components write (SpiderEndpoint routes, copied
// from parsed pool routes): anything but the canonical spelling there is a bug, not a user's
// choice.
func validateCanonicalCIDR(p *field.Path, s string) (netip.Prefix, *field.Error) {
	prefix, ferr := validateCIDR(p, s)
	if ferr != nil {
		return netip.Prefix{}, ferr
	}
	if c := ip.FormatPrefix(prefix); c != s {
		return netip.Prefix{}, field.Invalid(p, s, fmt.Sprintf("must be written in canonical form, use %q", c))
	}
	return prefix, nil
}

// validateIPVersion checks ipVersion against the enum and the enabled families.
func validateIPVersion(ipVersion *int64, version int, enableIPv4, enableIPv6 bool) field.ErrorList {
	var errs field.ErrorList
	if ipVersion != nil && *ipVersion != IPv4 && *ipVersion != IPv6 {
		errs = append(errs, field.NotSupported(ipVersionPath, *ipVersion, supportedIPVersions))
	}
	switch {
	case version == 4 && !enableIPv4:
		errs = append(errs, field.Forbidden(ipVersionPath, "IPv4 is disabled"))
	case version == 6 && !enableIPv6:
		errs = append(errs, field.Forbidden(ipVersionPath, "IPv6 is disabled"))
	}
	return errs
}

// validateAddrSpec applies the rules shared by pools and subnets.
func validateAddrSpec(s addrSpec, enableIPv4, enableIPv6 bool) (checkedSpec, field.ErrorList) {
	var (
		c    checkedSpec
		errs field.ErrorList
	)

	if s.ipVersion != nil && (*s.ipVersion == IPv4 || *s.ipVersion == IPv6) {
		c.version = int(*s.ipVersion)
	}
	prefix, ferr := validateCIDR(subnetPath, s.subnet)
	if ferr != nil {
		errs = append(errs, ferr)
	} else {
		sv := ip.Version(prefix.Addr())
		switch {
		case c.version == 0:
			// ipVersion is unset (the default fills it from the subnet) or out of the enum
			// (reported below); either way the subnet tells the family to check the rest with.
			c.version, c.prefix = sv, prefix
		case c.version != sv:
			errs = append(errs, field.Invalid(subnetPath, s.subnet,
				fmt.Sprintf("is an %s CIDR, but spec.ipVersion is %d", familyName(sv), c.version)))
		default:
			c.prefix = prefix
		}
	}
	errs = append(errs, validateIPVersion(s.ipVersion, c.version, enableIPv4, enableIPv6)...)
	if !c.prefix.IsValid() {
		// Without a subnet there is no telling whether ipVersion or the entries hold the wrong
		// family, so entries are only checked for syntax instead of piling up family errors.
		c.version = 0
	}

	// Entries are checked one by one so that each error names its index; the sets are only built
	// when every entry is good, since a set with holes would make the later checks lie.
	inRanges, inOK, inErrs := validateRanges(ipsPath, s.ips, c.version, c.prefix)
	exRanges, exOK, exErrs := validateRanges(excludeIPsPath, s.excludeIPs, c.version, c.prefix)
	errs = append(errs, inErrs...)
	errs = append(errs, exErrs...)
	if inOK && exOK && c.version != 0 && c.prefix.IsValid() {
		var err1, err2 error
		c.ips, err1 = ip.NewSet(c.version, inRanges...)
		c.excludeIPs, err2 = ip.NewSet(c.version, exRanges...)
		c.entriesOK = err1 == nil && err2 == nil
	}

	if s.gateway != nil {
		gw, ferr := validateAddrIn(gatewayPath, *s.gateway, c.version, c.prefix)
		if ferr != nil {
			errs = append(errs, ferr)
		} else if c.entriesOK && !c.excludeIPs.Contains(gw) {
			// The gateway is the router's address: handing it to a pod would break the subnet.
			for i, r := range inRanges {
				if r.Contains(gw) {
					errs = append(errs, field.Invalid(ipsPath.Index(i), s.ips[i], fmt.Sprintf(
						"contains spec.gateway %s; add the gateway to spec.excludeIPs or remove it from spec.ips", gw)))
				}
			}
		}
	}

	errs = append(errs, validateRoutes(routesPath, s.routes, c.version, c.prefix)...)
	return c, errs
}

// validateRanges checks ips or excludeIPs entries: each a single address or "first-last" range of
// the family, inside the subnet. version 0 or an invalid prefix skip the checks they would feed.
func validateRanges(p *field.Path, entries []string, version int, prefix netip.Prefix) ([]ip.Range, bool, field.ErrorList) {
	var errs field.ErrorList
	ranges := make([]ip.Range, 0, len(entries))
	for i, e := range entries {
		r, err := ip.ParseRange(e)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(p.Index(i), e, reason(err, e)+`; want an IP address or a range "first-last"`))
		case version != 0 && r.Version() != version:
			errs = append(errs, field.Invalid(p.Index(i), e, fmt.Sprintf("is %s, but the family is %s", familyName(r.Version()), familyName(version))))
		case prefix.IsValid() && !(prefix.Contains(r.First) && prefix.Contains(r.Last)):
			errs = append(errs, field.Invalid(p.Index(i), e, fmt.Sprintf("is not within spec.subnet %s", prefix)))
		default:
			ranges = append(ranges, r)
		}
	}
	return ranges, len(errs) == 0, errs
}

// validateAddrIn checks a single address of the family inside the subnet (gateway, route gw).
func validateAddrIn(p *field.Path, s string, version int, prefix netip.Prefix) (netip.Addr, *field.Error) {
	if s == "" {
		return netip.Addr{}, field.Required(p, "an IP address is required")
	}
	a, err := ip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, field.Invalid(p, s, reason(err, s))
	case version != 0 && ip.Version(a) != version:
		return netip.Addr{}, field.Invalid(p, s, fmt.Sprintf("is an %s address, but the family is %s", familyName(ip.Version(a)), familyName(version)))
	case prefix.IsValid() && !prefix.Contains(a):
		return netip.Addr{}, field.Invalid(p, s, fmt.Sprintf("is not within spec.subnet %s", prefix))
	}
	return a, nil
}

// validateRoutes checks pool and subnet routes: dst a CIDR of the family (host bits allowed, as
// upstream does; compared masked), not the default route (that is what gateway is for), unique; gw
// inside the subnet, since the pod can only reach an on-link next hop.
func validateRoutes(p *field.Path, routes []Route, version int, prefix netip.Prefix) field.ErrorList {
	var errs field.ErrorList
	seen := make(map[netip.Prefix]bool, len(routes))
	for i, r := range routes {
		dstPath := p.Index(i).Child("dst")
		dst, ferr := validateCIDR(dstPath, r.Dst)
		switch {
		case ferr != nil:
			errs = append(errs, ferr)
		case version != 0 && ip.Version(dst.Addr()) != version:
			errs = append(errs, field.Invalid(dstPath, r.Dst, fmt.Sprintf("is an %s CIDR, but the family is %s", familyName(ip.Version(dst.Addr())), familyName(version))))
		case dst.Bits() == 0:
			errs = append(errs, field.Invalid(dstPath, r.Dst, "the default route is not allowed here; set spec.gateway instead"))
		default:
			if seen[dst] {
				errs = append(errs, field.Duplicate(dstPath, r.Dst))
			}
			seen[dst] = true
		}
		if _, ferr := validateAddrIn(p.Index(i).Child("gw"), r.Gw, version, prefix); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs
}

// ---------------------------------------------------------------------------------------------
// SpiderIPPool

// ValidateSpiderIPPool applies the object-local rules of SPEC.md 1.1 to a pool being created.
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

// validateImmutable reports changes of ipVersion and subnet. A nil ipVersion on either side is not
// a change: the mutating webhook fills it from the (unchanged) subnet. Nor is another spelling of
// the same subnet: the webhook stores the canonical form, so an update re-sending a create's
// "10.6.0.1/16" arrives as "10.6.0.0/16", while the stored object may still hold the spelling
// written past the webhook.
func validateImmutable(newVersion, oldVersion *int64, newSubnet, oldSubnet string) field.ErrorList {
	var errs field.ErrorList
	if newVersion != nil && oldVersion != nil && *newVersion != *oldVersion {
		errs = append(errs, field.Forbidden(ipVersionPath, fmt.Sprintf("is not changeable (was %d)", *oldVersion)))
	}
	if !SameCIDR(newSubnet, oldSubnet) {
		errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf("is not changeable (was %s)", oldSubnet)))
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

// ---------------------------------------------------------------------------------------------
// SpiderSubnet

// ValidateSpiderSubnet applies the rules of SPEC.md 1.2 to a subnet being created: the same CIDR,
// range, gateway and route rules as pools, and a decodable status.controlledIPPools.
func ValidateSpiderSubnet(subnet *SpiderSubnet, enableIPv4, enableIPv6 bool) field.ErrorList {
	errs, _ := validateSubnet(subnet, enableIPv4, enableIPv6)
	return errs
}

func validateSubnet(subnet *SpiderSubnet, enableIPv4, enableIPv6 bool) (field.ErrorList, checkedSpec) {
	c, errs := validateAddrSpec(subnetAddrSpec(&subnet.Spec), enableIPv4, enableIPv6)
	if subnet.Status.ControlledIPPools != nil {
		if _, err := subnet.Status.ControlledPools(); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("status", "controlledIPPools"), *subnet.Status.ControlledIPPools,
				`must be a JSON object {"<pool>":{"ips":["<range>",...]}}: `+err.Error()))
		}
	}
	return errs, c
}

// ValidateSpiderSubnetUpdate validates newSubnet and the rules of an update: ipVersion and subnet are
// immutable, and addresses handed to a controlled pool (oldSubnet's status.controlledIPPools) may not
// leave the subnet's usable set.
func ValidateSpiderSubnetUpdate(newSubnet, oldSubnet *SpiderSubnet, enableIPv4, enableIPv6 bool) field.ErrorList {
	oldVersion := oldSubnet.Spec.Version()
	errs := validateImmutable(newSubnet.Spec.IPVersion, oldSubnet.Spec.IPVersion, newSubnet.Spec.Subnet, oldSubnet.Spec.Subnet)
	localErrs, c := validateSubnet(newSubnet, enableIPv4 || oldVersion == 4, enableIPv6 || oldVersion == 6)
	errs = append(errs, localErrs...)
	if len(errs) != 0 || !c.entriesOK {
		return errs
	}

	pools, err := oldSubnet.Status.ControlledPools()
	if err != nil {
		return append(errs, field.InternalError(field.NewPath("status", "controlledIPPools"), err))
	}
	oldUsable, oldOK := ip.Set{}, false
	if ov, _, u, ok := parseSpecSets(oldSubnet.Spec.IPVersion, oldSubnet.Spec.Subnet, oldSubnet.Spec.IPs, oldSubnet.Spec.ExcludeIPs); ok && ov == c.version {
		oldUsable, oldOK = u, true
	}
	newUsable := c.usable()
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		held, err := ip.ParseSet(pools[name].IPs, c.version)
		if err != nil {
			continue
		}
		if oldOK {
			held = held.Intersect(oldUsable)
		}
		gone := held.Subtract(newUsable)
		if gone.IsEmpty() {
			continue
		}
		if excluded := gone.Intersect(c.ips); !excluded.IsEmpty() {
			errs = append(errs, field.Forbidden(excludeIPsPath, fmt.Sprintf(
				"IPs %s are used by SpiderIPPool %q and cannot be added to spec.excludeIPs", excluded, name)))
		}
		if dropped := gone.Subtract(c.ips); !dropped.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
				"IPs %s are used by SpiderIPPool %q and cannot be removed from spec.ips", dropped, name)))
		}
	}
	return errs
}

// ValidateSubnetOverlap checks that subnet does not overlap (or equal) the subnet of another
// SpiderSubnet of the same family: each CIDR is controlled by at most one SpiderSubnet. Entries with
// subnet's name and entries whose spec does not parse are ignored.
func ValidateSubnetOverlap(subnet *SpiderSubnet, others []SpiderSubnet) field.ErrorList {
	version, prefix, _, ok := parseSpecSets(subnet.Spec.IPVersion, subnet.Spec.Subnet, nil, nil)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for i := range others {
		o := &others[i]
		if o.Name == subnet.Name {
			continue
		}
		ov, op, _, ok := parseSpecSets(o.Spec.IPVersion, o.Spec.Subnet, nil, nil)
		if ok && ov == version && op.Overlaps(prefix) {
			errs = append(errs, field.Invalid(subnetPath, subnet.Spec.Subnet, fmt.Sprintf(
				"overlaps with spec.subnet %s of SpiderSubnet %q", o.Spec.Subnet, o.Name)))
		}
	}
	return errs
}

// ValidateSubnetPools checks a SpiderSubnet being created against the existing pools: a pool whose
// subnet overlaps but differs would escape the subnet's control, and a pool with the same subnet
// must only use addresses the SpiderSubnet holds (the subnet adopts it).
func ValidateSubnetPools(subnet *SpiderSubnet, pools []SpiderIPPool) field.ErrorList {
	version, prefix, usable, ok := parseSpecSets(subnet.Spec.IPVersion, subnet.Spec.Subnet, subnet.Spec.IPs, subnet.Spec.ExcludeIPs)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for i := range pools {
		pl := &pools[i]
		pv, pp, pusable, ok := parseSpecSets(pl.Spec.IPVersion, pl.Spec.Subnet, pl.Spec.IPs, pl.Spec.ExcludeIPs)
		if !ok || pv != version {
			continue
		}
		switch {
		case pp == prefix:
			if outside := pusable.Subtract(usable); !outside.IsEmpty() {
				errs = append(errs, field.Invalid(ipsPath, subnet.Spec.IPs, fmt.Sprintf(
					"SpiderIPPool %q uses IPs %s that are not usable IPs of this SpiderSubnet", pl.Name, outside)))
			}
		case pp.Overlaps(prefix):
			errs = append(errs, field.Invalid(subnetPath, subnet.Spec.Subnet, fmt.Sprintf(
				"overlaps with spec.subnet %s of SpiderIPPool %q", pl.Spec.Subnet, pl.Name)))
		}
	}
	return errs
}

// ---------------------------------------------------------------------------------------------
// SpiderReservedIP

// ValidateSpiderReservedIP checks that every entry of spec.ips is an address or range of ipVersion
// (taken from the first entry when unset, as DefaultSpiderReservedIP does).
func ValidateSpiderReservedIP(rip *SpiderReservedIP, enableIPv4, enableIPv6 bool) field.ErrorList {
	version := 0
	if v := rip.Spec.IPVersion; v != nil && (*v == IPv4 || *v == IPv6) {
		version = int(*v)
	} else if v == nil && len(rip.Spec.IPs) > 0 {
		if r, err := ip.ParseRange(rip.Spec.IPs[0]); err == nil {
			version = r.Version()
		}
	}
	var errs field.ErrorList
	if rip.Spec.IPVersion == nil && version == 0 && len(rip.Spec.IPs) == 0 {
		errs = append(errs, field.Required(ipVersionPath, "set spec.ipVersion or list IPs in spec.ips to derive it from"))
	}
	errs = append(errs, validateIPVersion(rip.Spec.IPVersion, version, enableIPv4, enableIPv6)...)
	_, _, rangeErrs := validateRanges(ipsPath, rip.Spec.IPs, version, netip.Prefix{})
	return append(errs, rangeErrs...)
}

// ValidateSpiderReservedIPUpdate validates newRIP and keeps ipVersion immutable.
func ValidateSpiderReservedIPUpdate(newRIP, oldRIP *SpiderReservedIP, enableIPv4, enableIPv6 bool) field.ErrorList {
	errs := validateImmutable(newRIP.Spec.IPVersion, oldRIP.Spec.IPVersion, "", "")
	oldVersion := 0
	if oldRIP.Spec.IPVersion != nil {
		oldVersion = int(*oldRIP.Spec.IPVersion)
	}
	return append(errs, ValidateSpiderReservedIP(newRIP, enableIPv4 || oldVersion == 4, enableIPv6 || oldVersion == 6)...)
}

// ---------------------------------------------------------------------------------------------
// SpiderEndpoint

// ValidateSpiderEndpoint checks the record an agent writes: uid and node set, one entry per
// interface, addresses with prefix length of the right family, vlan in 0..4094.
func ValidateSpiderEndpoint(ep *SpiderEndpoint) field.ErrorList {
	var errs field.ErrorList
	st := field.NewPath("status")
	cur := st.Child("current")
	if ep.Status.Current.UID == "" {
		errs = append(errs, field.Required(cur.Child("uid"), "the Pod UID is required"))
	}
	if ep.Status.Current.Node == "" {
		errs = append(errs, field.Required(cur.Child("node"), "the node name is required"))
	} else {
		for _, m := range k8svalidation.IsDNS1123Subdomain(ep.Status.Current.Node) {
			errs = append(errs, field.Invalid(cur.Child("node"), ep.Status.Current.Node, m))
		}
	}
	if ep.Status.OwnerControllerType == "" {
		errs = append(errs, field.Required(st.Child("ownerControllerType"), "the kind of the Pod's top controller is required"))
	}
	if ep.Status.OwnerControllerName == "" {
		errs = append(errs, field.Required(st.Child("ownerControllerName"), "the name of the Pod's top controller is required"))
	}
	seen := map[string]bool{}
	for i, d := range ep.Status.Current.IPs {
		p := cur.Child("ips").Index(i)
		switch {
		case d.NIC == "":
			errs = append(errs, field.Required(p.Child("interface"), "the interface name is required"))
		case seen[d.NIC]:
			errs = append(errs, field.Duplicate(p.Child("interface"), d.NIC))
		default:
			seen[d.NIC] = true
		}
		errs = append(errs, validateIfaceAddr(p.Child("ipv4"), d.IPv4, 4)...)
		errs = append(errs, validateIfaceAddr(p.Child("ipv6"), d.IPv6, 6)...)
		errs = append(errs, validateOptAddr(p.Child("ipv4Gateway"), d.IPv4Gateway, 4)...)
		errs = append(errs, validateOptAddr(p.Child("ipv6Gateway"), d.IPv6Gateway, 6)...)
		if d.Vlan != nil && (*d.Vlan < 0 || *d.Vlan > 4094) {
			errs = append(errs, field.Invalid(p.Child("vlan"), *d.Vlan, "must be between 0 and 4094"))
		}
		if d.MAC != nil && *d.MAC != "" {
			if _, err := net.ParseMAC(*d.MAC); err != nil {
				errs = append(errs, field.Invalid(p.Child("mac"), *d.MAC, "not a MAC address"))
			}
		}
		for j, r := range d.Routes {
			rp := p.Child("routes").Index(j)
			if _, ferr := validateCanonicalCIDR(rp.Child("dst"), r.Dst); ferr != nil {
				errs = append(errs, ferr)
			}
			if _, ferr := validateAddrIn(rp.Child("gw"), r.Gw, 0, netip.Prefix{}); ferr != nil {
				errs = append(errs, ferr)
			}
		}
	}
	return errs
}

// validateIfaceAddr checks an interface address "10.6.212.145/16": an address (host bits expected)
// with the subnet's prefix length. internal/ip only parses canonical CIDRs, which this is not.
func validateIfaceAddr(p *field.Path, s *string, version int) field.ErrorList {
	if s == nil || *s == "" {
		return nil
	}
	addr, bits, ok := strings.Cut(*s, "/")
	if !ok {
		return field.ErrorList{field.Invalid(p, *s, "want an address with prefix length, e.g. 10.6.212.145/16")}
	}
	a, err := ip.ParseAddr(addr)
	if err != nil {
		return field.ErrorList{field.Invalid(p, *s, reason(err, addr))}
	}
	if ip.Version(a) != version {
		return field.ErrorList{field.Invalid(p, *s, "must be an "+familyName(version)+" address")}
	}
	if n, err := strconv.Atoi(bits); err != nil || n < 0 || n > a.BitLen() || bits != strconv.Itoa(n) {
		return field.ErrorList{field.Invalid(p, *s, fmt.Sprintf("prefix length must be 0..%d", a.BitLen()))}
	}
	return nil
}

func validateOptAddr(p *field.Path, s *string, version int) field.ErrorList {
	if s == nil || *s == "" {
		return nil
	}
	if _, ferr := validateAddrIn(p, *s, version, netip.Prefix{}); ferr != nil {
		return field.ErrorList{ferr}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// SpiderCoordinator and CoordinatorSpec

var (
	coordinatorModes = []string{CoordinatorModeAuto, CoordinatorModeUnderlay, CoordinatorModeOverlay, CoordinatorModeDisabled}
	podCIDRTypes     = []string{PodCIDRTypeAuto, PodCIDRTypeCluster, PodCIDRTypeCalico, PodCIDRTypeCilium, PodCIDRTypeNone}

	// podMACPrefixRE is the CRD pattern of upstream. Its second character class is meant to keep
	// the first byte unicast but lets odd digits through, so validatePodMACPrefix also tests the
	// bit itself.
	podMACPrefixRE = regexp.MustCompile(`^[a-fA-F0-9][a-fA-F0,2-9][:-][a-fA-F0-9]{2}$`)
)

// ValidateSpiderCoordinator checks the cluster-wide coordinator object. Unlike the per-network
// overrides it must name podCIDRType: the controller has nowhere else to learn where overlay pod
// CIDRs come from (Helm always sets it, "auto" by default).
func ValidateSpiderCoordinator(c *SpiderCoordinator) field.ErrorList {
	var errs field.ErrorList
	if c.Spec.PodCIDRType == nil {
		errs = append(errs, field.Required(specPath.Child("podCIDRType"), "one of "+strings.Join(podCIDRTypes, ", ")+" is required"))
	}
	return append(errs, ValidateCoordinatorSpec(&c.Spec, specPath)...)
}

// ValidateCoordinatorSpec checks a CoordinatorSpec found at p: spec of a SpiderCoordinator or
// spec.coordinator of a SpiderMultusConfig.
func ValidateCoordinatorSpec(spec *CoordinatorSpec, p *field.Path) field.ErrorList {
	if spec == nil {
		return nil
	}
	var errs field.ErrorList
	if spec.Mode != nil && !slices.Contains(coordinatorModes, *spec.Mode) {
		errs = append(errs, field.NotSupported(p.Child("mode"), *spec.Mode, coordinatorModes))
	}
	if spec.PodCIDRType != nil && !slices.Contains(podCIDRTypes, *spec.PodCIDRType) {
		errs = append(errs, field.NotSupported(p.Child("podCIDRType"), *spec.PodCIDRType, podCIDRTypes))
	}
	for i, s := range spec.HijackCIDR {
		if _, ferr := validateIPOrCIDR(p.Child("hijackCIDR").Index(i), s); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	for i, r := range spec.PolicyRoutes {
		rp := p.Child("policyRoutes").Index(i)
		dst, ferr := validateIPOrCIDR(rp.Child("dst"), r.Dst)
		if ferr != nil {
			errs = append(errs, ferr)
		}
		if gw, ferr := validateAddrIn(rp.Child("gw"), r.Gw, 0, netip.Prefix{}); ferr != nil {
			errs = append(errs, ferr)
		} else if dst.IsValid() && ip.Version(gw) != ip.Version(dst.Addr()) {
			errs = append(errs, field.Invalid(rp.Child("gw"), r.Gw, "must be of the same IP family as dst "+r.Dst))
		}
	}
	if spec.PodMACPrefix != nil && *spec.PodMACPrefix != "" {
		if ferr := validatePodMACPrefix(p.Child("podMACPrefix"), *spec.PodMACPrefix); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if spec.PodDefaultRouteNIC != nil && *spec.PodDefaultRouteNIC != "" {
		if ferr := validateIfName(p.Child("podDefaultRouteNIC"), *spec.PodDefaultRouteNIC); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if v := spec.HostRuleTable; v != nil {
		switch {
		case *v <= 0 || *v > math.MaxUint32:
			errs = append(errs, field.Invalid(p.Child("hostRuleTable"), *v, "must be a routing table number from 1 to 4294967295"))
		case *v >= 253 && *v <= 255:
			// The kernel's default (253), main (254) and local (255) tables: the coordinator would
			// add pod routes to, and flush them from, the node's own routing.
			errs = append(errs, field.Invalid(p.Child("hostRuleTable"), *v, "253, 254 and 255 are the kernel's default, main and local tables; choose another (the default is 500)"))
		}
	}
	// A negative rp_filter means "leave the pod's setting alone"; 0..2 are the kernel's values.
	if v := spec.PodRPFilter; v != nil && *v > 2 {
		errs = append(errs, field.NotSupported(p.Child("podRPFilter"), *v, []string{"negative (unchanged)", "0", "1", "2"}))
	}
	if v := spec.TxQueueLen; v != nil && *v < 0 {
		errs = append(errs, field.Invalid(p.Child("txQueueLen"), *v, "must be greater than or equal to 0 (0 leaves it unchanged)"))
	}
	if v := spec.VethLinkAddress; v != nil && *v != "" {
		if a, err := ip.ParseAddr(*v); err != nil {
			errs = append(errs, field.Invalid(p.Child("vethLinkAddress"), *v, reason(err, *v)))
		} else if !a.Is4() {
			errs = append(errs, field.Invalid(p.Child("vethLinkAddress"), *v, "must be an IPv4 address, e.g. 169.254.100.1"))
		}
	}
	if v := spec.VethMTU; v != nil && *v < 1 {
		errs = append(errs, field.Invalid(p.Child("vethMTU"), *v, "must be greater than or equal to 1"))
	}
	return errs
}

// validateIPOrCIDR accepts a CIDR or a single address, which upstream's coordinator treats as a /32
// or /128 (and DefaultSpiderCoordinator rewrites so). Host bits are accepted as upstream accepts
// them: DefaultSpiderCoordinator masks them, and the coordinator plugin masks every CIDR it reads
// (a SpiderMultusConfig's copy reaches it as written), so the kernel never sees them.
func validateIPOrCIDR(p *field.Path, s string) (netip.Prefix, *field.Error) {
	if !strings.Contains(s, "/") && s != "" {
		a, err := ip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, field.Invalid(p, s, reason(err, s)+"; want a CIDR or an IP address")
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return validateCIDR(p, s)
}

// validatePodMACPrefix checks "xx:xx" with a unicast first byte. The CRD pattern also allows '-' as
// separator, but upstream's webhook splits on ':' only and the coordinator parses that form, so '-'
// is refused here rather than failing every Pod later.
func validatePodMACPrefix(p *field.Path, s string) *field.Error {
	if !podMACPrefixRE.MatchString(s) || s[2] != ':' {
		return field.Invalid(p, s, `must be two hex bytes "xx:xx", e.g. "0a:1b"`)
	}
	b, _ := strconv.ParseUint(s[:2], 16, 8)
	if b&1 != 0 {
		return field.Invalid(p, s, "the first byte must be unicast (lowest bit 0)")
	}
	return nil
}

// validateIfName checks a Linux interface name as the kernel's dev_valid_name does.
func validateIfName(p *field.Path, s string) *field.Error {
	switch {
	case s == "":
		return field.Required(p, "an interface name is required")
	case len(s) > 15:
		return field.TooLong(p, s, 15)
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\r\v\f"):
		return field.Invalid(p, s, "not a valid interface name")
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// SpiderMultusConfig

var (
	cniTypes = []string{CniTypeMacvlan, CniTypeIPvlan, CniTypeVlan, CniTypeSriov, CniTypeOvs, CniTypeIBSriov, CniTypeIPoIB, CniTypeCustom}

	// supportedCNIVersions are the NAD cniVersion values accepted in the cni-version annotation.
	// Upstream stops at 1.0.0; 1.1.0 is accepted as well because our spiderpool, coordinator and
	// ifacer plugins implement that spec version too.
	supportedCNIVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

	ibLinkStates = []string{"auto", "enable", "disable"}
	vlanModes    = []string{"manual", "auto"}
)

// ValidateSpiderMultusConfig applies the rules of SPEC.md 1.5. A nil cniType means custom, its
// schema default. The check that the target NAD is not owned by another SpiderMultusConfig needs the
// API and is left to the webhook.
func ValidateSpiderMultusConfig(smc *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateMultusAnnotations(smc)...)

	cniType := CniTypeCustom
	if smc.Spec.CniType != nil {
		cniType = *smc.Spec.CniType
	}
	if !slices.Contains(cniTypes, cniType) {
		return append(errs, field.NotSupported(specPath.Child("cniType"), cniType, cniTypes))
	}

	// Exactly the sub-object named by cniType may be present; the others would be silently
	// ignored by the NAD generator, which hides mistakes such as a cniType typo'd to another type.
	spec := &smc.Spec
	present := []struct {
		typ, json string
		set       bool
	}{
		{CniTypeMacvlan, "macvlan", spec.MacvlanConfig != nil},
		{CniTypeIPvlan, "ipvlan", spec.IPVlanConfig != nil},
		{CniTypeVlan, "vlan", spec.VlanConfig != nil},
		{CniTypeSriov, "sriov", spec.SriovConfig != nil},
		{CniTypeOvs, "ovs", spec.OvsConfig != nil},
		{CniTypeIBSriov, "ibsriov", spec.IbSriovConfig != nil},
		{CniTypeIPoIB, "ipoib", spec.IpoibConfig != nil},
		// An empty customCNI counts as absent: `kubectl apply` of a guide's ipvlan object over
		// spiderpool-init's placeholder (cniType custom, customCNI "") keeps the field.
		{CniTypeCustom, "customCNI", spec.CustomCNIConfig != nil && (*spec.CustomCNIConfig != "" || cniType == CniTypeCustom)},
	}
	own := ""
	for _, s := range present {
		if s.typ == cniType {
			own = s.json
		}
	}
	for _, s := range present {
		if s.set && s.typ != cniType {
			errs = append(errs, field.Forbidden(specPath.Child(s.json),
				fmt.Sprintf("cniType %s only supports spec.%s; remove spec.%s", cniType, own, s.json)))
		}
	}

	injects := injectAnnotations(smc)
	switch cniType {
	case CniTypeMacvlan:
		if c := spec.MacvlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "macvlan"))
		} else {
			p := specPath.Child("macvlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
		}
	case CniTypeIPvlan:
		if c := spec.IPVlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ipvlan"))
		} else {
			p := specPath.Child("ipvlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
		}
	case CniTypeVlan:
		if c := spec.VlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "vlan"))
		} else {
			p := specPath.Child("vlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanMode(p, c.VlanMode, c.VlanID)...)
		}
	case CniTypeSriov:
		if c := spec.SriovConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "sriov"))
		} else {
			errs = append(errs, validateSriov(specPath.Child("sriov"), c)...)
		}
	case CniTypeIBSriov:
		if c := spec.IbSriovConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ibsriov"))
		} else {
			p := specPath.Child("ibsriov")
			if c.ResourceName == nil || *c.ResourceName == "" {
				errs = append(errs, field.Required(p.Child("resourceName"), "the device-plugin resource of the VFs is required"))
			}
			if c.LinkState != nil && !slices.Contains(ibLinkStates, *c.LinkState) {
				errs = append(errs, field.NotSupported(p.Child("linkState"), *c.LinkState, ibLinkStates))
			}
			errs = append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
		}
	case CniTypeIPoIB:
		if c := spec.IpoibConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ipoib"))
		} else {
			p := specPath.Child("ipoib")
			if ferr := validateIfName(p.Child("master"), c.Master); ferr != nil {
				errs = append(errs, ferr)
			}
			errs = append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
		}
	case CniTypeOvs:
		errs = append(errs, forbidInjection(cniType, injects)...)
		if c := spec.OvsConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ovs"))
		} else {
			errs = append(errs, validateOvs(specPath.Child("ovs"), c)...)
		}
	case CniTypeCustom:
		errs = append(errs, forbidInjection(cniType, injects)...)
		if c := spec.CustomCNIConfig; c != nil && *c != "" {
			var obj map[string]any
			if err := json.Unmarshal([]byte(*c), &obj); err != nil || obj == nil {
				errs = append(errs, field.Invalid(specPath.Child("customCNI"), *c, "must be a JSON object (the whole CNI configuration)"))
			}
		}
	}

	errs = append(errs, ValidateCoordinatorSpec(spec.CoordinatorConfig, specPath.Child("coordinator"))...)
	for i, s := range spec.ChainCNIJsonData {
		// The same test libcni applies when it loads the NAD: a JSON object with a plugin type.
		var conf struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(s), &conf); err != nil {
			errs = append(errs, field.Invalid(specPath.Child("chainCNIJsonData").Index(i), s, "must be a JSON object describing a CNI plugin: "+err.Error()))
		} else if conf.Type == "" {
			errs = append(errs, field.Invalid(specPath.Child("chainCNIJsonData").Index(i), s, `must be a JSON object with a non-empty "type"`))
		}
	}
	return errs
}

// ValidateSpiderMultusConfigUpdate validates newSMC and keeps the generated NAD's name stable: the
// controller would otherwise leave the old NAD behind and Pods referring to it would break. The
// name is the cr-name annotation or the SMC name, so adding, changing or removing the annotation is
// refused unless the resulting name stays the same.
func ValidateSpiderMultusConfigUpdate(newSMC, oldSMC *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	oldName, newName := nadName(oldSMC), nadName(newSMC)
	if oldName != newName {
		errs = append(errs, field.Forbidden(annotationsPath.Key(AnnoMultusConfigName), fmt.Sprintf(
			"is not changeable: the generated NetworkAttachmentDefinition would be renamed from %q to %q", oldName, newName)))
	}
	return append(errs, ValidateSpiderMultusConfig(newSMC)...)
}

func nadName(smc *SpiderMultusConfig) string {
	if n, ok := smc.Annotations[AnnoMultusConfigName]; ok {
		return n
	}
	return smc.Name
}

func validateMultusAnnotations(smc *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	if n, ok := smc.Annotations[AnnoMultusConfigName]; ok {
		for _, m := range k8svalidation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(annotationsPath.Key(AnnoMultusConfigName), n, "not a valid NetworkAttachmentDefinition name: "+m))
		}
	}
	if v, ok := smc.Annotations[AnnoMultusConfigCNIVersion]; ok && !slices.Contains(supportedCNIVersions, v) {
		errs = append(errs, field.NotSupported(annotationsPath.Key(AnnoMultusConfigCNIVersion), v, supportedCNIVersions))
	}
	return errs
}

func injectAnnotations(smc *SpiderMultusConfig) []string {
	var out []string
	for _, k := range []string{AnnoRDMAResourceInject, AnnoNetworkResourceInject} {
		if _, ok := smc.Annotations[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// forbidInjection rejects resource injection for types whose NAD names no device resource to inject.
func forbidInjection(cniType string, keys []string) field.ErrorList {
	var errs field.ErrorList
	for _, k := range keys {
		errs = append(errs, field.Forbidden(annotationsPath.Key(k),
			fmt.Sprintf("cniType %s does not support RDMA or network resource injection", cniType)))
	}
	return errs
}

func requiredSubObject(cniType, jsonName string) *field.Error {
	return field.Required(specPath.Child(jsonName), fmt.Sprintf("is required when cniType is %s", cniType))
}

// validateVlanLike checks what macvlan, ipvlan and vlan share: masters, bond, mtu, pools.
func validateVlanLike(p *field.Path, masters []string, bond *BondConfig, mtu *int32, pools *SpiderpoolPools) field.ErrorList {
	var errs field.ErrorList
	if len(masters) == 0 {
		errs = append(errs, field.Required(p.Child("master"), "at least one host interface is required"))
	}
	for i, m := range masters {
		if ferr := validateIfName(p.Child("master").Index(i), m); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	// Several masters are only usable through the bond that ifacer builds from them.
	if len(masters) >= 2 {
		switch {
		case bond == nil:
			errs = append(errs, field.Required(p.Child("bond"), "is required when more than one master is given"))
		case bond.Name == "":
			errs = append(errs, field.Required(p.Child("bond", "name"), "is required when more than one master is given"))
		}
	}
	if bond != nil {
		if bond.Name != "" {
			if ferr := validateIfName(p.Child("bond", "name"), bond.Name); ferr != nil {
				errs = append(errs, ferr)
			}
		}
		if bond.Mode < 0 || bond.Mode > 6 {
			errs = append(errs, field.Invalid(p.Child("bond", "mode"), bond.Mode, "must be a bonding mode between 0 (balance-rr) and 6 (balance-alb)"))
		}
	}
	if mtu != nil && *mtu < 0 {
		errs = append(errs, field.Invalid(p.Child("mtu"), *mtu, "must be greater than or equal to 0 (0 keeps the kernel default)"))
	}
	return append(errs, validatePools(p.Child("ippools"), pools, false)...)
}

func validateVlanID(p *field.Path, id *int32) field.ErrorList {
	if id != nil && (*id < 0 || *id > 4094) {
		return field.ErrorList{field.Invalid(p, *id, "must be between 0 and 4094")}
	}
	return nil
}

// validateVlanMode checks the vlan plugin's modes: manual carries the tag here, auto takes it from
// elsewhere and so must not carry one. A nil mode is manual, the schema default.
func validateVlanMode(p *field.Path, mode *string, id *int32) field.ErrorList {
	m := "manual"
	if mode != nil {
		m = *mode
	}
	switch m {
	case "manual":
		if id == nil {
			return field.ErrorList{field.Required(p.Child("vlanID"), "is required when vlanMode is manual")}
		}
		return validateVlanID(p.Child("vlanID"), id)
	case "auto":
		if id != nil {
			return field.ErrorList{field.Forbidden(p.Child("vlanID"), "must not be set when vlanMode is auto")}
		}
		return nil
	default:
		return field.ErrorList{field.NotSupported(p.Child("vlanMode"), m, vlanModes)}
	}
}

func validateSriov(p *field.Path, c *SpiderSRIOVCniConfig) field.ErrorList {
	var errs field.ErrorList
	if c.ResourceName == nil || *c.ResourceName == "" {
		errs = append(errs, field.Required(p.Child("resourceName"), "the device-plugin resource of the VFs is required"))
	}
	errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
	if c.MTU != nil && *c.MTU < 0 {
		errs = append(errs, field.Invalid(p.Child("mtu"), *c.MTU, "must be greater than or equal to 0"))
	}
	if c.MinTxRateMbps != nil && *c.MinTxRateMbps < 0 {
		errs = append(errs, field.Invalid(p.Child("minTxRateMbps"), *c.MinTxRateMbps, "must be greater than or equal to 0"))
	}
	if c.MaxTxRateMbps != nil && *c.MaxTxRateMbps < 0 {
		errs = append(errs, field.Invalid(p.Child("maxTxRateMbps"), *c.MaxTxRateMbps, "must be greater than or equal to 0"))
	}
	if c.MinTxRateMbps != nil && c.MaxTxRateMbps != nil && *c.MinTxRateMbps > *c.MaxTxRateMbps {
		errs = append(errs, field.Invalid(p.Child("minTxRateMbps"), *c.MinTxRateMbps,
			fmt.Sprintf("must not be greater than maxTxRateMbps (%d)", *c.MaxTxRateMbps)))
	}
	return append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
}

func validateOvs(p *field.Path, c *SpiderOvsCniConfig) field.ErrorList {
	var errs field.ErrorList
	if c.BrName == "" {
		errs = append(errs, field.Required(p.Child("bridge"), "the Open vSwitch bridge is required"))
	}
	errs = append(errs, validateVlanID(p.Child("vlan"), c.VlanTag)...)
	for i, t := range c.Trunk {
		tp := p.Child("trunk").Index(i)
		if t == nil {
			errs = append(errs, field.Required(tp, "a trunk entry must not be null"))
			continue
		}
		for _, v := range []struct {
			name string
			id   *uint
		}{{"minID", t.MinID}, {"maxID", t.MaxID}, {"id", t.ID}} {
			if v.id != nil && *v.id > 4094 {
				errs = append(errs, field.Invalid(tp.Child(v.name), *v.id, "must be between 0 and 4094"))
			}
		}
		if t.MinID != nil && t.MaxID != nil && *t.MinID > *t.MaxID {
			errs = append(errs, field.Invalid(tp.Child("minID"), *t.MinID, fmt.Sprintf("must not be greater than maxID (%d)", *t.MaxID)))
		}
	}
	return append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
}

// validatePools checks the default pool names of a NAD. matchMasterSubnet needs the VF's parent
// interface, which only SR-IOV style types have; the vlan family refuses it.
func validatePools(p *field.Path, pools *SpiderpoolPools, allowMatchMaster bool) field.ErrorList {
	if pools == nil {
		return nil
	}
	var errs field.ErrorList
	if !allowMatchMaster && pools.MatchMasterSubnet != nil && *pools.MatchMasterSubnet {
		errs = append(errs, field.Forbidden(p.Child("matchMasterSubnet"), "is only supported by cniType sriov"))
	}
	for i, n := range pools.IPv4IPPool {
		if ferr := validatePoolNamePattern(p.Child("ipv4").Index(i), n); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	for i, n := range pools.IPv6IPPool {
		if ferr := validatePoolNamePattern(p.Child("ipv6").Index(i), n); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs
}

// validatePoolNamePattern accepts a pool name or a shell pattern over pool names ("rdmarail1-*"),
// matched with filepath.Match by the IPAM plugin.
func validatePoolNamePattern(p *field.Path, s string) *field.Error {
	if !strings.ContainsAny(s, `*?[`) {
		if msgs := k8svalidation.IsDNS1123Subdomain(s); len(msgs) != 0 {
			return field.Invalid(p, s, "not a valid SpiderIPPool name: "+strings.Join(msgs, "; "))
		}
		return nil
	}
	if _, err := filepath.Match(s, ""); err != nil {
		return field.Invalid(p, s, "not a valid pool name pattern: "+err.Error())
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(`.-*?[]!^\`, r)) {
			return field.Invalid(p, s, fmt.Sprintf("character %q cannot appear in a pool name pattern", r))
		}
	}
	return nil
}
