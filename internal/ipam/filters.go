package ipam

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Filter returns the candidates of family version that req may use, in
// their order. The checks of docs/design/behaviour.md#pool-filters run in order and a pool is refused
// by the first that fails:
//
//  1. terminating (deletionTimestamp set);
//  2. spec.disable;
//  3. spec.ipVersion other than version;
//  4. spec.nodeName not listing req.NodeName, else spec.nodeAffinity not
//     matching req.NodeLabels;
//  5. spec.namespaceName not listing req.PodNamespace, else
//     spec.namespaceAffinity not matching req.NamespaceLabels;
//  6. spec.podAffinity not matching req.PodLabels (for auto-created pools:
//     not naming req.Controller);
//  7. spec.multusName not listing the NAD of req.IfName (see ResolveNAD;
//     entries without "/" are in cfg.InstallNamespace);
//  8. with req.Master set (match_master_subnet), spec.subnet holding none
//     of the master's addresses.
//
// When every candidate is refused it returns a *FilterError that lists each
// pool and why. An error from resolving the NAD (a malformed Multus
// annotation) is returned as is.
func Filter(req *Request, cfg *Config, version int, pools []*v2beta1.SpiderIPPool) ([]*v2beta1.SpiderIPPool, error) {
	f := filter{req: req, cfg: cfg, version: version}
	var (
		kept     []*v2beta1.SpiderIPPool
		refusals []Refusal
	)
	for _, p := range pools {
		reason, err := f.refuse(p)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			refusals = append(refusals, Refusal{Pool: p.Name, Reason: reason})
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		names := make([]string, len(pools))
		for i, p := range pools {
			names[i] = p.Name
		}
		return nil, &FilterError{Version: version, NIC: req.IfName, Pools: names, Refusals: refusals}
	}
	return kept, nil
}

// filter holds what is worked out once per interface: the NAD it came from.
type filter struct {
	req     *Request
	cfg     *Config
	version int

	nadDone bool
	nad     string
}

// refuse returns why f.req may not use p, or "" if it may.
func (f *filter) refuse(p *v2beta1.SpiderIPPool) (string, error) {
	s := &p.Spec
	req := f.req
	if p.DeletionTimestamp != nil {
		return "terminating", nil
	}
	if s.Disable != nil && *s.Disable {
		return "disabled", nil
	}
	if v := PoolVersion(p); v != f.version {
		return fmt.Sprintf("ipVersion is %d, not %d", v, f.version), nil
	}

	if len(s.NodeName) > 0 {
		if !slices.Contains(s.NodeName, req.NodeName) {
			return fmt.Sprintf("nodeName does not include %q", req.NodeName), nil
		}
	} else if s.NodeAffinity != nil {
		if reason := mismatch("nodeAffinity", s.NodeAffinity, req.NodeLabels, fmt.Sprintf("node %q", req.NodeName)); reason != "" {
			return reason, nil
		}
	}

	if len(s.NamespaceName) > 0 {
		if !slices.Contains(s.NamespaceName, req.PodNamespace) {
			return fmt.Sprintf("namespaceName does not include %q", req.PodNamespace), nil
		}
	} else if s.NamespaceAffinity != nil {
		if reason := mismatch("namespaceAffinity", s.NamespaceAffinity, req.NamespaceLabels, fmt.Sprintf("namespace %q", req.PodNamespace)); reason != "" {
			return reason, nil
		}
	}

	if s.PodAffinity != nil {
		if isAutoPool(p) {
			if !matchesController(s.PodAffinity, req.Controller) {
				c := req.Controller
				return fmt.Sprintf("podAffinity of auto-created IPPool does not match %s %s/%s", c.Kind, c.Namespace, c.Name), nil
			}
		} else if reason := mismatch("podAffinity", s.PodAffinity, req.PodLabels, fmt.Sprintf("pod %q", req.Pod())); reason != "" {
			return reason, nil
		}
	}

	if len(s.MultusName) > 0 {
		if !f.nadDone {
			nad, err := ResolveNAD(req, f.cfg)
			if err != nil {
				return "", err
			}
			f.nad, f.nadDone = nad, true
		}
		if f.nad == "" {
			return fmt.Sprintf("multusName is set but no NetworkAttachmentDefinition is known for %s", req.IfName), nil
		}
		if !slices.ContainsFunc(s.MultusName, func(m string) bool { return f.qualify(m) == f.nad }) {
			return fmt.Sprintf("multusName does not include %q", f.nad), nil
		}
	}

	if req.Master != nil {
		if reason := masterMismatch(p, req.Master); reason != "" {
			return reason, nil
		}
	}
	return "", nil
}

// masterMismatch returns why p's subnet holds no address of master ("" when
// it holds one). Upstream's rule: the pool serves the VF only when the VF's
// PF sits in the pool's subnet, i.e. on the same underlay network.
func masterMismatch(p *v2beta1.SpiderIPPool, m *Master) string {
	subnet, err := p.Spec.SubnetPrefix()
	if err != nil {
		return fmt.Sprintf("spec.subnet: %v", err)
	}
	if len(m.Addrs) == 0 {
		return fmt.Sprintf("subnet %s holds no address of master %s, which has none (match_master_subnet)", ip.FormatPrefix(subnet), m.Name)
	}
	addrs := make([]string, len(m.Addrs))
	for i, a := range m.Addrs {
		if subnet.Contains(a.Addr()) {
			return ""
		}
		addrs[i] = a.String()
	}
	return fmt.Sprintf("subnet %s holds no address of master %s (%s) (match_master_subnet)",
		ip.FormatPrefix(subnet), m.Name, strings.Join(addrs, ", "))
}

// qualify puts a multusName entry without namespace into the install namespace.
func (f *filter) qualify(multusName string) string {
	if strings.Contains(multusName, "/") {
		return multusName
	}
	return f.cfg.InstallNamespace + "/" + multusName
}

// mismatch returns why the labels set of subject do not satisfy sel ("" when
// they do).
func mismatch(field string, sel *metav1.LabelSelector, set map[string]string, subject string) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Sprintf("invalid %s: %v", field, err)
	}
	if !s.Matches(labels.Set(set)) {
		return fmt.Sprintf("%s %q does not match the labels of %s", field, s.String(), subject)
	}
	return ""
}

// isAutoPool reports whether p was created by the SpiderSubnet controller
// for one application.
func isAutoPool(p *v2beta1.SpiderIPPool) bool {
	_, ok := p.Labels[v2beta1.LabelOwnerApplicationUID]
	return ok
}

// matchesController reports whether an auto-created pool's app-* affinity
// labels name c. Auto pools match on the controller rather than the pod's
// labels so that pods of another application with copied labels cannot use
// them.
func matchesController(sel *metav1.LabelSelector, c Controller) bool {
	gv, err := schema.ParseGroupVersion(c.APIVersion)
	if err != nil || sel.MatchLabels == nil {
		return false
	}
	m := sel.MatchLabels
	return m[v2beta1.AutoPoolPodAffinityAppAPIGrp] == gv.Group &&
		m[v2beta1.AutoPoolPodAffinityAppAPIVer] == gv.Version &&
		m[v2beta1.AutoPoolPodAffinityAppKind] == c.Kind &&
		m[v2beta1.AutoPoolPodAffinityAppNS] == c.Namespace &&
		m[v2beta1.AutoPoolPodAffinityAppName] == c.Name
}
