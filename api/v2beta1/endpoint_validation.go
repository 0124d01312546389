package v2beta1

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

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
