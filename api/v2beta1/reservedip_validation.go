package v2beta1

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

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
