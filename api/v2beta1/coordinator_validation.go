package v2beta1

import (
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

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
