package ipam

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Rule is the pool selection rule of docs/design/behaviour.md#pool-selection that named an interface's
// candidates, highest precedence first.
type Rule int

const (
	// RuleSubnet is the SpiderSubnet annotations ipam.spidernet.io/subnets and /subnet.
	RuleSubnet Rule = iota + 1
	// RuleInterfacePools is the pod annotation ipam.spidernet.io/ippools.
	RuleInterfacePools
	// RulePodPools is the pod annotation ipam.spidernet.io/ippool.
	RulePodPools
	// RuleNamespace is the namespace annotations ipam.spidernet.io/default-ipv{4,6}-ippool.
	RuleNamespace
	// RuleCNIConfig is the CNI configuration's default_ipv{4,6}_ippool.
	RuleCNIConfig
	// RuleClusterDefault is every pool with spec.default true.
	RuleClusterDefault
)

func (r Rule) String() string {
	switch r {
	case RuleSubnet:
		return "SpiderSubnet annotation"
	case RuleInterfacePools:
		return "pod annotation " + v2beta1.AnnoPodIPPools
	case RulePodPools:
		return "pod annotation " + v2beta1.AnnoPodIPPool
	case RuleNamespace:
		return "namespace default IPPool annotations"
	case RuleCNIConfig:
		return "CNI configuration default IPPools"
	case RuleClusterDefault:
		return "cluster default IPPools"
	}
	return fmt.Sprintf("Rule(%d)", int(r))
}

// Selection is the outcome of candidate selection for one interface: per
// family, the pools to filter and try, in order. A family without candidates
// is not allocated (docs/design/behaviour.md#pool-selection); Select never returns a Selection whose
// families are all empty.
type Selection struct {
	Rule         Rule
	IPv4, IPv6   []*v2beta1.SpiderIPPool
	CleanGateway bool
}

// Pools returns the candidates of family version (4 or 6).
func (s *Selection) Pools(version int) []*v2beta1.SpiderIPPool {
	if version == 4 {
		return s.IPv4
	}
	return s.IPv6
}

// Versions returns the families that have candidates, IPv4 first: the
// families the interface gets an address of.
func (s *Selection) Versions() []int {
	var vs []int
	if len(s.IPv4) > 0 {
		vs = append(vs, 4)
	}
	if len(s.IPv6) > 0 {
		vs = append(vs, 6)
	}
	return vs
}

// set stores the candidates of family version.
func (s *Selection) set(version int, pools []*v2beta1.SpiderIPPool) {
	if version == 4 {
		s.IPv4 = pools
	} else {
		s.IPv6 = pools
	}
}

// familyNames spells versions for messages: "IPv4", "IPv4 or IPv6".
func familyNames(versions []int) string {
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = fmt.Sprintf("IPv%d", v)
	}
	return strings.Join(names, " or ")
}

// Select chooses the candidate pools of req.IfName among pools (the store's
// cached view, in store order) by the precedence of docs/design/behaviour.md#pool-selection; the first
// rule that names any pool wins and later rules are not consulted:
//
//  1. subnet annotations: the auto-created pools of the pod's top controller
//     (ErrFeatureDisabled without cfg.EnableAutoPool, ErrAutoPoolNotReady
//     while the controller has not created them);
//  2. the ipam.spidernet.io/ippools entry whose interface is IfName (its
//     cleangateway overrides req.CleanGateway);
//  3. ipam.spidernet.io/ippool;
//  4. the namespace's default-ipv4-ippool / default-ipv6-ippool;
//  5. the CNI configuration's default pools;
//  6. every pool with spec.default true, in store order.
//
// Names may be shell patterns, which expand to every pool of the family
// (in store order) they match. A name listed twice and a name that matches
// no pool are errors. Families are independent: an enabled family the
// winning rule names no pool of is skipped, as upstream does, so that an
// IPv4-only pool serves pods under the chart's default dual-stack switches;
// the candidates of a disabled family are ignored. Only when no enabled
// family is left with a candidate is it an ErrNoCandidatePool error.
func Select(req *Request, cfg *Config, pools []*v2beta1.SpiderIPPool) (*Selection, error) {
	versions := cfg.versions()
	if len(versions) == 0 {
		return nil, errors.New("neither IPv4 nor IPv6 is enabled")
	}
	if key, subnets, ok, err := subnetRequested(req); err != nil {
		return nil, err
	} else if ok {
		if !cfg.EnableAutoPool {
			return nil, fmt.Errorf("annotation %s needs ipam.spiderSubnet.enable and autoPool.enable: %w", key, ErrFeatureDisabled)
		}
		return selectAutoPools(req, versions, pools, key, subnets)
	}
	names, sel, err := selectNames(req)
	if err != nil {
		return nil, err
	}
	if sel.Rule == RuleClusterDefault {
		return selectDefaults(req, versions, pools, sel)
	}
	byName := make(map[string]*v2beta1.SpiderIPPool, len(pools))
	for _, p := range pools {
		byName[p.Name] = p
	}
	for _, v := range versions {
		list := names.IPv4
		if v == 6 {
			list = names.IPv6
		}
		if len(list) == 0 {
			continue // this family is not asked for: skipped, not an error
		}
		resolved, err := resolve(list, v, pools, byName)
		if err != nil {
			return nil, fmt.Errorf("IPv%d IPPools of NIC %s from %s: %w", v, req.IfName, sel.Rule, err)
		}
		sel.set(v, resolved)
	}
	if len(sel.Versions()) == 0 {
		// The rule named pools of a disabled family only.
		return nil, fmt.Errorf("%w, no %s IPPool specified for NIC %s by %s",
			ErrNoCandidatePool, familyNames(versions), req.IfName, sel.Rule)
	}
	return sel, nil
}

// selectNames applies rules 2 to 5 and returns the names of the first that
// names anything, or a Selection with RuleClusterDefault.
func selectNames(req *Request) (PoolNames, *Selection, error) {
	sel := &Selection{CleanGateway: req.CleanGateway}
	anno := req.PodAnnotations

	if v, ok := anno[v2beta1.AnnoPodIPPools]; ok {
		list, err := ParseInterfacePools(v)
		if err != nil {
			return PoolNames{}, nil, err
		}
		for _, e := range list {
			if e.Interface == req.IfName && (len(e.IPv4) > 0 || len(e.IPv6) > 0) {
				sel.Rule, sel.CleanGateway = RuleInterfacePools, e.CleanGateway
				return PoolNames{IPv4: e.IPv4, IPv6: e.IPv6}, sel, nil
			}
		}
	}

	if v, ok := anno[v2beta1.AnnoPodIPPool]; ok {
		names, err := ParsePoolNames(v2beta1.AnnoPodIPPool, v)
		if err != nil {
			return PoolNames{}, nil, err
		}
		if !names.IsEmpty() {
			sel.Rule = RulePodPools
			return names, sel, nil
		}
	}

	var ns PoolNames
	for _, k := range []string{v2beta1.AnnoNSDefaultV4Pool, v2beta1.AnnoNSDefaultV6Pool} {
		v, ok := req.NamespaceAnnotations[k]
		if !ok {
			continue
		}
		list, err := ParsePoolList(k, v)
		if err != nil {
			return PoolNames{}, nil, err
		}
		if k == v2beta1.AnnoNSDefaultV4Pool {
			ns.IPv4 = list
		} else {
			ns.IPv6 = list
		}
	}
	if !ns.IsEmpty() {
		sel.Rule = RuleNamespace
		return ns, sel, nil
	}

	v4, err := checkNames("default_ipv4_ippool", req.DefaultIPv4Pools)
	if err != nil {
		return PoolNames{}, nil, fmt.Errorf("invalid CNI configuration: %w", err)
	}
	v6, err := checkNames("default_ipv6_ippool", req.DefaultIPv6Pools)
	if err != nil {
		return PoolNames{}, nil, fmt.Errorf("invalid CNI configuration: %w", err)
	}
	if len(v4) > 0 || len(v6) > 0 {
		sel.Rule = RuleCNIConfig
		return PoolNames{IPv4: v4, IPv6: v6}, sel, nil
	}

	sel.Rule = RuleClusterDefault
	return PoolNames{}, sel, nil
}

// subnetRequested reports whether a subnet annotation names SpiderSubnets
// for req.IfName, which annotation, and the subnets per family.
func subnetRequested(req *Request) (string, PoolNames, bool, error) {
	if v, ok := req.PodAnnotations[v2beta1.AnnoSpiderSubnets]; ok {
		list, err := ParseInterfaceSubnets(v)
		if err != nil {
			return "", PoolNames{}, false, err
		}
		for _, e := range list {
			if e.Interface == req.IfName && (len(e.IPv4) > 0 || len(e.IPv6) > 0) {
				return v2beta1.AnnoSpiderSubnets, PoolNames{IPv4: e.IPv4, IPv6: e.IPv6}, true, nil
			}
		}
	}
	if v, ok := req.PodAnnotations[v2beta1.AnnoSpiderSubnet]; ok {
		names, err := ParsePoolNames(v2beta1.AnnoSpiderSubnet, v)
		if err != nil {
			return "", PoolNames{}, false, err
		}
		if !names.IsEmpty() {
			return v2beta1.AnnoSpiderSubnet, names, true, nil
		}
	}
	return "", PoolNames{}, false, nil
}

// selectAutoPools is rule 1: the pools the SpiderSubnet controller created
// for the pod's top controller, this interface and each enabled family the
// annotation names subnets of, out of one of those subnets. They are found
// by their labels, never by name (the name ends in random characters). A
// family without subnets is skipped like a family without pools. A pool not
// created yet is a transient ErrAutoPoolNotReady: the controller is behind
// the workload, and the kubelet retries the ADD.
func selectAutoPools(req *Request, versions []int, pools []*v2beta1.SpiderIPPool, key string, subnets PoolNames) (*Selection, error) {
	sel := &Selection{Rule: RuleSubnet, CleanGateway: req.CleanGateway}
	c := req.Controller
	for _, v := range versions {
		names := subnets.IPv4
		if v == 6 {
			names = subnets.IPv6
		}
		if len(names) == 0 {
			continue
		}
		var found []*v2beta1.SpiderIPPool
		for _, p := range pools {
			l := p.Labels
			if isAutoPool(p) && PoolVersion(p) == v &&
				l[v2beta1.LabelOwnerApplicationKind] == c.Kind &&
				l[v2beta1.LabelOwnerApplicationNS] == c.Namespace &&
				l[v2beta1.LabelOwnerApplicationName] == c.Name &&
				l[v2beta1.LabelIPPoolInterface] == req.IfName &&
				slices.Contains(names, l[v2beta1.LabelOwnerSpiderSubnet]) {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("IPv%d IPPool of SpiderSubnet %q for NIC %s of %s %s/%s: %w",
				v, names, req.IfName, c.Kind, c.Namespace, c.Name, ErrAutoPoolNotReady)
		}
		sel.set(v, found)
	}
	if len(sel.Versions()) == 0 {
		return nil, fmt.Errorf("%w, no %s SpiderSubnet specified for NIC %s by annotation %s",
			ErrNoCandidatePool, familyNames(versions), req.IfName, key)
	}
	return sel, nil
}

// ErrAutoPoolNotReady reports that the pool a SpiderSubnet annotation asks
// for has not been created by the controller yet. It wraps ErrConflict so
// the agent reports it as transient and the kubelet retries the ADD.
var ErrAutoPoolNotReady = fmt.Errorf("auto-created IPPool not created yet: %w", ErrConflict)

// selectDefaults is rule 6: the pools with spec.default true, per enabled
// family; an enabled family without a default pool is skipped.
func selectDefaults(req *Request, versions []int, pools []*v2beta1.SpiderIPPool, sel *Selection) (*Selection, error) {
	found := false
	for _, p := range pools {
		if p.Spec.Default == nil || !*p.Spec.Default {
			continue
		}
		found = true
		if v := PoolVersion(p); slices.Contains(versions, v) {
			sel.set(v, append(sel.Pools(v), p))
		}
	}
	if !found {
		return nil, fmt.Errorf("%w, no pool selection rules of any type are specified", ErrNoCandidatePool)
	}
	if len(sel.Versions()) == 0 {
		// Default pools exist, but only of a disabled family.
		return nil, fmt.Errorf("%w, no default %s IPPool for NIC %s",
			ErrNoCandidatePool, familyNames(versions), req.IfName)
	}
	return sel, nil
}

// resolve turns names into pools. Literal names are looked up whatever
// their family (the ipVersion filter explains a mismatch); patterns expand
// to the pools of family v they match, in store order. A pool reached twice
// through overlapping patterns is tried once.
func resolve(names []string, v int, pools []*v2beta1.SpiderIPPool, byName map[string]*v2beta1.SpiderIPPool) ([]*v2beta1.SpiderIPPool, error) {
	if _, err := checkNames("", names); err != nil {
		return nil, err
	}
	var (
		out     []*v2beta1.SpiderIPPool
		unknown []string
		taken   = make(map[string]bool, len(names))
	)
	add := func(p *v2beta1.SpiderIPPool) {
		if !taken[p.Name] {
			taken[p.Name] = true
			out = append(out, p)
		}
	}
	for _, n := range names {
		if !isPattern(n) {
			p, ok := byName[n]
			if !ok {
				unknown = append(unknown, n)
				continue
			}
			add(p)
			continue
		}
		matched := false
		for _, p := range pools {
			if PoolVersion(p) != v {
				continue
			}
			// The pattern was validated by checkNames, so Match cannot fail.
			if ok, _ := filepath.Match(n, p.Name); ok {
				matched = true
				add(p)
			}
		}
		if !matched {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %q", ErrPoolNotFound, unknown)
	}
	return out, nil
}

// PoolVersion returns a pool's family: spec.ipVersion, or the family of
// spec.subnet when the webhook has not filled it in; 0 if neither is known.
func PoolVersion(p *v2beta1.SpiderIPPool) int {
	if p.Spec.IPVersion != nil {
		return int(*p.Spec.IPVersion)
	}
	return p.Spec.Version()
}
