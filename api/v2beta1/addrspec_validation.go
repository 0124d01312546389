package v2beta1

import (
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The address rules SpiderIPPool and SpiderSubnet share: ipVersion, subnet, ips, excludeIPs,
// gateway, routes.

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
