package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CoordinatorSpec configures the coordinator CNI plugin. It is the spec of the cluster-wide
// SpiderCoordinator and, as per-network overrides, SpiderMultusConfig.spec.coordinator.
type CoordinatorSpec struct {
	// mode is how the coordinator wires the pod: auto (decide per interface), underlay, overlay or disabled.
	// +kubebuilder:validation:Enum=auto;underlay;overlay;disabled
	// +kubebuilder:default=auto
	// +optional
	Mode *string `json:"mode,omitempty"`

	// podCIDRType is where the controller reads the overlay pod CIDRs (status.overlayPodCIDR) from:
	// cluster (kubeadm-config's podSubnet or kube-controller-manager's --cluster-cidr), calico (its
	// IPPools), cilium (its configuration), none (no overlay), or auto (chosen from the first CNI
	// configuration file on the controller's node). Optional here because a SpiderMultusConfig
	// inherits it from the SpiderCoordinator.
	// +kubebuilder:validation:Enum=auto;cluster;calico;cilium;none
	// +optional
	PodCIDRType *string `json:"podCIDRType,omitempty"`

	// hijackCIDR lists extra destinations the pod reaches through the host, e.g. nodelocaldns 169.254.0.0/16.
	// Entries are CIDRs (host bits allowed, masked) or single addresses (their /32 or /128).
	// +optional
	HijackCIDR []string `json:"hijackCIDR,omitempty"`

	// policyRoutes are extra routes put into the policy table of the interface being configured.
	// +optional
	PolicyRoutes []Route `json:"policyRoutes,omitempty"`

	// podMACPrefix fixes the first two bytes of the pod NIC's MAC address ("0a:1b"); the first byte
	// must be unicast.
	// +optional
	PodMACPrefix *string `json:"podMACPrefix,omitempty"`

	// tunePodRoutes makes the coordinator arrange routes between the NICs of a multi-NIC pod.
	// +kubebuilder:default=true
	// +optional
	TunePodRoutes *bool `json:"tunePodRoutes,omitempty"`

	// podDefaultRouteNIC is the NIC that keeps the pod's default route; empty keeps it on eth0.
	// +optional
	PodDefaultRouteNIC *string `json:"podDefaultRouteNIC,omitempty"`

	// hostRuleTable is the host's policy routing table holding the routes to pod addresses; not
	// one of the kernel's tables 253, 254 and 255.
	// +kubebuilder:default=500
	// +optional
	HostRuleTable *int `json:"hostRuleTable,omitempty"`

	// podRPFilter is the rp_filter value set in the pod: 0, 1 or 2; a negative value leaves it alone.
	// +kubebuilder:default=0
	// +optional
	PodRPFilter *int `json:"podRPFilter,omitempty"`

	// txQueueLen is the transmit queue length of the pod NIC; 0 leaves it alone.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	TxQueueLen *int `json:"txQueueLen,omitempty"`

	// vethLinkAddress is an IPv4 link-local address put on veth0 in the pod; empty disables it.
	// +optional
	VethLinkAddress *string `json:"vethLinkAddress,omitempty"`

	// vethMTU is the MTU of the veth pair between pod and host.
	// +kubebuilder:validation:Minimum=1
	// +optional
	VethMTU *int `json:"vethMTU,omitempty"`

	// detectIPConflict is accepted for manifests written for releases before v1.0; conflict detection
	// is now the IPAM setting ipam.enableIPConflictDetection. The value is ignored.
	// +optional
	DetectIPConflict *bool `json:"detectIPConflict,omitempty"`

	// detectGateway is accepted for manifests written for releases before v1.0; gateway detection is
	// now the IPAM setting ipam.enableGatewayDetection. The value is ignored.
	// +optional
	DetectGateway *bool `json:"detectGateway,omitempty"`

	// hostRPFilter is accepted for manifests written for releases before v1.0. The value is ignored.
	// +optional
	HostRPFilter *int `json:"hostRPFilter,omitempty"`
}

// CoordinatorStatus is what the controller found about the cluster's networks.
type CoordinatorStatus struct {
	// phase is Synced when the CIDRs below are current, NotReady otherwise.
	// +required
	Phase string `json:"phase"`

	// reason says why the phase is NotReady; empty when Synced.
	// +optional
	Reason string `json:"reason,omitempty"`

	// overlayPodCIDR are the pod CIDRs of the overlay (cluster) network.
	// +optional
	OverlayPodCIDR []string `json:"overlayPodCIDR"`

	// serviceCIDR are the cluster's service CIDRs.
	// +optional
	ServiceCIDR []string `json:"serviceCIDR"`
}

// SpiderCoordinator holds the cluster-wide defaults of the coordinator plugin (one object, named
// "default") and, in its status, the pod and service CIDRs the controller detected.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spidercoordinators",scope="Cluster",shortName={scc},singular="spidercoordinator"
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
type SpiderCoordinator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CoordinatorSpec   `json:"spec,omitempty"`
	Status CoordinatorStatus `json:"status,omitempty"`
}

// SpiderCoordinatorList is a list of SpiderCoordinator.
//
// +kubebuilder:object:root=true
type SpiderCoordinatorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderCoordinator `json:"items"`
}
