package spiderpool

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// Defaults of the ipam object (docs/reference/cni.md#spiderpool).
const (
	DefaultIPAMType        = "spiderpool"
	DefaultLogLevel        = "DEBUG" // upstream's code default; its docs say INFO
	DefaultLogFilePath     = cnilog.DefaultDir + "/" + logFileName
	DefaultLogFileMaxSize  = 100 // MB
	DefaultLogFileMaxAge   = 30  // days
	DefaultLogFileMaxCount = 7
)

// logFileName is the log file in cnilog.Dir when log_file_path is not set.
const logFileName = "spiderpool.log"

// maxSocketPathLen is the longest path a unix socket address holds on Linux: sun_path is 108
// bytes including the terminating NUL. A longer path would only fail later, at dial time, with a
// less helpful message.
const maxSocketPathLen = 107

// supportedVersions are the CNI spec versions of configurations the plugin accepts.
var supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// SupportedVersions returns the CNI spec versions the plugin accepts, oldest first.
func SupportedVersions() []string { return slices.Clone(supportedVersions) }

// NetConf is the network configuration the runtime passes on stdin. The embedded types.NetConf
// carries name, cniVersion and prevResult; IPAM shadows its IPAM field with our keys.
// Marshal IPAM, not a *NetConf: the embedded type's MarshalJSON is promoted and would drop IPAM.
type NetConf struct {
	types.NetConf
	// IPAM is the ipam object of the main plugin, holding the keys below.
	IPAM IPAMConfig `json:"ipam"`
}

// IPAMConfig is the `ipam` object. After loadConf every field holds its effective value.
type IPAMConfig struct {
	// Type names the IPAM plugin the runtime runs: spiderpool (the default when empty).
	Type string `json:"type"`

	// DefaultIPv4IPPool and DefaultIPv6IPPool are candidate pools (shell patterns allowed) used
	// when neither the pod nor its namespace names pools (docs/design/behaviour.md#pool-selection).
	DefaultIPv4IPPool []string `json:"default_ipv4_ippool,omitempty"`
	// DefaultIPv6IPPool lists the IPv6 candidate pools of this network, names or shell patterns,
	// used when neither the pod nor its namespace names pools; no entry may be empty.
	DefaultIPv6IPPool []string `json:"default_ipv6_ippool,omitempty"`
	// CleanGateway, when true, returns the addresses of this network without a gateway, so that
	// the interface gets no default route. Default false.
	CleanGateway bool `json:"clean_gateway"`
	// MatchMasterSubnet, when true, keeps only the candidate pools whose subnet holds an address
	// of the host interface behind the pod's interface (for SR-IOV, the PF of the VF); the
	// SpiderMultusConfig field sriov.ippools.matchMasterSubnet sets it. Default false.
	MatchMasterSubnet bool `json:"match_master_subnet"`

	// IPAMUnixSocketPath is the absolute path of spiderpool-agent's unix socket on the node
	// (at most 107 bytes). Default /var/run/spidernet/spiderpool.sock; the chart writes another
	// one when global.ipamUNIXSocketHostPath moves it.
	IPAMUnixSocketPath string `json:"ipam_unix_socket_path"`

	// LogLevel is DEBUG, INFO, WARN or ERROR (normalised to upper case).
	LogLevel string `json:"log_level"`
	// LogFilePath must be a file under /var/log/spidernet (cnilog.Dir): the plugin runs as root
	// and a NetworkAttachmentDefinition's author must not choose which host file it writes.
	// Unset, it is spiderpool.log in that directory.
	LogFilePath string `json:"log_file_path"`
	// LogFileMaxSize is the size in MB at which the log file is rotated; default 100. The rotation
	// limits are passed to cnilog unchanged, so an explicit 0 keeps upstream's (lumberjack's)
	// meaning: 100 MB, no age limit, no count limit respectively. None may be negative.
	LogFileMaxSize int `json:"log_file_max_size"`
	// LogFileMaxAge is how many days rotated log files are kept; default 30, 0 for no limit.
	LogFileMaxAge int `json:"log_file_max_age"`
	// LogFileMaxCount is how many rotated log files are kept; default 7, 0 for no limit.
	LogFileMaxCount int `json:"log_file_max_count"`
}

// loadConf parses and validates the network configuration and returns it with its cniVersion.
// Absent keys take their defaults; an error names the offending key.
func loadConf(stdin []byte) (*NetConf, string, error) {
	// Decoding over the defaults keeps them for absent keys and for JSON null.
	conf := &NetConf{IPAM: IPAMConfig{
		LogFileMaxSize:  DefaultLogFileMaxSize,
		LogFileMaxAge:   DefaultLogFileMaxAge,
		LogFileMaxCount: DefaultLogFileMaxCount,
	}}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			// encoding/json names the embedded types.NetConf in the path; the author never wrote it.
			key := strings.TrimPrefix(typeErr.Field, "NetConf.")
			return nil, "", fmt.Errorf("parse network configuration: key %q must be %s, got JSON %s", key, jsonKind(typeErr.Type.String()), typeErr.Value)
		}
		return nil, "", fmt.Errorf("parse network configuration: %w", err)
	}

	if !slices.Contains(supportedVersions, conf.CNIVersion) {
		return nil, "", fmt.Errorf("unsupported specified CNI version %s, the CNI versions supported by spiderpool: %v", conf.CNIVersion, supportedVersions)
	}

	ipam := &conf.IPAM
	if ipam.Type == "" {
		ipam.Type = DefaultIPAMType
	}
	if ipam.IPAMUnixSocketPath == "" {
		ipam.IPAMUnixSocketPath = v1.DefaultSocketPath
	}
	if ipam.LogLevel == "" {
		ipam.LogLevel = DefaultLogLevel
	}
	if err := ipam.validate(); err != nil {
		return nil, "", fmt.Errorf("invalid network configuration: %w", err)
	}
	return conf, conf.CNIVersion, nil
}

// validate checks the values that decoding alone cannot, normalises LogLevel and LogFilePath and
// fills in the default LogFilePath.
func (c *IPAMConfig) validate() error {
	for _, f := range []struct {
		key   string
		pools []string
	}{{"ipam.default_ipv4_ippool", c.DefaultIPv4IPPool}, {"ipam.default_ipv6_ippool", c.DefaultIPv6IPPool}} {
		for i, p := range f.pools {
			if strings.TrimSpace(p) == "" {
				return fmt.Errorf("%s[%d] is an empty pool name", f.key, i)
			}
		}
	}

	switch p := c.IPAMUnixSocketPath; {
	case !filepath.IsAbs(p):
		// A relative path would depend on the working directory the runtime starts us in.
		return fmt.Errorf("ipam.ipam_unix_socket_path %q must be an absolute path", p)
	case len(p) > maxSocketPathLen:
		return fmt.Errorf("ipam.ipam_unix_socket_path %q is longer than %d bytes, the limit of a unix socket path", p, maxSocketPathLen)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("ipam.ipam_unix_socket_path %q contains a NUL byte", p)
	}

	level := strings.ToUpper(c.LogLevel)
	if _, ok := cnilog.Level(level); !ok {
		return fmt.Errorf("ipam.log_level %q is not one of DEBUG, INFO, WARN, ERROR", c.LogLevel)
	}
	c.LogLevel = level

	path, err := cnilog.Path("ipam.log_file_path", c.LogFilePath, logFileName)
	if err != nil {
		return err
	}
	c.LogFilePath = path
	for _, f := range []struct {
		key string
		v   int
	}{{"ipam.log_file_max_size", c.LogFileMaxSize}, {"ipam.log_file_max_age", c.LogFileMaxAge}, {"ipam.log_file_max_count", c.LogFileMaxCount}} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative, got %d", f.key, f.v)
		}
	}
	return nil
}

// jsonKind names a Go type the way the configuration's author thinks of it.
func jsonKind(goType string) string {
	switch {
	case goType == "bool":
		return "a boolean"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case goType == "[]string":
		return "a list of strings"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default:
		return "an object"
	}
}

// k8sArgs are the CNI_ARGS keys the runtime passes for a Kubernetes pod. The field names are the
// keys, as types.LoadArgs requires.
type k8sArgs struct {
	types.CommonArgs
	// IP is tolerated, and ignored, because upstream's plugin accepts it.
	IP                         types.UnmarshallableString
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // the CNI_ARGS key
}

// podArgs identify the pod an interface belongs to.
type podArgs struct {
	Namespace        string
	Name             string
	UID              string
	InfraContainerID string
}

// parseCNIArgs reads CNI_ARGS ("K=V;K2=V2"). Unknown keys are an error unless IgnoreUnknown is
// set, as the CNI conventions ask. Namespace, name and UID are required: the agent finds the pod
// by name and releases only records whose UID matches, so an allocation without a UID could
// never be released by DEL.
func parseCNIArgs(s string) (podArgs, error) {
	var a k8sArgs
	if err := types.LoadArgs(s, &a); err != nil {
		return podArgs{}, fmt.Errorf("parse CNI_ARGS: %w", err)
	}
	p := podArgs{
		Namespace:        string(a.K8S_POD_NAMESPACE),
		Name:             string(a.K8S_POD_NAME),
		UID:              string(a.K8S_POD_UID),
		InfraContainerID: string(a.K8S_POD_INFRA_CONTAINER_ID),
	}
	switch {
	case p.Namespace == "":
		return podArgs{}, errors.New("CNI_ARGS: K8S_POD_NAMESPACE is missing")
	case p.Name == "":
		return podArgs{}, errors.New("CNI_ARGS: K8S_POD_NAME is missing")
	case p.UID == "":
		return podArgs{}, errors.New("CNI_ARGS: K8S_POD_UID is missing (the agent releases addresses by pod UID)")
	}
	return p, nil
}
