package multusconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PluginType is the "type" of the thin plugin, the name of its binary.
const PluginType = "multus"

// DefaultMultusNamespace is where Multus looks up the cluster network's NetworkAttachmentDefinition
// when the configuration names none.
const DefaultMultusNamespace = "kube-system"

// Options describes a thin-plugin configuration. Name, CNIVersion, Kubeconfig and ClusterNetwork
// are required; empty optional fields are left out, so Multus applies its defaults (see the
// package documentation).
type Options struct {
	// Name is the CNI network name ("multus-cni-network" in the daemonset's file).
	Name string
	// CNIVersion is the configuration's cniVersion; one libcni knows.
	CNIVersion string
	// Kubeconfig is the absolute path of the kubeconfig Multus reads NADs and pods with.
	Kubeconfig string
	// ClusterNetwork is the pod's primary network: a NetworkAttachmentDefinition (or confDir
	// network) name, "namespace/name" (split into multusNamespace and clusterNetwork, because
	// Multus reads any value with a "/" as a path), or an absolute path of a CNI configuration
	// file or directory.
	ClusterNetwork string
	// MultusNamespace is the namespace of the cluster network and default networks' NADs. It may
	// be left empty when ClusterNetwork carries it; if both are set they must agree.
	MultusNamespace string
	// DefaultNetworks are attached to every pod outside kube-system after the cluster network;
	// names or absolute paths, like ClusterNetwork but without a namespace.
	DefaultNetworks []string
	// BinDir is searched first for delegate plugins (Multus' default: /opt/cni/bin).
	BinDir string
	// ConfDir holds file-backed networks (default /etc/cni/multus/net.d).
	ConfDir string
	// CacheDir is Multus' cache, the "cniDir" key (default /var/lib/cni/multus).
	CacheDir string
	// ReadinessIndicatorFile, if set, must exist before an ADD goes on (waits up to 45 s).
	ReadinessIndicatorFile string
	// NamespaceIsolation restricts pods to NADs of their own namespace and GlobalNamespaces.
	NamespaceIsolation bool
	// GlobalNamespaces are the namespaces any pod may use NADs from under NamespaceIsolation
	// (Multus' default: default).
	GlobalNamespaces []string
	// Capabilities are the runtime capabilities Multus accepts and passes on to the delegates,
	// e.g. portMappings, bandwidth.
	Capabilities []string
	// LogFile is Multus' log file (absolute); empty logs to stderr only.
	LogFile string
	// LogLevel is debug, verbose, error or panic (Multus' default: panic).
	LogLevel string
}

// thinConf is the JSON shape of the configuration; the field order is the order of the output.
type thinConf struct {
	CNIVersion             string          `json:"cniVersion,omitempty"`
	Name                   string          `json:"name,omitempty"`
	Type                   string          `json:"type"`
	Capabilities           map[string]bool `json:"capabilities,omitempty"`
	Kubeconfig             string          `json:"kubeconfig"`
	ClusterNetwork         string          `json:"clusterNetwork"`
	MultusNamespace        string          `json:"multusNamespace,omitempty"`
	DefaultNetworks        []string        `json:"defaultNetworks,omitempty"`
	NamespaceIsolation     bool            `json:"namespaceIsolation,omitempty"`
	GlobalNamespaces       string          `json:"globalNamespaces,omitempty"`
	BinDir                 string          `json:"binDir,omitempty"`
	ConfDir                string          `json:"confDir,omitempty"`
	CNIDir                 string          `json:"cniDir,omitempty"`
	ReadinessIndicatorFile string          `json:"readinessindicatorfile,omitempty"`
	LogFile                string          `json:"logFile,omitempty"`
	LogLevel               string          `json:"logLevel,omitempty"`
}

type thinConfList struct {
	CNIVersion string     `json:"cniVersion"`
	Name       string     `json:"name"`
	Plugins    []thinConf `json:"plugins"`
}

// ThinConfig returns the single-plugin configuration for the Multus thin plugin, the content of
// the 00-multus.conf a Multus daemonset writes, with the cluster network taken from a NAD or a
// file instead of inline delegates.
func ThinConfig(o Options) ([]byte, error) {
	c, err := build(o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// ThinConfList returns the same configuration as a configuration list with multus as its only
// plugin (the 00-multus.conflist form), which libcni's NetworkConfFromBytes and AddNetworkList take.
func ThinConfList(o Options) ([]byte, error) {
	c, err := build(o)
	if err != nil {
		return nil, err
	}
	l := thinConfList{CNIVersion: c.CNIVersion, Name: c.Name}
	// libcni gives each plugin of a list the list's name and cniVersion when it runs it.
	c.CNIVersion, c.Name = "", ""
	l.Plugins = []thinConf{c}
	return json.Marshal(l)
}

// networkName is a CNI network name as the CNI specification allows it.
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

func build(o Options) (thinConf, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if !networkName.MatchString(o.Name) {
		bad("name %q: want a CNI network name (letters, digits, '_', '.', '-')", o.Name)
	}
	if !slices.Contains(version.All.SupportedVersions(), o.CNIVersion) {
		bad("cniVersion %q: want one of %s", o.CNIVersion, strings.Join(version.All.SupportedVersions(), ", "))
	}
	if !filepath.IsAbs(o.Kubeconfig) {
		bad("kubeconfig %q: want an absolute path (Multus resolves the cluster network through the apiserver)", o.Kubeconfig)
	}
	for _, p := range []struct{ key, val string }{
		{"binDir", o.BinDir}, {"confDir", o.ConfDir}, {"cniDir", o.CacheDir},
		{"readinessindicatorfile", o.ReadinessIndicatorFile}, {"logFile", o.LogFile},
	} {
		if p.val != "" && !filepath.IsAbs(p.val) {
			bad("%s %q: want an absolute path", p.key, p.val)
		}
	}
	switch o.LogLevel {
	case "", "debug", "verbose", "error", "panic":
	default:
		bad("logLevel %q: want debug, verbose, error or panic", o.LogLevel)
	}
	if o.MultusNamespace != "" && len(validation.IsDNS1123Label(o.MultusNamespace)) > 0 {
		bad("multusNamespace %q: not a namespace name", o.MultusNamespace)
	}
	for _, ns := range o.GlobalNamespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			bad("globalNamespaces: %q is not a namespace name", ns)
		}
	}
	if len(o.GlobalNamespaces) > 0 && !o.NamespaceIsolation {
		bad("globalNamespaces without namespaceIsolation has no effect")
	}

	clusterNetwork, ns, err := splitNetwork(o.ClusterNetwork, true)
	if err != nil {
		bad("clusterNetwork: %v", err)
	}
	multusNS := o.MultusNamespace
	if ns != "" {
		if multusNS != "" && multusNS != ns {
			bad("clusterNetwork %q is in namespace %q but multusNamespace is %q", o.ClusterNetwork, ns, multusNS)
		}
		multusNS = ns
	}
	for _, d := range o.DefaultNetworks {
		// Default networks are looked up in multusNamespace: a name alone or a path.
		if _, _, err := splitNetwork(d, false); err != nil {
			bad("defaultNetworks: %v", err)
		}
	}

	var caps map[string]bool
	for _, c := range o.Capabilities {
		if c == "" {
			bad("capabilities: empty name")
			continue
		}
		if caps == nil {
			caps = map[string]bool{}
		}
		caps[c] = true
	}
	if len(errs) > 0 {
		return thinConf{}, fmt.Errorf("multus thin configuration: %w", errors.Join(errs...))
	}
	return thinConf{
		CNIVersion:             o.CNIVersion,
		Name:                   o.Name,
		Type:                   PluginType,
		Capabilities:           caps,
		Kubeconfig:             o.Kubeconfig,
		ClusterNetwork:         clusterNetwork,
		MultusNamespace:        multusNS,
		DefaultNetworks:        o.DefaultNetworks,
		NamespaceIsolation:     o.NamespaceIsolation,
		GlobalNamespaces:       strings.Join(o.GlobalNamespaces, ","),
		BinDir:                 o.BinDir,
		ConfDir:                o.ConfDir,
		CNIDir:                 o.CacheDir,
		ReadinessIndicatorFile: o.ReadinessIndicatorFile,
		LogFile:                o.LogFile,
		LogLevel:               o.LogLevel,
	}, nil
}

// ResolveClusterNetwork splits multus.multusCNI.defaultCniCRName, the NetworkAttachmentDefinition
// that gives pods their eth0, into its namespace and its name: "name" is in defaultNamespace (the
// release namespace, where spiderpool-init creates the SpiderMultusConfig of that name), and
// "namespace/name" keeps its own. Multus needs the two apart, the name as clusterNetwork and the
// namespace as multusNamespace, because it reads a clusterNetwork containing "/" as a file path
// (see the package documentation). The Multus DaemonSet's configuration (NodeConf),
// spiderpool-agent's --cluster-default-nad and spiderpool-init all resolve the raw Helm value
// here, so that they cannot disagree on which NetworkAttachmentDefinition is meant.
//
// Both parts must be DNS-1123 labels: Multus refuses anything else in the pod annotations that
// name networks, and the IPAM's multusName matching compares "namespace/name" strings.
func ResolveClusterNetwork(raw, defaultNamespace string) (namespace, name string, err error) {
	namespace, name = defaultNamespace, raw
	if ns, n, ok := strings.Cut(raw, "/"); ok {
		namespace, name = ns, n
	}
	if raw == "" {
		return "", "", errors.New("cluster network: empty name")
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return "", "", fmt.Errorf("cluster network %q: name %q: %s; want name or namespace/name", raw, name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return "", "", fmt.Errorf("cluster network %q: namespace %q: %s", raw, namespace, strings.Join(msgs, "; "))
	}
	return namespace, name, nil
}

// splitNetwork checks a clusterNetwork or defaultNetworks entry and returns the value Multus
// must see and, for "namespace/name", the namespace. Absolute paths pass through; a relative
// path cannot be told from "namespace/name" and Multus would resolve it against the runtime's
// working directory, so it is refused.
func splitNetwork(v string, allowNamespace bool) (name, namespace string, err error) {
	switch {
	case v == "":
		return "", "", errors.New("empty")
	case filepath.IsAbs(v):
		if filepath.Clean(v) != v {
			return "", "", fmt.Errorf("%q: not a clean path", v)
		}
		return v, "", nil
	case !strings.Contains(v, "/"):
		// A NAD name, or the name of a network in confDir: the latter only needs to be a CNI
		// network name, which every NAD name is too.
		if !networkName.MatchString(v) {
			return "", "", fmt.Errorf("%q: not a NetworkAttachmentDefinition or network name", v)
		}
		return v, "", nil
	}
	if !allowNamespace {
		return "", "", fmt.Errorf("%q: want a name or an absolute path", v)
	}
	ns, n, err := ResolveClusterNetwork(v, "")
	if err != nil {
		return "", "", fmt.Errorf("%q: want a name, namespace/name or an absolute path: %w", v, err)
	}
	return n, ns, nil
}
