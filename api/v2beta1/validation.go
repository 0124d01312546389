package v2beta1

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The validation rules of docs/design/behaviour.md#admission-webhooks live beside each kind in <kind>_validation.go: the
// object-local rules and the cross-object checks that only need the other objects handed in. This
// file holds what they share (field paths, CIDR, address, range and ipVersion checks, immutability,
// interface names); addrspec_validation.go holds the address rules of pools and subnets. The
// admission webhooks and the unit tests call the same functions, so every error names the exact
// field (spec.ips[2], spec.routes[0].gw, ...).
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
