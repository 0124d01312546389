package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// maxIfNameLen is IFNAMSIZ-1, the longest Linux interface name.
const maxIfNameLen = 15

// PoolNames is the value of the pod annotations ipam.spidernet.io/ippool and
// ipam.spidernet.io/subnet: pool (or subnet) names per family. Names may be
// shell patterns (filepath.Match) that expand to every pool of the family
// they match.
type PoolNames struct {
	IPv4 []string `json:"ipv4,omitempty"`
	IPv6 []string `json:"ipv6,omitempty"`
}

// IsEmpty reports whether no family names anything.
func (p PoolNames) IsEmpty() bool { return len(p.IPv4) == 0 && len(p.IPv6) == 0 }

// InterfacePools is one element of the pod annotation ipam.spidernet.io/ippools.
type InterfacePools struct {
	Interface    string   `json:"interface"`
	IPv4         []string `json:"ipv4,omitempty"`
	IPv6         []string `json:"ipv6,omitempty"`
	CleanGateway bool     `json:"cleangateway,omitempty"`
}

// InterfaceSubnets is one element of the pod annotation ipam.spidernet.io/subnets.
type InterfaceSubnets struct {
	Interface string   `json:"interface"`
	IPv4      []string `json:"ipv4,omitempty"`
	IPv6      []string `json:"ipv6,omitempty"`
}

// Route is a destination reached through a gateway, from a pool's
// spec.routes or the pod annotation ipam.spidernet.io/routes. Both ends are
// of the same family.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

type routeJSON struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw"`
}

// MarshalJSON writes the {"dst","gw"} form of the CRDs and the annotation.
func (r Route) MarshalJSON() ([]byte, error) {
	// ip's formatters write IPv4-mapped IPv6 addresses in hex, the form parseRoute reads back.
	return json.Marshal(routeJSON{Dst: ip.FormatPrefix(r.Dst), Gw: ip.FormatAddr(r.Gw)})
}

// UnmarshalJSON reads and validates the {"dst","gw"} form.
func (r *Route) UnmarshalJSON(b []byte) error {
	var rj routeJSON
	if err := json.Unmarshal(b, &rj); err != nil {
		return err
	}
	parsed, err := parseRoute(rj.Dst, rj.Gw)
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// parseRoute validates one route: dst a CIDR, gw an address of the same
// family. dst may have host bits set, as upstream accepts in pool routes and
// in the routes annotation; it is masked, since the kernel refuses a route
// to "10.6.0.1/16".
func parseRoute(dst, gw string) (Route, error) {
	p, err := ip.ParsePrefixLenient(dst)
	if err != nil {
		return Route{}, fmt.Errorf("dst: %w", err)
	}
	a, err := ip.ParseAddr(gw)
	if err != nil {
		return Route{}, fmt.Errorf("gw: %w", err)
	}
	if p.Addr().Is4() != a.Is4() {
		return Route{}, fmt.Errorf("dst %s and gw %s are of different IP families", p, a)
	}
	return Route{Dst: p, Gw: a}, nil
}

// ParsePoolNames parses the value of ipam.spidernet.io/ippool or
// ipam.spidernet.io/subnet (key names which, for the error message):
// {"ipv4":[...],"ipv6":[...]}.
func ParsePoolNames(key, value string) (PoolNames, error) {
	var p PoolNames
	if err := json.Unmarshal([]byte(value), &p); err != nil {
		return PoolNames{}, annotationError(key, err)
	}
	var err error
	if p.IPv4, err = checkNames("ipv4", p.IPv4); err != nil {
		return PoolNames{}, annotationError(key, err)
	}
	if p.IPv6, err = checkNames("ipv6", p.IPv6); err != nil {
		return PoolNames{}, annotationError(key, err)
	}
	return p, nil
}

// ParseInterfacePools parses the value of ipam.spidernet.io/ippools: a list of
// {"interface","ipv4","ipv6","cleangateway"}. Every element must name its
// interface, and an interface may appear only once.
func ParseInterfacePools(value string) ([]InterfacePools, error) {
	return parseInterfaceList(v2beta1.AnnoPodIPPools, value, func(e *InterfacePools) (string, *[]string, *[]string) {
		return e.Interface, &e.IPv4, &e.IPv6
	})
}

// ParseInterfaceSubnets parses the value of ipam.spidernet.io/subnets, with
// the same rules as ParseInterfacePools.
func ParseInterfaceSubnets(value string) ([]InterfaceSubnets, error) {
	return parseInterfaceList(v2beta1.AnnoSpiderSubnets, value, func(e *InterfaceSubnets) (string, *[]string, *[]string) {
		return e.Interface, &e.IPv4, &e.IPv6
	})
}

// parseInterfaceList decodes a per-interface annotation and checks each
// element through the fields that parts exposes.
func parseInterfaceList[T any](key, value string, parts func(*T) (nic string, v4, v6 *[]string)) ([]T, error) {
	var list []T
	if err := json.Unmarshal([]byte(value), &list); err != nil {
		return nil, annotationError(key, err)
	}
	seen := make(map[string]bool, len(list))
	for i := range list {
		nic, v4, v6 := parts(&list[i])
		if err := checkInterface(nic, seen); err != nil {
			return nil, annotationError(key, fmt.Errorf("element %d: %w", i, err))
		}
		var err error
		if *v4, err = checkNames("ipv4", *v4); err != nil {
			return nil, annotationError(key, fmt.Errorf("interface %s: %w", nic, err))
		}
		if *v6, err = checkNames("ipv6", *v6); err != nil {
			return nil, annotationError(key, fmt.Errorf("interface %s: %w", nic, err))
		}
	}
	return list, nil
}

// ParsePoolList parses a JSON array of pool names, the value of the namespace
// annotations ipam.spidernet.io/default-ipv4-ippool and default-ipv6-ippool
// (key names which).
func ParsePoolList(key, value string) ([]string, error) {
	var names []string
	if err := json.Unmarshal([]byte(value), &names); err != nil {
		return nil, annotationError(key, err)
	}
	names, err := checkNames("", names)
	if err != nil {
		return nil, annotationError(key, err)
	}
	return names, nil
}

// ParseRoutes parses the value of ipam.spidernet.io/routes: a list of
// {"dst":"10.0.0.0/16","gw":"192.168.1.1"}. dst must be a canonical CIDR of
// gw's family and appear once.
func ParseRoutes(value string) ([]Route, error) {
	const key = v2beta1.AnnoPodRoutes
	var raw []routeJSON
	if err := json.Unmarshal([]byte(value), &raw); err != nil {
		return nil, annotationError(key, err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	routes := make([]Route, 0, len(raw))
	seen := make(map[netip.Prefix]bool, len(raw))
	for i, rj := range raw {
		r, err := parseRoute(rj.Dst, rj.Gw)
		if err != nil {
			return nil, annotationError(key, fmt.Errorf("route %d: %w", i, err))
		}
		if seen[r.Dst] {
			return nil, annotationError(key, fmt.Errorf("route %d: duplicate dst %s", i, r.Dst))
		}
		seen[r.Dst] = true
		routes = append(routes, r)
	}
	return routes, nil
}

// checkNames validates a list of pool names: non-empty, valid patterns when
// they contain pattern characters, no duplicates. It returns nil for an empty
// list so that "[]" and an absent field compare equal. field, when set,
// prefixes the errors.
func checkNames(field string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	prefix := ""
	if field != "" {
		prefix = field + ": "
	}
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("%selement %d: empty pool name", prefix, i)
		}
		if strings.TrimSpace(n) != n {
			return nil, fmt.Errorf("%selement %d %q: leading or trailing white space", prefix, i, n)
		}
		if isPattern(n) {
			if _, err := filepath.Match(n, ""); err != nil {
				return nil, fmt.Errorf("%selement %d %q: %w", prefix, i, n, err)
			}
		}
		if seen[n] {
			return nil, fmt.Errorf("%sduplicate pool %q", prefix, n)
		}
		seen[n] = true
	}
	return names, nil
}

// checkInterface validates an interface name of a per-interface annotation
// and that it was not seen before.
func checkInterface(name string, seen map[string]bool) error {
	if err := checkIfName(name); err != nil {
		return err
	}
	if seen[name] {
		return fmt.Errorf("duplicate interface %q", name)
	}
	seen[name] = true
	return nil
}

// checkIfName applies the kernel's rules for interface names (dev_valid_name)
// and, since annotations are UTF-8 text, also refuses invalid UTF-8 and
// control characters.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface is required")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("interface %q is longer than %d bytes", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface %q is not a valid name", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("interface %q is not valid UTF-8", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("interface %q contains '/', ':', white space or a control character", name)
	}
	return nil
}

// isPattern reports whether a pool name uses filepath.Match syntax.
func isPattern(name string) bool { return strings.ContainsAny(name, `*?[\`) }
