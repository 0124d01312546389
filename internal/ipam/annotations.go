package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// CheckInterfaceName refuses what the kernel would not take as an
// interface name in a pod (see checkIfName), for callers outside the
// annotations that name one.
func CheckInterfaceName(name string) error { return checkIfName(name) }

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

// Bounds of the ipam.spidernet.io/dns annotation: those the Pod API sets on
// spec.dnsConfig, so that the annotation cannot ask a runtime for a
// resolv.conf the kubelet would refuse.
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
	maxDNSNameLen         = 253
	maxDNSLabelLen        = 63
	maxDNSOptionLen       = 255
)

// DNS is the value of the pod annotation ipam.spidernet.io/dns: resolver
// settings handed back, unchanged, as the dns of the interface's CNI result.
// Upstream defines the key without giving it a meaning; ours is the CNI
// result's DNS object:
//
//	{"nameservers":["10.6.0.53"],"domain":"corp.example","search":["corp.example"],"options":["ndots:2"]}
type DNS struct {
	Nameservers []netip.Addr
	Domain      string
	Search      []string
	Options     []string
}

// IsEmpty reports whether d sets nothing.
func (d DNS) IsEmpty() bool {
	return len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

type dnsJSON struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// NameserverStrings returns the nameservers in the form ParseDNS reads back.
func (d DNS) NameserverStrings() []string {
	if len(d.Nameservers) == 0 {
		return nil
	}
	out := make([]string, len(d.Nameservers))
	for i, a := range d.Nameservers {
		out[i] = ip.FormatAddr(a)
	}
	return out
}

// MarshalJSON writes the annotation's form.
func (d DNS) MarshalJSON() ([]byte, error) {
	return json.Marshal(dnsJSON{Nameservers: d.NameserverStrings(), Domain: d.Domain, Search: d.Search, Options: d.Options})
}

// ParseDNS parses the value of ipam.spidernet.io/dns. It must be one JSON
// object with only the keys nameservers, domain, search and options (a
// misspelt key is refused rather than silently ignored). Nameservers are IP
// addresses; domain and search entries are DNS names (a trailing dot
// allowed); options are resolv.conf option words such as "ndots:2". Nothing
// may contain white space, which would let one entry turn into several
// lines or words of the resolv.conf a runtime writes. The counts are
// bounded as the Pod API bounds spec.dnsConfig: 3 nameservers, 32 search
// domains of 2048 characters in all.
func ParseDNS(value string) (DNS, error) {
	const key = v2beta1.AnnoPodDNS
	dec := json.NewDecoder(strings.NewReader(value))
	dec.DisallowUnknownFields()
	var raw *dnsJSON
	if err := dec.Decode(&raw); err != nil {
		return DNS{}, annotationError(key, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return DNS{}, annotationError(key, errors.New("trailing data after the JSON object"))
	}
	if raw == nil {
		return DNS{}, annotationError(key, errors.New("want a JSON object, got null"))
	}
	d, err := checkDNS(*raw)
	if err != nil {
		return DNS{}, annotationError(key, err)
	}
	return d, nil
}

func checkDNS(raw dnsJSON) (DNS, error) {
	var d DNS
	if len(raw.Nameservers) > maxDNSNameservers {
		return DNS{}, fmt.Errorf("nameservers: %d entries, at most %d", len(raw.Nameservers), maxDNSNameservers)
	}
	for i, s := range raw.Nameservers {
		a, err := ip.ParseAddr(s)
		if err != nil {
			return DNS{}, fmt.Errorf("nameservers[%d]: %w", i, err)
		}
		d.Nameservers = append(d.Nameservers, a)
	}
	if raw.Domain != "" {
		if err := checkDNSName(raw.Domain); err != nil {
			return DNS{}, fmt.Errorf("domain: %w", err)
		}
		d.Domain = raw.Domain
	}
	if len(raw.Search) > maxDNSSearchPaths {
		return DNS{}, fmt.Errorf("search: %d entries, at most %d", len(raw.Search), maxDNSSearchPaths)
	}
	chars := 0
	for i, s := range raw.Search {
		if err := checkDNSName(s); err != nil {
			return DNS{}, fmt.Errorf("search[%d]: %w", i, err)
		}
		chars += len(s)
	}
	// Counted as the Pod API counts them: the names joined by single spaces.
	if n := chars + max(len(raw.Search)-1, 0); n > maxDNSSearchListChars {
		return DNS{}, fmt.Errorf("search: %d characters in all, at most %d", n, maxDNSSearchListChars)
	}
	if len(raw.Search) > 0 {
		d.Search = raw.Search
	}
	for i, s := range raw.Options {
		if err := checkDNSOption(s); err != nil {
			return DNS{}, fmt.Errorf("options[%d]: %w", i, err)
		}
	}
	if len(raw.Options) > 0 {
		d.Options = raw.Options
	}
	return d, nil
}

// checkDNSName accepts a DNS name of letters, digits, '-' and '_' in labels
// of 1 to 63 bytes, 253 bytes at most, with an optional trailing dot.
func checkDNSName(s string) error {
	name := strings.TrimSuffix(s, ".")
	switch {
	case name == "":
		return fmt.Errorf("%q is not a DNS name", s)
	case len(name) > maxDNSNameLen:
		return fmt.Errorf("%q is longer than %d bytes", s, maxDNSNameLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > maxDNSLabelLen {
			return fmt.Errorf("%q is not a DNS name: labels must have 1 to %d bytes", s, maxDNSLabelLen)
		}
		if strings.IndexFunc(label, func(r rune) bool { return !isDNSNameRune(r) }) >= 0 {
			return fmt.Errorf("%q is not a DNS name: only letters, digits, '-' and '_' are allowed in labels", s)
		}
	}
	return nil
}

func isDNSNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// checkDNSOption accepts a resolv.conf option word: "rotate", "ndots:2",
// "single-request-reopen".
func checkDNSOption(s string) error {
	switch {
	case s == "":
		return errors.New("empty option")
	case len(s) > maxDNSOptionLen:
		return fmt.Errorf("option %q is longer than %d bytes", s, maxDNSOptionLen)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !isDNSNameRune(r) && r != '.' && r != ':' }) >= 0 {
		return fmt.Errorf("option %q: only letters, digits and '-', '_', '.', ':' are allowed", s)
	}
	return nil
}
