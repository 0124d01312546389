package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
)

// Network names a NetworkAttachmentDefinition attached to a pod: one element
// of the Multus annotation k8s.v1.cni.cncf.io/networks, or the value of
// v1.multus-cni.io/default-network. Only the fields that decide which NAD an
// interface came from are kept.
type Network struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Interface is the interface name requested in the pod ("@ifname" or
	// "interface"); empty means Multus names it net<i>.
	Interface string `json:"interface,omitempty"`
}

// NAD returns "namespace/name", the form pool spec.multusName lists.
func (n Network) NAD() string { return n.Namespace + "/" + n.Name }

// networkJSON is the NetworkSelectionElement subset accepted in the JSON
// form; interfaceRequest is the pre-v3.2 Multus spelling of interface.
type networkJSON struct {
	Namespace        string `json:"namespace"`
	Name             string `json:"name"`
	Interface        string `json:"interface"`
	InterfaceRequest string `json:"interfaceRequest"`
}

// dns1123Label is what Multus accepts for names in the text form.
var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ParseNetworks parses the value of k8s.v1.cni.cncf.io/networks the way
// Multus does: a JSON list of network selection elements when the value
// contains '[', '{' or '"', otherwise a comma list of "name",
// "namespace/name" or "namespace/name@ifname". Elements without a namespace
// get podNamespace.
func ParseNetworks(value, podNamespace string) ([]Network, error) {
	nets, err := parseNetworks(value, podNamespace)
	if err != nil {
		return nil, annotationError(v2beta1.AnnoMultusNetworks, err)
	}
	return nets, nil
}

// ParseDefaultNetwork parses the value of v1.multus-cni.io/default-network
// (one element, text or JSON form). A missing namespace means the Spiderpool
// install namespace, because Multus looks cluster networks up in its own
// namespace.
func ParseDefaultNetwork(value, installNamespace string) (Network, error) {
	nets, err := parseNetworks(value, installNamespace)
	if err == nil && len(nets) != 1 {
		err = fmt.Errorf("want exactly one network, got %d", len(nets))
	}
	if err != nil {
		return Network{}, annotationError(v2beta1.AnnoMultusDefaultNetwork, err)
	}
	return nets[0], nil
}

func parseNetworks(value, defaultNamespace string) ([]Network, error) {
	if strings.TrimSpace(value) == "" {
		return nil, errors.New("empty value")
	}
	var nets []Network
	if strings.ContainsAny(value, `[{"`) {
		var raw []networkJSON
		if err := json.Unmarshal([]byte(value), &raw); err != nil {
			return nil, err
		}
		for i, r := range raw {
			n := Network{Namespace: r.Namespace, Name: r.Name, Interface: r.Interface}
			if n.Interface == "" {
				n.Interface = r.InterfaceRequest
			}
			if n.Name == "" {
				return nil, fmt.Errorf("element %d: name is required", i)
			}
			if n.Interface != "" {
				if err := checkIfName(n.Interface); err != nil {
					return nil, fmt.Errorf("element %d: %w", i, err)
				}
			}
			nets = append(nets, n)
		}
	} else {
		for i, item := range strings.Split(value, ",") {
			n, err := parseNetworkText(strings.TrimSpace(item))
			if err != nil {
				return nil, fmt.Errorf("element %d %q: %w", i, item, err)
			}
			nets = append(nets, n)
		}
	}
	for i := range nets {
		if nets[i].Namespace == "" {
			nets[i].Namespace = defaultNamespace
		}
	}
	return nets, nil
}

// parseNetworkText parses "name", "namespace/name" or "namespace/name@ifname".
func parseNetworkText(s string) (Network, error) {
	var n Network
	rest := s
	if ns, name, ok := strings.Cut(s, "/"); ok {
		n.Namespace, rest = strings.TrimSpace(ns), name
		if strings.Contains(rest, "/") {
			return Network{}, errors.New("more than one '/'")
		}
	}
	name, ifName, hasIf := strings.Cut(rest, "@")
	n.Name = strings.TrimSpace(name)
	if hasIf {
		n.Interface = strings.TrimSpace(ifName)
		if strings.Contains(n.Interface, "@") {
			return Network{}, errors.New("more than one '@'")
		}
		if err := checkIfName(n.Interface); err != nil {
			return Network{}, err
		}
	}
	if n.Name == "" {
		return Network{}, errors.New("name is required")
	}
	for _, part := range []string{n.Namespace, n.Name} {
		if part != "" && !dns1123Label.MatchString(part) {
			return Network{}, fmt.Errorf("%q is not a DNS-1123 label (lower case alphanumerics and '-', starting and ending alphanumeric)", part)
		}
	}
	return n, nil
}

// ResolveNAD returns "namespace/name" of the NetworkAttachmentDefinition that
// created interface req.IfName (docs/design/behaviour.md#multusname-matching), or "" when it cannot be known:
//   - eth0 (or "0"), the first NIC: the pod annotation
//     v1.multus-cni.io/default-network, else cfg.ClusterDefaultNAD (resolved
//     by multusconf.ResolveClusterNetwork, as for Multus's configuration); a
//     missing namespace means cfg.InstallNamespace;
//   - any other NIC: the element of k8s.v1.cni.cncf.io/networks whose
//     requested interface is IfName (elements without one are net1, net2,
//     ... by position), or whose 1-based position is IfName when IfName is a
//     number; a missing namespace means the pod's.
func ResolveNAD(req *Request, cfg *Config) (string, error) {
	if req.IfName == v2beta1.ClusterDefaultInterfaceName || req.IfName == "0" {
		if v, ok := req.PodAnnotations[v2beta1.AnnoMultusDefaultNetwork]; ok {
			n, err := ParseDefaultNetwork(v, cfg.InstallNamespace)
			if err != nil {
				return "", err
			}
			return n.NAD(), nil
		}
		if cfg.ClusterDefaultNAD == "" {
			return "", nil
		}
		// The NAD Multus gives eth0: resolved by the function that writes Multus's
		// configuration, so that both name the same NetworkAttachmentDefinition.
		ns, name, err := multusconf.ResolveClusterNetwork(cfg.ClusterDefaultNAD, cfg.InstallNamespace)
		if err != nil {
			return "", err
		}
		return Network{Namespace: ns, Name: name}.NAD(), nil
	}
	v, ok := req.PodAnnotations[v2beta1.AnnoMultusNetworks]
	if !ok {
		return "", nil
	}
	nets, err := ParseNetworks(v, req.PodNamespace)
	if err != nil {
		return "", err
	}
	for i, n := range nets {
		name := n.Interface
		if name == "" {
			name = "net" + strconv.Itoa(i+1)
		}
		if req.IfName == name || req.IfName == strconv.Itoa(i+1) {
			return n.NAD(), nil
		}
	}
	return "", nil
}
