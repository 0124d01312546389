package v1

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultSocketPath is where the agent listens unless configured otherwise (Helm
// global.ipamUNIXSocketHostPath, CNI ipam_unix_socket_path).
const DefaultSocketPath = "/var/run/spidernet/spiderpool.sock"

// Paths of the API, all under the /v1 base path.
const (
	PathIPAMHealthy       = "/v1/ipam/healthy"
	PathIPAMIP            = "/v1/ipam/ip"
	PathIPAMIPs           = "/v1/ipam/ips"
	PathWorkloadEndpoint  = "/v1/workloadendpoint"
	PathCoordinatorConfig = "/v1/coordinator/config"
	PathRuntimeStartup    = "/v1/runtime/startup"
	PathRuntimeReadiness  = "/v1/runtime/readiness"
	PathRuntimeLiveness   = "/v1/runtime/liveness"
)

// IpamAddArgs asks for the addresses of one interface of one pod (POST /v1/ipam/ip).
type IpamAddArgs struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	NetNamespace string `json:"netNamespace"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID"`

	// DefaultIPv4IPPool and DefaultIPv6IPPool are the CNI configuration's default_ipv4_ippool and
	// default_ipv6_ippool (shell patterns allowed).
	DefaultIPv4IPPool []string `json:"defaultIPv4IPPool,omitempty"`
	DefaultIPv6IPPool []string `json:"defaultIPv6IPPool,omitempty"`
	CleanGateway      bool     `json:"cleanGateway,omitempty"`
	// MatchMasterSubnet is the CNI configuration's match_master_subnet: only the pools whose
	// subnet holds an address of Master serve the interface. It requires Master.
	MatchMasterSubnet bool `json:"matchMasterSubnet,omitempty"`
	// Master (ours, optional) is the host interface behind IfName, which the plugin finds when
	// matchMasterSubnet is set: for an SR-IOV VF, its PF. The plugin finds it because only it can:
	// it runs as root on the host and enters the pod's network namespace, the agent does neither.
	// Ignored when matchMasterSubnet is false; required when it is true.
	Master *Master `json:"master,omitempty"`
}

// Master is a host interface and the addresses it carries on the host.
type Master struct {
	// Name is the interface's name on the host, e.g. "ens1f0". Required.
	Name string `json:"name"`
	// Addresses are the interface's addresses with their prefix lengths, e.g. "10.20.0.5/24";
	// empty when it has none (then no pool matches).
	Addresses []string `json:"addresses,omitempty"`
}

// Validate reports the first missing required field.
func (a *IpamAddArgs) Validate() error {
	if err := required(map[string]string{
		"containerID": a.ContainerID, "ifName": a.IfName, "netNamespace": a.NetNamespace,
		"podNamespace": a.PodNamespace, "podName": a.PodName, "podUID": a.PodUID,
	}); err != nil {
		return err
	}
	if !a.MatchMasterSubnet {
		return nil
	}
	if a.Master == nil {
		return &Error{Code: CodeInvalidRequest, Message: "missing required field(s): master " +
			"(matchMasterSubnet is true: the spiderpool plugin sends the master it found for match_master_subnet)"}
	}
	return required(map[string]string{"master.name": a.Master.Name})
}

// IpamAddResponse is what the interface was given.
type IpamAddResponse struct {
	IPs    []IPConfig `json:"ips"`
	Routes []Route    `json:"routes,omitempty"`
	DNS    DNS        `json:"dns,omitempty"`
}

// IPConfig is one address of one interface.
type IPConfig struct {
	// Version is 4 or 6.
	Version int64 `json:"version"`
	// Address carries the prefix length of the pool's subnet, e.g. "10.6.212.145/16".
	Address string `json:"address"`
	IPPool  string `json:"ipPool,omitempty"`
	// Gateway is empty when the interface's gateway is cleaned.
	Gateway string `json:"gateway,omitempty"`
	Nic     string `json:"nic"`
	Vlan    int64  `json:"vlan,omitempty"`
	Mac     string `json:"mac,omitempty"`

	EnableGatewayDetection    bool `json:"enableGatewayDetection,omitempty"`
	EnableIPConflictDetection bool `json:"enableIPConflictDetection,omitempty"`
}

// Route is a route of one interface.
type Route struct {
	IfName string `json:"ifName"`
	Dst    string `json:"dst"`
	Gw     string `json:"gw"`
}

// DNS is returned unchanged to the container runtime.
type DNS struct {
	Domain      string   `json:"domain,omitempty"`
	Nameservers []string `json:"nameservers,omitempty"`
	Options     []string `json:"options,omitempty"`
	Search      []string `json:"search,omitempty"`
}

// IpamDelArgs releases what one interface of a pod holds (DELETE /v1/ipam/ip).
type IpamDelArgs struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	NetNamespace string `json:"netNamespace,omitempty"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID"`
}

// Validate reports the first missing required field.
func (a *IpamDelArgs) Validate() error {
	return required(map[string]string{
		"containerID": a.ContainerID, "ifName": a.IfName,
		"podNamespace": a.PodNamespace, "podName": a.PodName, "podUID": a.PodUID,
	})
}

// IpamBatchDelArgs releases every address of a pod (DELETE /v1/ipam/ips).
type IpamBatchDelArgs struct {
	IsReleaseConflictIPs bool   `json:"isReleaseConflictIPs,omitempty"`
	ContainerID          string `json:"containerID"`
	NetNamespace         string `json:"netNamespace,omitempty"`
	PodNamespace         string `json:"podNamespace"`
	PodName              string `json:"podName"`
	PodUID               string `json:"podUID"`
	// ConflictIPs (ours, optional) names the addresses another host answered for, so that the
	// agent does not hand them out again for a while.
	ConflictIPs []string `json:"conflictIPs,omitempty"`
}

// Validate reports the first missing required field.
func (a *IpamBatchDelArgs) Validate() error {
	return required(map[string]string{
		"containerID": a.ContainerID, "podNamespace": a.PodNamespace, "podName": a.PodName, "podUID": a.PodUID,
	})
}

// WorkloadEndpoint is a pod's SpiderEndpoint as the plugins see it (GET /v1/workloadendpoint).
type WorkloadEndpoint struct {
	PodNamespace string              `json:"podNamespace"`
	PodName      string              `json:"podName"`
	PodUID       string              `json:"podUID"`
	Node         string              `json:"node"`
	Interfaces   []InterfaceEndpoint `json:"interfaces"`
}

// InterfaceEndpoint is what one interface of the pod holds.
type InterfaceEndpoint struct {
	Interface   string  `json:"interface"`
	IPv4        string  `json:"ipv4,omitempty"`
	IPv6        string  `json:"ipv6,omitempty"`
	Mac         string  `json:"mac,omitempty"`
	Vlan        int64   `json:"vlan,omitempty"`
	IPv4Pool    string  `json:"ipv4Pool,omitempty"`
	IPv6Pool    string  `json:"ipv6Pool,omitempty"`
	IPv4Gateway string  `json:"ipv4Gateway,omitempty"`
	IPv6Gateway string  `json:"ipv6Gateway,omitempty"`
	Routes      []Route `json:"routes,omitempty"`
}

// CoordinatorConfigArgs names the pod whose coordinator settings are asked for
// (GET /v1/coordinator/config, the body carries these fields as upstream's does).
type CoordinatorConfigArgs struct {
	PodName      string `json:"podName"`
	PodNamespace string `json:"podNamespace"`
}

// Validate reports the first missing required field.
func (a *CoordinatorConfigArgs) Validate() error {
	return required(map[string]string{"podName": a.PodName, "podNamespace": a.PodNamespace})
}

// CoordinatorConfig is the SpiderCoordinator's settings merged with per-pod and per-node facts.
// The coordinator plugin uses each value its own NAD configuration does not set.
type CoordinatorConfig struct {
	Mode               string   `json:"mode"`
	OverlayPodCIDR     []string `json:"overlayPodCIDR"`
	ServiceCIDR        []string `json:"serviceCIDR"`
	HijackCIDR         []string `json:"hijackCIDR,omitempty"`
	PolicyRoutes       []Route  `json:"policyRoutes,omitempty"`
	PodMACPrefix       string   `json:"podMACPrefix,omitempty"`
	TunePodRoutes      bool     `json:"tunePodRoutes"`
	PodDefaultRouteNIC string   `json:"podDefaultRouteNIC,omitempty"`
	HostRuleTable      int      `json:"hostRuleTable,omitempty"`
	PodRPFilter        int      `json:"podRPFilter"`
	TxQueueLen         int      `json:"txQueueLen,omitempty"`
	VethLinkAddress    string   `json:"vethLinkAddress,omitempty"`
	VethMTU            int      `json:"vethMTU,omitempty"`
}

// Code classifies an error so that the client can act on it (errors.Is) without parsing text.
type Code string

const (
	CodeInvalidRequest  Code = "InvalidRequest"  // malformed or incomplete request
	CodeNotFound        Code = "NotFound"        // the pod or endpoint asked about does not exist
	CodeDeadPod         Code = "DeadPod"         // the pod is terminating or finished
	CodeNoCandidatePool Code = "NoCandidatePool" // no pool passed selection and filters
	CodePoolExhausted   Code = "PoolExhausted"   // every candidate pool is full
	CodeConflict        Code = "Conflict"        // retries exhausted on write conflicts
	CodeNotReady        Code = "NotReady"        // the agent or SpiderCoordinator is not ready
	CodeForbidden       Code = "Forbidden"       // the operation is not allowed for this pod
	CodeInternal        Code = "Internal"        // anything else
)

// Error is the body of every non-2xx answer.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Is makes errors.Is(err, &Error{Code: c}) match any error of code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// required returns an error naming the missing fields, in a stable order.
func required(fields map[string]string) error {
	var missing []string
	for name, v := range fields {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return &Error{Code: CodeInvalidRequest, Message: "missing required field(s): " + strings.Join(missing, ", ")}
}
