package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkloadEndpointStatus records what one pod was given. It is written with the main resource (there
// is no status subresource), as upstream does.
type WorkloadEndpointStatus struct {
	// current is the allocation of the pod incarnation named by current.uid.
	// +required
	Current PodIPAllocation `json:"current"`

	// ownerControllerType is the kind of the pod's top controller (Deployment, StatefulSet, ..., or Pod).
	// +required
	OwnerControllerType string `json:"ownerControllerType"`

	// ownerControllerName is the name of the pod's top controller.
	// +required
	OwnerControllerName string `json:"ownerControllerName"`
}

// PodIPAllocation is the allocation of one pod incarnation.
type PodIPAllocation struct {
	// uid is the UID of the pod the addresses were given to.
	// +required
	UID string `json:"uid"`

	// node is the node the pod ran on when the addresses were given.
	// +required
	Node string `json:"node"`

	// ips has one entry per interface, in allocation order.
	// +required
	IPs []IPAllocationDetail `json:"ips"`
}

// IPAllocationDetail is what one interface of a pod was given.
type IPAllocationDetail struct {
	// interface is the interface name inside the pod (eth0, net1, ...).
	// +required
	NIC string `json:"interface"`

	// ipv4 is the IPv4 address with prefix length, e.g. 10.6.212.145/16.
	// +optional
	IPv4 *string `json:"ipv4,omitempty"`

	// ipv6 is the IPv6 address with prefix length.
	// +optional
	IPv6 *string `json:"ipv6,omitempty"`

	// ipv4Pool is the pool the IPv4 address came from.
	// +optional
	IPv4Pool *string `json:"ipv4Pool,omitempty"`

	// ipv6Pool is the pool the IPv6 address came from.
	// +optional
	IPv6Pool *string `json:"ipv6Pool,omitempty"`

	// vlan is the VLAN ID of the interface, for information.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// ipv4Gateway is the IPv4 gateway returned to the CNI plugin.
	// +optional
	IPv4Gateway *string `json:"ipv4Gateway,omitempty"`

	// ipv6Gateway is the IPv6 gateway returned to the CNI plugin.
	// +optional
	IPv6Gateway *string `json:"ipv6Gateway,omitempty"`

	// cleanGateway is true when no gateway (and so no default route) was returned for this interface.
	// +optional
	CleanGateway *bool `json:"cleanGateway,omitempty"`

	// routes are the routes returned for this interface.
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// mac is the MAC address of the interface when an external system chose it, "aa:bb:cc:dd:ee:ff".
	// +optional
	MAC *string `json:"mac,omitempty"`
}

// SpiderEndpoint records the addresses of one pod (same name and namespace as the pod). For
// StatefulSet pods it outlives the pod so that the next incarnation gets the same addresses.
// `status.current.node` is a selectable field (`kubectl get se -A --field-selector
// status.current.node=worker-1`); each agent watches its own node's endpoints this way.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spiderendpoints",scope="Namespaced",shortName={se},singular="spiderendpoint"
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].interface",description="interface",name="INTERFACE",type=string
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv4Pool",description="ipv4Pool",name="IPV4POOL",type=string
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv4",description="ipv4",name="IPV4",type=string
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv6Pool",description="ipv6Pool",name="IPV6POOL",type=string
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv6",description="ipv6",name="IPV6",type=string
// +kubebuilder:printcolumn:JSONPath=".status.current.node",description="node",name="NODE",type=string
// +kubebuilder:selectablefield:JSONPath=".status.current.node"
type SpiderEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status WorkloadEndpointStatus `json:"status,omitempty"`
}

// SpiderEndpointList is a list of SpiderEndpoint.
//
// +kubebuilder:object:root=true
type SpiderEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderEndpoint `json:"items"`
}
