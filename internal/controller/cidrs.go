package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// The kubeadm ClusterConfiguration is YAML, but only these two keys matter and upstream matches them
// with regexes; parsing the whole document would reject configs that upstream accepts.
var (
	podSubnetRE     = regexp.MustCompile(`podSubnet:\s*(\S+)`)
	serviceSubnetRE = regexp.MustCompile(`serviceSubnet:\s*(\S+)`)
)

const (
	clusterCIDRFlag  = "--cluster-cidr="
	serviceRangeFlag = "--service-cluster-ip-range="
)

// parseKubeadmClusterConfiguration returns the pod and service CIDRs of the ClusterConfiguration
// key of ConfigMap kube-system/kubeadm-config. A missing key gives a nil slice so that the caller can
// fall back to the kube-controller-manager flags; a present but malformed value is an error because
// silently falling back would hide the user's typo.
func parseKubeadmClusterConfiguration(text string) (pod, svc []string, err error) {
	if m := podSubnetRE.FindStringSubmatch(text); m != nil {
		if pod, err = checkCIDRs(strings.Split(m[1], ",")); err != nil {
			return nil, nil, fmt.Errorf("kubeadm-config podSubnet: %w", err)
		}
	}
	if m := serviceSubnetRE.FindStringSubmatch(text); m != nil {
		if svc, err = checkCIDRs(strings.Split(m[1], ",")); err != nil {
			return nil, nil, fmt.Errorf("kubeadm-config serviceSubnet: %w", err)
		}
	}
	return pod, svc, nil
}

// checkCIDRs drops empty entries and the quotes YAML allows around a scalar, and checks each entry
// is a CIDR. Entries are kept as written: the status shows what the cluster says.
func checkCIDRs(fields []string) ([]string, error) {
	var out []string
	for _, f := range fields {
		f = strings.Trim(strings.TrimSpace(f), `"'`)
		if f == "" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// parseControllerManagerFlags reads --cluster-cidr and --service-cluster-ip-range from the command
// and args of kube-controller-manager's container. Invalid entries are skipped rather than
// failing: the controller-manager would not run with them, so they are not the cluster's truth.
func parseControllerManagerFlags(args []string) (pod, svc []string) {
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, clusterCIDRFlag):
			pod = validCIDRs(strings.TrimPrefix(a, clusterCIDRFlag))
		case strings.HasPrefix(a, serviceRangeFlag):
			svc = validCIDRs(strings.TrimPrefix(a, serviceRangeFlag))
		}
	}
	return pod, svc
}

func validCIDRs(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if _, err := netip.ParsePrefix(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// errCiliumMultiPool is returned for Cilium's multi-pool IPAM, whose CIDRs are not in the ConfigMap
// but in CiliumPodIPPool objects: the caller reads those instead.
var errCiliumMultiPool = errors.New("cilium IPAM mode multi-pool keeps its CIDRs in CiliumPodIPPool objects")

// ciliumCIDRs returns the pod CIDRs given by the data of the cilium-config ConfigMap. clusterPod is
// used for ipam "kubernetes", where Cilium takes each node's podCIDR from the cluster's ranges. For
// ipam "multi-pool" it returns errCiliumMultiPool.
func ciliumCIDRs(data map[string]string, clusterPod []string) ([]string, error) {
	mode := data["ipam"]
	switch mode {
	case "cluster-pool", "cluster-pool-v2beta":
		var out []string
		// Cilium accepts space-separated lists here (and commas in older releases).
		for _, key := range []string{"cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"} {
			cidrs, err := checkCIDRs(strings.FieldsFunc(data[key], isListSeparator))
			if err != nil {
				return nil, fmt.Errorf("cilium-config %s: %w", key, err)
			}
			out = append(out, cidrs...)
		}
		return out, nil
	case "kubernetes":
		return clusterPod, nil
	case "multi-pool":
		return nil, errCiliumMultiPool
	default:
		// Upstream's spelling, kept so that users searching for the message find the same answers.
		return nil, fmt.Errorf("unsupported CIlium IPAM mode: %s", mode)
	}
}

func isListSeparator(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }

// resolvePodCIDRType turns podCIDRType "auto" into a concrete type from the first CNI config file
// (by name, as the container runtime picks it) in dir. Any other type is returned unchanged.
func resolvePodCIDRType(podCIDRType, dir string) (string, error) {
	if podCIDRType != v2beta1.PodCIDRTypeAuto {
		return podCIDRType, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("podCIDRType auto: read CNI config directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			if ext := filepath.Ext(e.Name()); ext == ".conf" || ext == ".conflist" {
				files = append(files, e.Name())
			}
		}
	}
	if len(files) == 0 {
		return "", fmt.Errorf("podCIDRType auto: no *.conf or *.conflist file in %s: install the main CNI or set podCIDRType explicitly", dir)
	}
	slices.Sort(files)
	// Multus' own file comes first by name (00-multus.conf) and says nothing about the cluster
	// network: the first other file does. With Multus alone, the pods' networks are all
	// Multus-delegated underlays: no overlay CIDR.
	for _, f := range files {
		path := filepath.Join(dir, f)
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("podCIDRType auto: %w", err)
		}
		if isMultusConfig(raw) {
			continue
		}
		return podCIDRTypeOfCNIConfig(raw, path)
	}
	return v2beta1.PodCIDRTypeNone, nil
}

// isMultusConfig reports whether a CNI configuration file is Multus' (thin or thick plugin).
func isMultusConfig(raw []byte) bool {
	var conf struct {
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(raw, &conf) != nil {
		return false
	}
	t := conf.Type
	if len(conf.Plugins) > 0 {
		t = conf.Plugins[0].Type
	}
	return t == "multus" || t == "multus-shim"
}

// podCIDRTypeOfCNIConfig maps the network name of a CNI config (a .conf or a .conflist: both carry
// a top-level "name") to the pod CIDR source of that CNI.
func podCIDRTypeOfCNIConfig(raw []byte, path string) (string, error) {
	var conf struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		return "", fmt.Errorf("podCIDRType auto: parse %s: %w", path, err)
	}
	switch conf.Name {
	case "calico", "k8s-pod-network":
		return v2beta1.PodCIDRTypeCalico, nil
	case "cilium":
		return v2beta1.PodCIDRTypeCilium, nil
	case "flannel":
		// Flannel allocates from the nodes' podCIDRs, i.e. the cluster pod CIDRs.
		return v2beta1.PodCIDRTypeCluster, nil
	default:
		return v2beta1.PodCIDRTypeNone, nil
	}
}
