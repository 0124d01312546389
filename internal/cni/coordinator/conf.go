package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// Defaults of docs/design/behaviour.md#coordinator-configuration that apply when neither the configuration nor the agent sets a key.
const (
	DefaultHostRuleTable   = 500
	DefaultVethMTU         = 1500
	DefaultPodCNINIC       = "eth0"
	DefaultLogLevel        = "debug"
	DefaultLogFile         = cnilog.DefaultDir + "/" + logFileName
	DefaultLogMaxSize      = 100 // MB
	DefaultLogMaxAge       = 30  // days
	DefaultLogMaxCount     = 10
	firstNICTable          = 100 // reply path of the first NIC (docs/design/behaviour.md#policy-tables)
	hostRulePriority       = 1000
	maxRouteTable          = 1<<32 - 1
	reservedTableLocal     = 255
	reservedTableMain      = 254
	reservedTableDefault   = 253
	maxMTU                 = 65535
	maxInterfaceNameLength = 15
)

// logFileName is the log file in cnilog.Dir when logOptions.logFile is not set.
const logFileName = "coordinator.log"

// supportedVersions are the CNI spec versions of configurations (and prevResults) accepted.
var supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// SupportedVersions returns the CNI spec versions the plugin accepts, oldest first.
func SupportedVersions() []string { return slices.Clone(supportedVersions) }

// Mode is the coordinator's mode (docs/design/behaviour.md#coordinator-modes).
type Mode string

const (
	ModeAuto     Mode = "auto"
	ModeUnderlay Mode = "underlay"
	ModeOverlay  Mode = "overlay"
	ModeDisabled Mode = "disabled"
)

// NetConf is the plugin object of the network configuration. Pointers and nil slices mark keys
// the configuration leaves out: those take the agent's value (docs/design/behaviour.md#coordinator-configuration).
type NetConf struct {
	types.NetConf

	// Mode is auto, underlay, overlay or disabled ("disable" is read as disabled). Absent: the
	// SpiderCoordinator's spec.mode, else auto. auto picks underlay for the first NIC or when the
	// pod already has veth0, overlay otherwise.
	Mode string `json:"mode,omitempty"`
	// TunePodRoutes, when true, arranges the routes between the NICs of a multi-NIC pod so that
	// each NIC answers from its own policy table. Absent: the SpiderCoordinator's
	// spec.tunePodRoutes, else true.
	TunePodRoutes *bool `json:"tunePodRoutes,omitempty"`
	// PodDefaultRouteNIC names the NIC that keeps the pod's default route. Absent: the pod's
	// ipam.spidernet.io/default-route-nic annotation, else the SpiderCoordinator's
	// spec.podDefaultRouteNIC, else the NIC that has it now (normally eth0).
	PodDefaultRouteNIC string `json:"podDefaultRouteNic,omitempty"`
	// HostRuleTable is the host's policy routing table holding the routes to pod addresses
	// (1..4294967295, not 253, 254 or 255). Absent: the SpiderCoordinator's spec.hostRuleTable,
	// else 500.
	HostRuleTable *int `json:"hostRuleTable,omitempty"`
	// PodRPFilter is the rp_filter value set in the pod: 0, 1 or 2; a negative value leaves it
	// untouched. Absent: the SpiderCoordinator's spec.podRPFilter, else 0.
	PodRPFilter *int `json:"podRPFilter,omitempty"`
	// HostRPFilter is accepted for old configurations and ignored, as upstream ignores it.
	HostRPFilter *int `json:"hostRPFilter,omitempty"`
	// TxQueueLen is the transmit queue length of the pod's NIC; 0 leaves it untouched, negative is
	// refused. Absent: the SpiderCoordinator's spec.txQueueLen, else 0.
	TxQueueLen *int `json:"txQueueLen,omitempty"`
	// PodMACPrefix, "xx:xx" with a unicast first byte, fixes the first two bytes of the pod NIC's
	// MAC address; the rest is derived from the pod's IP. Absent: the SpiderCoordinator's
	// spec.podMACPrefix, else the MAC is left alone.
	PodMACPrefix string `json:"podMACPrefix,omitempty"`
	// VethLinkAddress is an IP address put on veth0 in the pod (a link-local IPv4 such as
	// 169.254.100.1). Absent: the SpiderCoordinator's spec.vethLinkAddress, else none.
	VethLinkAddress string `json:"vethLinkAddress,omitempty"`
	// VethMTU is the MTU of the veth pair between pod and host, 68..65535. Absent: the
	// SpiderCoordinator's spec.vethMTU, else 1500.
	VethMTU *int `json:"vethMTU,omitempty"`
	// OverlayPodCIDR lists the overlay network's pod CIDRs, routed from the pod through the host.
	// Absent: the SpiderCoordinator's status.overlayPodCIDR, which the controller detects.
	OverlayPodCIDR []string `json:"overlayPodCIDR,omitempty"`
	// ServiceCIDR lists the cluster's service CIDRs, routed from the pod through the host. Absent:
	// the SpiderCoordinator's status.serviceCIDR.
	ServiceCIDR []string `json:"serviceCIDR,omitempty"`
	// HijackCIDR lists further CIDRs routed from the pod through the host (for example
	// 169.254.0.0/16 for node-local DNS). Absent: the SpiderCoordinator's spec.hijackCIDR.
	HijackCIDR []string `json:"hijackCIDR,omitempty"`
	// PolicyRoutes are extra routes put into the policy table of the NIC being configured (the main
	// table for the first NIC). Absent: the SpiderCoordinator's spec.policyRoutes.
	PolicyRoutes []PolicyRoute `json:"policyRoutes,omitempty"`
	// PodDefaultCNINIC is the pod's first NIC, the one the cluster network configures. Default eth0.
	PodDefaultCNINIC string `json:"podDefaultCniNic,omitempty"`
	// MultusNICPrefix is accepted for upstream's configurations and ignored.
	MultusNICPrefix string `json:"multusNicPrefix,omitempty"`
	// DetectIPConflict is accepted and ignored: conflict detection is done by the IPAM plugin when
	// the chart's ipam.enableIPConflictDetection is on.
	DetectIPConflict bool `json:"detectIPConflict,omitempty"`
	// DetectGateway is accepted and ignored: gateway detection is done by the IPAM plugin when the
	// chart's ipam.enableGatewayDetection is on.
	DetectGateway bool `json:"detectGateway,omitempty"`
	// LogOptions configures the plugin's log file.
	LogOptions LogOptions `json:"logOptions"`
	// SocketPath is an extension of ours: the agent's unix socket when it is not at the default
	// path (Helm global.ipamUNIXSocketHostPath), the same key as in the spiderpool IPAM object.
	SocketPath string `json:"ipam_unix_socket_path,omitempty"`
}

// disabled reports whether the configuration itself disables the plugin; then the agent is not
// asked at all.
func (c *NetConf) disabled() bool {
	m := Mode(strings.ToLower(c.Mode))
	return m == ModeDisabled || m == "disable"
}

// PolicyRoute is one entry of policyRoutes.
type PolicyRoute struct {
	// Dst is the destination CIDR (host bits are masked).
	Dst string `json:"dst"`
	// GW is the next hop, an address of the same family as Dst.
	GW string `json:"gw"`
}

// LogOptions is the logOptions object. After loadConf every field holds its effective value.
type LogOptions struct {
	// LogLevel is debug, info, warn or error (case-insensitive). Default debug.
	LogLevel string `json:"logLevel"`
	// LogFile must be a file under /var/log/spidernet (cnilog.Dir): the plugin runs as root and a
	// NetworkAttachmentDefinition's author must not choose which host file it writes. Default
	// coordinator.log in that directory.
	LogFile string `json:"logFile"`
	// LogMaxSize is the size in MB at which the log file is rotated. Default 100; not negative.
	LogMaxSize int `json:"logMaxSize"`
	// LogMaxAge is how many days rotated log files are kept. Default 30; not negative.
	LogMaxAge int `json:"logMaxAge"`
	// LogMaxCount is how many rotated log files are kept. Default 10; not negative.
	LogMaxCount int `json:"logMaxCount"`
}

// Config is the effective configuration: the NetConf merged with the agent's values and parsed.
type Config struct {
	Mode               Mode
	TunePodRoutes      bool
	PodDefaultRouteNIC string
	HostRuleTable      int
	PodRPFilter        int // negative: leave rp_filter untouched
	TxQueueLen         int // 0: untouched
	PodMACPrefix       net.HardwareAddr
	VethLinkAddress    netip.Addr
	VethMTU            int
	OverlayPodCIDR     []netip.Prefix
	ServiceCIDR        []netip.Prefix
	HijackCIDR         []netip.Prefix
	PolicyRoutes       []Route
	PodDefaultCNINIC   string
}

// Route is a parsed policy route.
type Route struct {
	Dst netip.Prefix
	GW  netip.Addr
}

// loadConf parses and validates the network configuration; values the configuration sets are
// checked here, before the agent is asked for the others. prevResult, when present, must parse.
func loadConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{LogOptions: LogOptions{LogMaxSize: DefaultLogMaxSize, LogMaxAge: DefaultLogMaxAge, LogMaxCount: DefaultLogMaxCount}}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			key := strings.TrimPrefix(typeErr.Field, "NetConf.")
			return nil, fmt.Errorf("parse network configuration: key %q has the wrong type (JSON %s)", key, typeErr.Value)
		}
		return nil, fmt.Errorf("parse network configuration: %w", err)
	}
	if !slices.Contains(supportedVersions, conf.CNIVersion) {
		return nil, fmt.Errorf("unsupported CNI version %q, the coordinator supports %v", conf.CNIVersion, supportedVersions)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.NetConf); err != nil {
			return nil, fmt.Errorf("parse prevResult: %w", err)
		}
	}
	lo := &conf.LogOptions
	if lo.LogLevel == "" {
		lo.LogLevel = DefaultLogLevel
	}
	lo.LogLevel = strings.ToLower(lo.LogLevel)
	if _, ok := cnilog.Level(lo.LogLevel); !ok {
		return nil, fmt.Errorf("invalid network configuration: logOptions.logLevel %q is not one of debug, info, warn, error", lo.LogLevel)
	}
	path, err := cnilog.Path("logOptions.logFile", lo.LogFile, logFileName)
	if err != nil {
		return nil, fmt.Errorf("invalid network configuration: %w", err)
	}
	lo.LogFile = path
	for _, f := range []struct {
		key string
		v   int
	}{{"logOptions.logMaxSize", lo.LogMaxSize}, {"logOptions.logMaxAge", lo.LogMaxAge}, {"logOptions.logMaxCount", lo.LogMaxCount}} {
		if f.v < 0 {
			return nil, fmt.Errorf("invalid network configuration: %s must not be negative, got %d", f.key, f.v)
		}
	}
	// The configuration's own values are validated now, so a typo fails without the agent.
	if _, err := merge(conf, nil); err != nil {
		return nil, fmt.Errorf("invalid network configuration: %w", err)
	}
	return conf, nil
}

// merge returns the effective configuration: each key the NetConf sets wins over the agent's
// value (ac may be nil: fixed defaults only). Errors name the key and where its value came from.
func merge(nc *NetConf, ac *v1.CoordinatorConfig) (*Config, error) {
	if ac == nil {
		ac = &v1.CoordinatorConfig{}
	}
	pick := func(nad *int, agent int) (int, string) {
		if nad != nil {
			return *nad, "the network configuration"
		}
		return agent, "spiderpool-agent"
	}
	c := &Config{PodDefaultCNINIC: nc.PodDefaultCNINIC}
	if c.PodDefaultCNINIC == "" {
		c.PodDefaultCNINIC = DefaultPodCNINIC
	}
	if err := validIfName(c.PodDefaultCNINIC); err != nil {
		return nil, fmt.Errorf("podDefaultCniNic: %w", err)
	}

	mode, from := nc.Mode, "the network configuration"
	if mode == "" {
		mode, from = ac.Mode, "spiderpool-agent"
	}
	switch Mode(strings.ToLower(mode)) {
	case "", ModeAuto:
		c.Mode = ModeAuto
	case ModeUnderlay, ModeOverlay:
		c.Mode = Mode(strings.ToLower(mode))
	case ModeDisabled, "disable":
		c.Mode = ModeDisabled
	default:
		return nil, fmt.Errorf("mode %q (from %s) is not one of auto, underlay, overlay, disabled", mode, from)
	}

	c.TunePodRoutes = ac.TunePodRoutes
	if nc.TunePodRoutes != nil {
		c.TunePodRoutes = *nc.TunePodRoutes
	}
	c.PodDefaultRouteNIC = nc.PodDefaultRouteNIC
	if c.PodDefaultRouteNIC == "" {
		c.PodDefaultRouteNIC = ac.PodDefaultRouteNIC
	}
	if c.PodDefaultRouteNIC != "" {
		if err := validIfName(c.PodDefaultRouteNIC); err != nil {
			return nil, fmt.Errorf("podDefaultRouteNic: %w", err)
		}
	}

	var v int
	v, from = pick(nc.HostRuleTable, ac.HostRuleTable)
	switch {
	case v == 0 && nc.HostRuleTable == nil:
		v = DefaultHostRuleTable
	case v <= 0 || v > maxRouteTable:
		return nil, fmt.Errorf("hostRuleTable %d (from %s) is not a routing table number (1..%d)", v, from, maxRouteTable)
	case v == reservedTableLocal || v == reservedTableMain || v == reservedTableDefault:
		return nil, fmt.Errorf("hostRuleTable %d (from %s) is a table the kernel reserves (local, main, default)", v, from)
	}
	c.HostRuleTable = v

	v, from = pick(nc.PodRPFilter, ac.PodRPFilter)
	if v > 2 {
		return nil, fmt.Errorf("podRPFilter %d (from %s) must be 0, 1, 2 or negative (leave untouched)", v, from)
	}
	c.PodRPFilter = v

	v, from = pick(nc.TxQueueLen, ac.TxQueueLen)
	if v < 0 {
		return nil, fmt.Errorf("txQueueLen %d (from %s) must not be negative", v, from)
	}
	c.TxQueueLen = v

	v, from = pick(nc.VethMTU, ac.VethMTU)
	switch {
	case v == 0 && nc.VethMTU == nil:
		v = DefaultVethMTU
	case v < 68 || v > maxMTU:
		return nil, fmt.Errorf("vethMTU %d (from %s) must be between 68 and %d", v, from, maxMTU)
	}
	c.VethMTU = v

	s, from := nc.PodMACPrefix, "the network configuration"
	if s == "" {
		s, from = ac.PodMACPrefix, "spiderpool-agent"
	}
	if s != "" {
		mac, err := parseMACPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("podMACPrefix %q (from %s): %w", s, from, err)
		}
		c.PodMACPrefix = mac
	}

	s, from = nc.VethLinkAddress, "the network configuration"
	if s == "" {
		s, from = ac.VethLinkAddress, "spiderpool-agent"
	}
	if s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("vethLinkAddress %q (from %s) is not an IP address", s, from)
		}
		c.VethLinkAddress = a
	}

	for _, f := range []struct {
		key   string
		nad   []string
		agent []string
		dst   *[]netip.Prefix
	}{
		{"overlayPodCIDR", nc.OverlayPodCIDR, ac.OverlayPodCIDR, &c.OverlayPodCIDR},
		{"serviceCIDR", nc.ServiceCIDR, ac.ServiceCIDR, &c.ServiceCIDR},
		{"hijackCIDR", nc.HijackCIDR, ac.HijackCIDR, &c.HijackCIDR},
	} {
		list, from := f.nad, "the network configuration"
		if list == nil {
			list, from = f.agent, "spiderpool-agent"
		}
		for i, s := range list {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%s[%d] %q (from %s) is not a CIDR", f.key, i, s, from)
			}
			*f.dst = append(*f.dst, p.Masked())
		}
	}

	routes, from := nc.PolicyRoutes, "the network configuration"
	if routes == nil {
		from = "spiderpool-agent"
		for _, r := range ac.PolicyRoutes {
			routes = append(routes, PolicyRoute{Dst: r.Dst, GW: r.Gw})
		}
	}
	for i, r := range routes {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("policyRoutes[%d].dst %q (from %s) is not a CIDR", i, r.Dst, from)
		}
		gw, err := netip.ParseAddr(r.GW)
		if err != nil {
			return nil, fmt.Errorf("policyRoutes[%d].gw %q (from %s) is not an IP address", i, r.GW, from)
		}
		if gw.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("policyRoutes[%d] (from %s): gw %s and dst %s are of different IP families", i, from, gw, dst)
		}
		c.PolicyRoutes = append(c.PolicyRoutes, Route{Dst: dst.Masked(), GW: gw})
	}
	return c, nil
}

// parseMACPrefix parses "xx:xx", the first two bytes of pod MACs; they must form a unicast address.
func parseMACPrefix(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s + ":00:00:00:00")
	if err != nil || len(mac) != 6 {
		return nil, errors.New(`must be two hex bytes "xx:xx"`)
	}
	if mac[0]&1 != 0 {
		return nil, errors.New("the first byte makes a multicast address")
	}
	return mac[:2], nil
}

func validIfName(s string) error {
	if len(s) == 0 || len(s) > maxInterfaceNameLength || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\x00") {
		return fmt.Errorf("%q is not a valid interface name", s)
	}
	return nil
}

// prevResult returns the configuration's prevResult as a 1.x result.
func prevResult(conf *NetConf) (*types100.Result, error) {
	if conf.PrevResult == nil {
		return nil, errors.New("the network configuration carries no prevResult: coordinator must be chained after the main plugin")
	}
	r, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("convert prevResult: %w", err)
	}
	return r, nil
}

// nicAddrs returns the addresses prevResult assigns to ifName (or that name no interface) and their
// gateways.
func nicAddrs(r *types100.Result, ifName string) (addrs []netip.Prefix, gateways []netip.Addr) {
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Name != ifName {
				continue
			}
		}
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		bits, _ := ipc.Address.Mask.Size()
		addrs = append(addrs, netip.PrefixFrom(a, bits))
		if gw, ok := netip.AddrFromSlice(ipc.Gateway); ok {
			gateways = append(gateways, gw.Unmap())
		}
	}
	return addrs, gateways
}
