package ipam

import (
	"net/netip"
)

// DefaultMaxRecords is how many allocation records a pool holds at most
// unless Config.MaxRecords says otherwise (upstream's
// SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS). It bounds the size of the status
// string that every allocation rewrites.
const DefaultMaxRecords = 5000

// Config is the agent-wide configuration the core needs.
type Config struct {
	// EnableIPv4 and EnableIPv6 say which families every interface gets
	// (ipam.enableIPv4 / ipam.enableIPv6).
	EnableIPv4, EnableIPv6 bool

	// InstallNamespace is Spiderpool's namespace. A pool multusName entry
	// without "/" and a default network without namespace mean this one.
	InstallNamespace string

	// ClusterDefaultNAD is the NAD Multus uses for eth0 when the pod has no
	// v1.multus-cni.io/default-network annotation
	// (multus.multusCNI.defaultCniCRName as given): "name", in
	// InstallNamespace, or "namespace/name".
	ClusterDefaultNAD string

	// EnableAutoPool is ipam.spiderSubnet.enable and autoPool.enable
	// together. Without it subnet annotations are an error.
	EnableAutoPool bool

	// MaxRecords caps the records of one pool; <= 0 means DefaultMaxRecords.
	MaxRecords int

	// SearchOffset returns where the free-address search of a pool starts
	// (a position in the pool's free set, wrapping). Agents on different
	// nodes pass different offsets so that they rarely race for the same
	// address; nil means 0, the lowest free address, as upstream does.
	SearchOffset func(pool string) uint64

	// Quarantine holds addresses found in use outside Spiderpool (IP
	// conflict detection); they are skipped like reserved ones. nil: none.
	Quarantine *Quarantine
}

func (c *Config) maxRecords() int {
	if c.MaxRecords <= 0 {
		return DefaultMaxRecords
	}
	return c.MaxRecords
}

func (c *Config) offset(pool string) uint64 {
	if c.SearchOffset == nil {
		return 0
	}
	return c.SearchOffset(pool)
}

// versions returns the enabled families in the order they are reported.
func (c *Config) versions() []int {
	var vs []int
	if c.EnableIPv4 {
		vs = append(vs, 4)
	}
	if c.EnableIPv6 {
		vs = append(vs, 6)
	}
	return vs
}

// Request is one CNI ADD for one interface, with what the agent knows about
// the pod from its caches. It is a plain value so that the core never looks
// anything up by itself.
type Request struct {
	PodNamespace, PodName, PodUID string
	PodLabels, PodAnnotations     map[string]string

	NodeName   string
	NodeLabels map[string]string

	NamespaceLabels, NamespaceAnnotations map[string]string

	// IfName is the interface being configured (eth0, net1, ...).
	IfName string

	// DefaultIPv4Pools and DefaultIPv6Pools come from the CNI configuration
	// (ipam.default_ipv4_ippool / default_ipv6_ippool of the NAD).
	DefaultIPv4Pools, DefaultIPv6Pools []string

	// CleanGateway is the CNI configuration's clean_gateway; a matching
	// entry of ipam.spidernet.io/ippools overrides it.
	CleanGateway bool

	// Controller is the pod's top controller; auto-created pools match
	// their podAffinity against it rather than the pod's labels.
	Controller Controller

	// Master is the host interface behind IfName with its addresses, given
	// when the CNI configuration sets match_master_subnet (SR-IOV: the PF
	// of the VF the main plugin moved into the pod): only pools whose subnet
	// holds one of those addresses serve the interface. nil: no such rule.
	Master *Master

	// OtherNICIPs are addresses the pod UID holds for its other interfaces
	// (from its SpiderEndpoint). Pool records carry no interface name, so
	// without this list a retry for net1 could be handed eth0's address
	// when both come from one pool.
	OtherNICIPs []netip.Addr
}

// Master is a host interface and the addresses it carries.
type Master struct {
	Name  string
	Addrs []netip.Prefix
}

// Pod returns "namespace/name", the form pool records store.
func (r *Request) Pod() string { return r.PodNamespace + "/" + r.PodName }

// Controller identifies a pod's top controller (Deployment, StatefulSet,
// ..., or the Pod itself).
type Controller struct {
	APIVersion string // "apps/v1"
	Kind       string
	Namespace  string
	Name       string
}
