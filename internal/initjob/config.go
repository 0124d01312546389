package initjob

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// EnvPrefix starts the name of every environment variable spiderpool-init reads.
const EnvPrefix = "SPIDERPOOL_INIT_"

// Defaults that are not coordinator values (those come from v2beta1.HelmDefaultCoordinator).
const (
	DefaultNamespace  = "kube-system"
	DefaultCNIConfDir = "/etc/cni/net.d"
	DefaultTimeout    = 5 * time.Minute
)

// Config is what spiderpool-init installs: the Helm values it is given, plus where it runs.
// Start from DefaultConfig, which holds the chart's defaults.
type Config struct {
	// Namespace is the release namespace: SpiderMultusConfigs without a namespace of their own go there.
	Namespace string
	// CNIConfDir is read for the cluster's CNI configuration when no defaultCniCRName is given.
	CNIConfDir string
	// Timeout bounds the whole run, including waiting for the API server and the CRDs.
	Timeout time.Duration
	// LogLevel is the level of the JSON log on stderr.
	LogLevel slog.Level

	Coordinator CoordinatorValues
	// IPv4Pool and IPv6Pool are clusterDefaultPool.*.
	IPv4Pool, IPv6Pool PoolValues
	// SpiderSubnetEnabled is ipam.spiderSubnet.enable: default pools get a SpiderSubnet of their own.
	SpiderSubnetEnabled bool
	Multus              MultusValues
}

// CoordinatorValues are the coordinator.* Helm values.
type CoordinatorValues struct {
	Enabled          bool
	Name             string
	Mode             string
	PodCIDRType      string
	DetectGateway    bool
	DetectIPConflict bool
	TunePodRoutes    bool
	HijackCIDR       []string
	PolicyRoutes     []v2beta1.Route
	VethLinkAddress  string
	VethMTU          int
}

// PoolValues are the clusterDefaultPool.* values of one IP family.
type PoolValues struct {
	Install    bool
	PoolName   string
	SubnetName string
	Subnet     string
	IPRanges   []string
	Gateway    string
}

// MultusValues are the multus.multusCNI.* values.
type MultusValues struct {
	Install bool
	// DefaultCNICRName is "name" or "namespace/name" of the cluster network's SpiderMultusConfig.
	DefaultCNICRName string
}

// DefaultConfig returns the Helm chart's defaults (docs/reference/helm-values.md). The coordinator values are the ones
// the controller uses when it creates a missing SpiderCoordinator, so both agree on what "default" is.
func DefaultConfig() Config {
	spec := v2beta1.HelmDefaultCoordinator("default").Spec
	return Config{
		Namespace:  DefaultNamespace,
		CNIConfDir: DefaultCNIConfDir,
		Timeout:    DefaultTimeout,
		LogLevel:   slog.LevelInfo,
		Coordinator: CoordinatorValues{
			Enabled:          true,
			Name:             "default",
			Mode:             deref(spec.Mode),
			PodCIDRType:      deref(spec.PodCIDRType),
			DetectGateway:    deref(spec.DetectGateway),
			DetectIPConflict: deref(spec.DetectIPConflict),
			TunePodRoutes:    deref(spec.TunePodRoutes),
			HijackCIDR:       append([]string(nil), spec.HijackCIDR...),
			PolicyRoutes:     append([]v2beta1.Route(nil), spec.PolicyRoutes...),
			VethLinkAddress:  deref(spec.VethLinkAddress),
			VethMTU:          deref(spec.VethMTU),
		},
		IPv4Pool:            PoolValues{PoolName: "default-v4-ippool", SubnetName: "default-v4-subnet"},
		IPv6Pool:            PoolValues{PoolName: "default-v6-ippool", SubnetName: "default-v6-subnet"},
		SpiderSubnetEnabled: true,
		Multus:              MultusValues{Install: true},
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Setting is one configurable value: its Helm value path, environment variable and flag.
type Setting struct {
	// Value is the Helm value path ("coordinator.mode"), or a name of our own for what is not a
	// Helm value ("namespace").
	Value string
	// Env is the environment variable, EnvPrefix + the value path in upper snake case.
	Env string
	// Flag is the command-line flag: Env without the prefix, lower case, with dashes.
	Flag  string
	Usage string
	v     flag.Value
}

// name is how errors refer to the setting: every way a user may have set it.
func (s Setting) name() string {
	return fmt.Sprintf("%s (env %s, flag --%s)", s.Value, s.Env, s.Flag)
}

func setting(value, envSuffix, usage string, v flag.Value) Setting {
	return Setting{
		Value: value,
		Env:   EnvPrefix + envSuffix,
		Flag:  strings.ReplaceAll(strings.ToLower(envSuffix), "_", "-"),
		Usage: usage,
		v:     v,
	}
}

// Settings lists every setting bound to the fields of c, in the order of the documentation.
func (c *Config) Settings() []Setting {
	co := &c.Coordinator
	return []Setting{
		setting("namespace", "NAMESPACE", "release namespace; default place of SpiderMultusConfigs", (*stringValue)(&c.Namespace)),
		setting("cniConfDir", "CNI_CONF_DIR", "directory with the cluster's CNI configuration (host global.cniConfHostPath mounted in the pod)", (*stringValue)(&c.CNIConfDir)),
		setting("timeout", "TIMEOUT", "bound of the whole run, e.g. 5m", (*durationValue)(&c.Timeout)),
		setting("logLevel", "LOG_LEVEL", "debug, info, warn or error", (*levelValue)(&c.LogLevel)),

		setting("coordinator.enabled", "COORDINATOR_ENABLED", "create or update the SpiderCoordinator", (*boolValue)(&co.Enabled)),
		setting("coordinator.name", "COORDINATOR_NAME", "SpiderCoordinator name", (*stringValue)(&co.Name)),
		setting("coordinator.mode", "COORDINATOR_MODE", "auto, underlay, overlay or disabled", (*stringValue)(&co.Mode)),
		setting("coordinator.podCIDRType", "COORDINATOR_POD_CIDR_TYPE", "auto, cluster, calico, cilium or none", (*stringValue)(&co.PodCIDRType)),
		setting("coordinator.detectGateway", "COORDINATOR_DETECT_GATEWAY", "kept for old manifests; ignored by the coordinator", (*boolValue)(&co.DetectGateway)),
		setting("coordinator.detectIPConflict", "COORDINATOR_DETECT_IP_CONFLICT", "kept for old manifests; ignored by the coordinator", (*boolValue)(&co.DetectIPConflict)),
		setting("coordinator.tunePodRoutes", "COORDINATOR_TUNE_POD_ROUTES", "tune routes between the NICs of a pod", (*boolValue)(&co.TunePodRoutes)),
		setting("coordinator.hijackCIDR", "COORDINATOR_HIJACK_CIDR", "CIDRs routed through the host: comma-separated or a JSON array", (*listValue)(&co.HijackCIDR)),
		setting("coordinator.policyRoutes", "COORDINATOR_POLICY_ROUTES", `JSON array of {"dst":CIDR,"gw":IP}`, (*routesValue)(&co.PolicyRoutes)),
		setting("coordinator.vethLinkAddress", "COORDINATOR_VETH_LINK_ADDRESS", "IPv4 link-local address of veth0; empty disables", (*stringValue)(&co.VethLinkAddress)),
		setting("coordinator.vethMTU", "COORDINATOR_VETH_MTU", "MTU of the veth pair", (*intValue)(&co.VethMTU)),

		setting("clusterDefaultPool.installIPv4IPPool", "CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL", "create the default IPv4 SpiderIPPool", (*boolValue)(&c.IPv4Pool.Install)),
		setting("clusterDefaultPool.installIPv6IPPool", "CLUSTER_DEFAULT_POOL_INSTALL_IPV6_IPPOOL", "create the default IPv6 SpiderIPPool", (*boolValue)(&c.IPv6Pool.Install)),
		setting("clusterDefaultPool.ipv4IPPoolName", "CLUSTER_DEFAULT_POOL_IPV4_IPPOOL_NAME", "name of the default IPv4 SpiderIPPool", (*stringValue)(&c.IPv4Pool.PoolName)),
		setting("clusterDefaultPool.ipv6IPPoolName", "CLUSTER_DEFAULT_POOL_IPV6_IPPOOL_NAME", "name of the default IPv6 SpiderIPPool", (*stringValue)(&c.IPv6Pool.PoolName)),
		setting("clusterDefaultPool.ipv4SubnetName", "CLUSTER_DEFAULT_POOL_IPV4_SUBNET_NAME", "name of the default IPv4 SpiderSubnet", (*stringValue)(&c.IPv4Pool.SubnetName)),
		setting("clusterDefaultPool.ipv6SubnetName", "CLUSTER_DEFAULT_POOL_IPV6_SUBNET_NAME", "name of the default IPv6 SpiderSubnet", (*stringValue)(&c.IPv6Pool.SubnetName)),
		setting("clusterDefaultPool.ipv4Subnet", "CLUSTER_DEFAULT_POOL_IPV4_SUBNET", "CIDR of the default IPv4 pool, e.g. 10.6.0.0/16", (*stringValue)(&c.IPv4Pool.Subnet)),
		setting("clusterDefaultPool.ipv6Subnet", "CLUSTER_DEFAULT_POOL_IPV6_SUBNET", "CIDR of the default IPv6 pool, e.g. fd00:6::/64", (*stringValue)(&c.IPv6Pool.Subnet)),
		setting("clusterDefaultPool.ipv4IPRanges", "CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES", "IPs and ranges a-b of the IPv4 pool: comma-separated or a JSON array", (*listValue)(&c.IPv4Pool.IPRanges)),
		setting("clusterDefaultPool.ipv6IPRanges", "CLUSTER_DEFAULT_POOL_IPV6_IP_RANGES", "IPs and ranges a-b of the IPv6 pool: comma-separated or a JSON array", (*listValue)(&c.IPv6Pool.IPRanges)),
		setting("clusterDefaultPool.ipv4Gateway", "CLUSTER_DEFAULT_POOL_IPV4_GATEWAY", "gateway of the IPv4 pool; empty for none", (*stringValue)(&c.IPv4Pool.Gateway)),
		setting("clusterDefaultPool.ipv6Gateway", "CLUSTER_DEFAULT_POOL_IPV6_GATEWAY", "gateway of the IPv6 pool; empty for none", (*stringValue)(&c.IPv6Pool.Gateway)),

		setting("ipam.spiderSubnet.enable", "IPAM_SPIDER_SUBNET_ENABLE", "create a SpiderSubnet for each default pool", (*boolValue)(&c.SpiderSubnetEnabled)),

		setting("multus.multusCNI.install", "MULTUS_INSTALL", "create the SpiderMultusConfig of Multus's cluster network", (*boolValue)(&c.Multus.Install)),
		setting("multus.multusCNI.defaultCniCRName", "MULTUS_DEFAULT_CNI_CR_NAME", "cluster network's SpiderMultusConfig: name or namespace/name; empty means found in the CNI conf dir", (*stringValue)(&c.Multus.DefaultCNICRName)),
	}
}

// Load sets c from the environment (lookup, normally os.LookupEnv) and then from args, so that a
// flag wins over its variable and both over the defaults already in c. fs receives the flags; the
// caller decides its error handling and output. Errors name the variable or the flag at fault.
// A variable that is set but empty means an empty value (an empty list, no gateway); booleans and
// numbers have no empty value and are refused.
func (c *Config) Load(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	settings := c.Settings()
	for _, s := range settings {
		fs.Var(s.v, s.Flag, s.Usage+" (env "+s.Env+")")
	}
	for _, s := range settings {
		v, ok := lookup(s.Env)
		if !ok {
			continue
		}
		if err := s.v.Set(v); err != nil {
			return fmt.Errorf("environment variable %s=%q (%s): %w", s.Env, v, s.Value, err)
		}
	}
	// The flag package's own message names the flag: `invalid value "x" for flag -coordinator-mode: ...`.
	return fs.Parse(args)
}

// settingByValue returns the setting of a Helm value path.
func (c *Config) settingByValue(value string) Setting {
	for _, s := range c.Settings() {
		if s.Value == value {
			return s
		}
	}
	return Setting{Value: value, Env: "?", Flag: "?"}
}

// The flag.Value types below parse environment variables and flags alike.
var (
	_ flag.Value = (*stringValue)(nil)
	_ flag.Value = (*boolValue)(nil)
	_ flag.Value = (*intValue)(nil)
	_ flag.Value = (*durationValue)(nil)
	_ flag.Value = (*levelValue)(nil)
	_ flag.Value = (*listValue)(nil)
	_ flag.Value = (*routesValue)(nil)
)

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(strings.TrimSpace(s)); return nil }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := ParseBool(s)
	if err != nil {
		return err
	}
	*v = boolValue(b)
	return nil
}

// IsBoolFlag lets "--coordinator-enabled" mean true on the command line.
func (v *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want an integer: %w", err)
	}
	*v = intValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a duration such as 5m: %w", err)
	}
	if d <= 0 {
		return fmt.Errorf("want a positive duration, got %s", d)
	}
	*v = durationValue(d)
	return nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return slog.Level(*v).String() }
func (v *levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return err
	}
	*v = levelValue(l)
	return nil
}

type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	l, err := ParseList(s)
	if err != nil {
		return err
	}
	*v = l
	return nil
}

type routesValue []v2beta1.Route

func (v *routesValue) String() string {
	if len(*v) == 0 {
		return ""
	}
	b, _ := json.Marshal([]v2beta1.Route(*v))
	return string(b)
}

func (v *routesValue) Set(s string) error {
	r, err := ParseRoutes(s)
	if err != nil {
		return err
	}
	*v = r
	return nil
}

// ParseBool accepts what strconv.ParseBool accepts, surrounded by spaces or not. Empty is an error:
// a chart that renders an unset boolean as "" has a bug worth seeing.
func ParseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("want true or false, got %q", s)
	}
	return b, nil
}

// ParseList parses a list value: a JSON array of strings (what Helm's toJson renders) when it
// starts with '[', else comma-separated entries. Entries are trimmed; empty entries are dropped, so
// "" and "[]" are the empty list (nil).
func ParseList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	var raw []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, fmt.Errorf("want a JSON array of strings or comma-separated entries: %w", err)
		}
	} else {
		raw = strings.Split(s, ",")
	}
	var out []string
	for _, e := range raw {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// ParseRoutes parses coordinator.policyRoutes: a JSON array of {"dst","gw"} objects; "" is none.
func ParseRoutes(s string) ([]v2beta1.Route, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var routes []v2beta1.Route
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&routes); err != nil {
		return nil, fmt.Errorf(`want a JSON array of {"dst":"<CIDR>","gw":"<IP>"}: %w`, err)
	}
	if dec.More() {
		return nil, errors.New(`want a single JSON array of {"dst":"<CIDR>","gw":"<IP>"}`)
	}
	for i, r := range routes {
		if r.Dst == "" || r.Gw == "" {
			return nil, fmt.Errorf("route %d: dst and gw are both required", i)
		}
	}
	if len(routes) == 0 {
		return nil, nil
	}
	return routes, nil
}
