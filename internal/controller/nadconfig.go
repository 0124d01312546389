package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	agentv1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// DefaultCNIVersion is the NAD cniVersion when the SpiderMultusConfig has no
// multus.spidernet.io/cni-version annotation (docs/design/behaviour.md#nad-generation).
const DefaultCNIVersion = "0.3.1"

// Plugin types that the generator writes besides the main plugin.
const (
	nadPluginSpiderpool  = "spiderpool"
	nadPluginCoordinator = "coordinator"
	nadPluginIfacer      = "ifacer"
	nadPluginRDMA        = "rdma"
	nadPluginTuning      = "tuning"
)

// nadOVSResourcePrefix names the device-plugin resource of an ovs NAD with a deviceID (hardware offload).
const nadOVSResourcePrefix = "ovs-cni.network.kubevirt.io"

// NADName is the name of the NetworkAttachmentDefinition generated for smc: the
// multus.spidernet.io/cr-name annotation when present, else the SpiderMultusConfig's name.
func NADName(smc *v2beta1.SpiderMultusConfig) string {
	if n, ok := smc.Annotations[v2beta1.AnnoMultusConfigName]; ok {
		return n
	}
	return smc.Name
}

// NADResourceName is the k8s.v1.cni.cncf.io/resourceName annotation the generated NAD carries, or
// "" when it carries none: the VF resource for sriov and ib-sriov, and for ovs with a deviceID
// (hardware offload) the ovs-cni resource of its bridge.
func NADResourceName(smc *v2beta1.SpiderMultusConfig) string {
	spec := &smc.Spec
	switch nadCNIType(spec) {
	case v2beta1.CniTypeSriov:
		if c := spec.SriovConfig; c != nil && c.ResourceName != nil {
			return *c.ResourceName
		}
	case v2beta1.CniTypeIBSriov:
		if c := spec.IbSriovConfig; c != nil && c.ResourceName != nil {
			return *c.ResourceName
		}
	case v2beta1.CniTypeOvs:
		if c := spec.OvsConfig; c != nil && c.DeviceID != "" {
			return nadOVSResourcePrefix + "/" + c.BrName
		}
	}
	return ""
}

// NADConfig returns the spec.config of the NetworkAttachmentDefinition generated for smc, exactly
// as docs/design/behaviour.md#nad-generation lays it out, or "" when the NAD carries no configuration (cniType custom
// with an empty customCNI).
//
// The output depends on which optional fields are set, not only on their values (a nil mtu is
// left out, a zero one is written), so callers pass the object as the mutating webhook leaves it:
// run v2beta1.DefaultSpiderMultusConfig on a copy first. NADConfig itself only treats a nil
// cniType as custom and a nil enableCoordinator as true, the schema defaults.
//
// ipamSocket is the agent's socket on the nodes (Helm global.ipamUNIXSocketHostPath): when it is
// not the plugin's default, the spiderpool IPAM entry carries it as ipam_unix_socket_path, so that
// the plugin dials where the agent listens.
//
// Key order is fixed by the field order of the structs below; encoding/json is used for the
// encoding itself so that strings are escaped exactly as upstream's json.Marshal escapes them.
func NADConfig(smc *v2beta1.SpiderMultusConfig, ipamSocket string) (string, error) {
	spec := &smc.Spec
	typ := nadCNIType(spec)
	if typ == v2beta1.CniTypeCustom {
		if spec.CustomCNIConfig == nil || *spec.CustomCNIConfig == "" {
			return "", nil
		}
		if !json.Valid([]byte(*spec.CustomCNIConfig)) {
			return "", errors.New("customCNI is not valid JSON")
		}
		return *spec.CustomCNIConfig, nil
	}

	withIPAM := spec.DisableIPAM == nil || !*spec.DisableIPAM
	var head, mainPlugins []any
	var tail []any
	switch typ {
	case v2beta1.CniTypeMacvlan:
		c := spec.MacvlanConfig
		if c == nil {
			return "", errors.New("cniType macvlan needs spec.macvlan")
		}
		master, err := nadMaster(c.Master, c.Bond, c.VlanID)
		if err != nil {
			return "", err
		}
		head = nadIfacer(c.Master, c.Bond, c.VlanID, true)
		mainPlugins = []any{nadMacvlanConf{Type: v2beta1.CniTypeMacvlan, Master: master, Mode: "bridge", MTU: c.MTU,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}}
	case v2beta1.CniTypeIPvlan:
		c := spec.IPVlanConfig
		if c == nil {
			return "", errors.New("cniType ipvlan needs spec.ipvlan")
		}
		master, err := nadMaster(c.Master, c.Bond, c.VlanID)
		if err != nil {
			return "", err
		}
		head = nadIfacer(c.Master, c.Bond, c.VlanID, true)
		mainPlugins = []any{nadIpvlanConf{Type: v2beta1.CniTypeIPvlan, Master: master, MTU: c.MTU,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}}
	case v2beta1.CniTypeVlan:
		c := spec.VlanConfig
		if c == nil {
			return "", errors.New("cniType vlan needs spec.vlan")
		}
		// The vlan plugin tags the traffic itself, so the master never gets a .<vlanID> suffix and
		// ifacer is only needed to build a bond.
		master, err := nadMaster(c.Master, c.Bond, nil)
		if err != nil {
			return "", err
		}
		head = nadIfacer(c.Master, c.Bond, nil, false)
		conf := nadVlanConf{Type: v2beta1.CniTypeVlan, Master: master, MTU: c.MTU,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}
		if c.VlanMode != nil {
			conf.VlanMode = *c.VlanMode
		}
		if c.VlanMode == nil || *c.VlanMode == "manual" {
			conf.VlanID = c.VlanID
		}
		mainPlugins = []any{conf}
	case v2beta1.CniTypeSriov:
		c := spec.SriovConfig
		if c == nil {
			return "", errors.New("cniType sriov needs spec.sriov")
		}
		mainPlugins = []any{nadSriovConf{Vlan: c.VlanID, MinTxRate: c.MinTxRateMbps, MaxTxRate: c.MaxTxRateMbps,
			Type: v2beta1.CniTypeSriov, IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, true, ipamSocket)}}
		if c.RdmaIsolation != nil && *c.RdmaIsolation {
			mainPlugins = append(mainPlugins, nadTypeOnly{Type: nadPluginRDMA})
		}
		// The sriov plugin cannot set the VF's MTU; the tuning plugin does, after everything else.
		if c.MTU != nil && *c.MTU > 0 {
			tail = append(tail, nadTuningConf{Type: nadPluginTuning, MTU: *c.MTU})
		}
	case v2beta1.CniTypeIBSriov:
		c := spec.IbSriovConfig
		if c == nil {
			return "", errors.New("cniType ib-sriov needs spec.ibsriov")
		}
		mainPlugins = []any{nadIbSriovConf{Type: v2beta1.CniTypeIBSriov, Pkey: c.Pkey, LinkState: c.LinkState,
			RdmaIsolation: c.RdmaIsolation, IBKubernetesEnabled: c.EnableIbKubernetes,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}}
	case v2beta1.CniTypeIPoIB:
		c := spec.IpoibConfig
		if c == nil {
			return "", errors.New("cniType ipoib needs spec.ipoib")
		}
		mainPlugins = []any{nadIpoibConf{Type: v2beta1.CniTypeIPoIB, Master: c.Master,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}}
	case v2beta1.CniTypeOvs:
		c := spec.OvsConfig
		if c == nil {
			return "", errors.New("cniType ovs needs spec.ovs")
		}
		conf := nadOvsConf{Vlan: c.VlanTag, Type: v2beta1.CniTypeOvs, BrName: c.BrName, DeviceID: c.DeviceID,
			IPAM: nadIPAM(withIPAM, c.SpiderpoolConfigPools, false, ipamSocket)}
		if len(c.Trunk) > 0 {
			conf.Trunk = c.Trunk
		}
		mainPlugins = []any{conf}
	default:
		return "", fmt.Errorf("unsupported cniType %q", typ)
	}

	plugins := make([]any, 0, len(head)+len(mainPlugins)+len(spec.ChainCNIJsonData)+2)
	plugins = append(plugins, head...)
	plugins = append(plugins, mainPlugins...)
	for i, s := range spec.ChainCNIJsonData {
		p, err := nadChainPlugin(s)
		if err != nil {
			return "", fmt.Errorf("chainCNIJsonData[%d] is not one JSON value: %w", i, err)
		}
		plugins = append(plugins, p)
	}
	if spec.EnableCoordinator == nil || *spec.EnableCoordinator {
		plugins = append(plugins, nadCoordinator(spec.CoordinatorConfig))
	}
	plugins = append(plugins, tail...)

	version := DefaultCNIVersion
	if v, ok := smc.Annotations[v2beta1.AnnoMultusConfigCNIVersion]; ok {
		version = v
	}
	name := smc.Annotations[v2beta1.AnnoCNIConfigName]
	if name == "" {
		name = NADName(smc)
	}
	out, err := json.Marshal(nadConfList{CNIVersion: version, Name: name, Plugins: plugins})
	if err != nil {
		return "", fmt.Errorf("encode CNI configuration: %w", err)
	}
	return string(out), nil
}

func nadCNIType(spec *v2beta1.MultusCNIConfigSpec) string {
	if spec.CniType == nil {
		return v2beta1.CniTypeCustom
	}
	return *spec.CniType
}

// masterName is the parent interface of a macvlan/ipvlan/vlan pod NIC: the single master, or the
// bond ifacer builds from several, followed by .<vlanID> when ifacer puts a VLAN on top of it.
func nadMaster(masters []string, bond *v2beta1.BondConfig, vlanID *int32) (string, error) {
	var base string
	switch {
	case len(masters) == 1:
		base = masters[0]
	case len(masters) == 0:
		return "", errors.New("no master interface")
	case bond == nil || bond.Name == "":
		return "", errors.New("several master interfaces need bond.name")
	default:
		base = bond.Name
	}
	if vlanID != nil && *vlanID != 0 {
		base += "." + strconv.Itoa(int(*vlanID))
	}
	return base, nil
}

// ifacer returns the ifacer plugin, or nothing when the master exists on the host as it is.
func nadIfacer(masters []string, bond *v2beta1.BondConfig, vlanID *int32, vlanOnTop bool) []any {
	id := 0
	if vlanOnTop && vlanID != nil {
		id = int(*vlanID)
	}
	if id == 0 && len(masters) < 2 {
		return nil
	}
	return []any{nadIfacerConf{VlanID: id, Type: nadPluginIfacer, Interfaces: masters, Bond: bond}}
}

func nadIPAM(enabled bool, pools *v2beta1.SpiderpoolPools, sriov bool, socket string) *nadIpamConf {
	if !enabled {
		return nil
	}
	c := &nadIpamConf{Type: nadPluginSpiderpool}
	if socket != agentv1.DefaultSocketPath {
		c.SocketPath = socket
	}
	if pools != nil {
		c.DefaultIPv4IPPool = pools.IPv4IPPool
		c.DefaultIPv6IPPool = pools.IPv6IPPool
		// Only sriov knows its VF's parent; macvlan/ipvlan/vlan reject matchMasterSubnet in validation.
		c.MatchMasterSubnet = sriov && pools.MatchMasterSubnet != nil && *pools.MatchMasterSubnet
	}
	return c
}

// coordinator copies the per-network overrides. Fields left out are filled by the plugin from the
// SpiderCoordinator at runtime, which is also where overlayPodCIDR and serviceCIDR come from.
func nadCoordinator(spec *v2beta1.CoordinatorSpec) nadCoordinatorConf {
	c := nadCoordinatorConf{Type: nadPluginCoordinator}
	if spec == nil {
		return c
	}
	c.TxQueueLen = spec.TxQueueLen
	c.VethLinkAddress = nadDeref(spec.VethLinkAddress)
	c.VethMTU = spec.VethMTU
	c.TunePodRoutes = spec.TunePodRoutes
	c.PodMACPrefix = nadDeref(spec.PodMACPrefix)
	c.Mode = nadDeref(spec.Mode)
	c.PodDefaultRouteNIC = nadDeref(spec.PodDefaultRouteNIC)
	// Upstream copies podRPFilter only together with podCIDRType; kept so that the generated
	// strings match (otherwise every webhook-defaulted NAD would gain "podRPFilter":0).
	if spec.PodCIDRType != nil {
		c.PodRPFilter = spec.PodRPFilter
	}
	if len(spec.HijackCIDR) > 0 {
		c.HijackCIDR = spec.HijackCIDR
	}
	if len(spec.PolicyRoutes) > 0 {
		c.PolicyRoutes = spec.PolicyRoutes
	}
	return c
}

// chainPlugin decodes one chainCNIJsonData entry. Upstream decodes it into a generic value and
// re-encodes it, so the NAD carries it compacted with object keys sorted (encoding/json sorts map
// keys); json.Number keeps numbers as written instead of passing them through float64.
func nadChainPlugin(s string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the first value")
	}
	return v, nil
}

func nadDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// The structs below fix the key order of the generated JSON (docs/design/behaviour.md#nad-generation). Pointers with
// omitempty are written whenever set, zero included, which is what makes "mtu":0 appear.

type nadConfList struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

type nadIpamConf struct {
	Type              string   `json:"type"`
	DefaultIPv4IPPool []string `json:"default_ipv4_ippool,omitempty"`
	DefaultIPv6IPPool []string `json:"default_ipv6_ippool,omitempty"`
	MatchMasterSubnet bool     `json:"match_master_subnet,omitempty"`
	SocketPath        string   `json:"ipam_unix_socket_path,omitempty"`
}

type nadMacvlanConf struct {
	Type   string       `json:"type"`
	Master string       `json:"master"`
	Mode   string       `json:"mode"`
	MTU    *int32       `json:"mtu,omitempty"`
	IPAM   *nadIpamConf `json:"ipam,omitempty"`
}

type nadIpvlanConf struct {
	Type   string       `json:"type"`
	Master string       `json:"master"`
	MTU    *int32       `json:"mtu,omitempty"`
	IPAM   *nadIpamConf `json:"ipam,omitempty"`
}

type nadVlanConf struct {
	Type     string       `json:"type"`
	Master   string       `json:"master"`
	VlanMode string       `json:"vlanMode,omitempty"`
	VlanID   *int32       `json:"vlanId,omitempty"`
	MTU      *int32       `json:"mtu,omitempty"`
	IPAM     *nadIpamConf `json:"ipam,omitempty"`
}

type nadSriovConf struct {
	Vlan      *int32       `json:"vlan,omitempty"`
	MinTxRate *int         `json:"min_tx_rate,omitempty"`
	MaxTxRate *int         `json:"max_tx_rate,omitempty"`
	Type      string       `json:"type"`
	DeviceID  string       `json:"deviceID,omitempty"`
	IPAM      *nadIpamConf `json:"ipam,omitempty"`
}

type nadIbSriovConf struct {
	Type                string       `json:"type"`
	Pkey                *string      `json:"pkey,omitempty"`
	LinkState           *string      `json:"link_state,omitempty"`
	RdmaIsolation       *bool        `json:"rdmaIsolation,omitempty"`
	IBKubernetesEnabled *bool        `json:"ibKubernetesEnabled,omitempty"`
	IPAM                *nadIpamConf `json:"ipam,omitempty"`
}

type nadIpoibConf struct {
	Type   string       `json:"type"`
	Master string       `json:"master"`
	IPAM   *nadIpamConf `json:"ipam,omitempty"`
}

type nadOvsConf struct {
	Vlan     *int32           `json:"vlan,omitempty"`
	Type     string           `json:"type"`
	BrName   string           `json:"bridge"`
	DeviceID string           `json:"deviceID,omitempty"`
	IPAM     *nadIpamConf     `json:"ipam,omitempty"`
	Trunk    []*v2beta1.Trunk `json:"trunk,omitempty"`
}

type nadIfacerConf struct {
	VlanID     int                 `json:"vlanID,omitempty"`
	Type       string              `json:"type"`
	Interfaces []string            `json:"interfaces,omitempty"`
	Bond       *v2beta1.BondConfig `json:"bond,omitempty"`
}

type nadTypeOnly struct {
	Type string `json:"type"`
}

type nadTuningConf struct {
	Type string `json:"type"`
	MTU  int32  `json:"mtu"`
}

type nadCoordinatorConf struct {
	TxQueueLen         *int            `json:"txQueueLen,omitempty"`
	DetectIPConflict   *bool           `json:"detectIPConflict,omitempty"`
	DetectGateway      *bool           `json:"detectGateway,omitempty"`
	VethLinkAddress    string          `json:"vethLinkAddress,omitempty"`
	VethMTU            *int            `json:"vethMTU,omitempty"`
	TunePodRoutes      *bool           `json:"tunePodRoutes,omitempty"`
	PodMACPrefix       string          `json:"podMACPrefix,omitempty"`
	Mode               string          `json:"mode,omitempty"`
	Type               string          `json:"type"`
	PodDefaultRouteNIC string          `json:"podDefaultRouteNic,omitempty"`
	PodRPFilter        *int            `json:"podRPFilter,omitempty"`
	OverlayPodCIDR     []string        `json:"overlayPodCIDR,omitempty"`
	ServiceCIDR        []string        `json:"serviceCIDR,omitempty"`
	HijackCIDR         []string        `json:"hijackCIDR,omitempty"`
	PolicyRoutes       []v2beta1.Route `json:"policyRoutes,omitempty"`
}
