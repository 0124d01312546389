package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPoolSpec is the desired state of a SpiderIPPool.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.subnet) || self.subnet == oldSelf.subnet || (isCIDR(self.subnet) && isCIDR(oldSelf.subnet) && cidr(self.subnet).masked() == cidr(oldSelf.subnet).masked())",message="spec.subnet is not changeable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.ipVersion) || !has(self.ipVersion) || self.ipVersion == oldSelf.ipVersion",message="spec.ipVersion is not changeable"
type IPPoolSpec struct {
	// ipVersion is the IP family of the pool, 4 or 6. The webhook derives it from subnet when absent.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// subnet is the CIDR the pool's addresses belong to, e.g. 10.6.0.0/16. As upstream, any valid CIDR is
	// accepted, host bits and any IPv6 spelling included (10.6.0.1/16, 2002::ac0f:0/64); the webhook
	// stores its canonical network form (10.6.0.0/16, 2002::/64), and changing it to another
	// spelling of the same network is not a change.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR, e.g. 10.6.0.0/16"
	// +required
	Subnet string `json:"subnet"`

	// ips lists the addresses the pool hands out: single IPs or inclusive ranges "first-last".
	// +optional
	IPs []string `json:"ips,omitempty"`

	// excludeIPs lists addresses of ips that are never handed out, in the same format as ips.
	// +optional
	ExcludeIPs []string `json:"excludeIPs,omitempty"`

	// gateway is returned to the CNI plugin as the default gateway; inherited from the owning SpiderSubnet when unset.
	// +optional
	Gateway *string `json:"gateway,omitempty"`

	// routes are extra routes returned to the CNI plugin; inherited from the owning SpiderSubnet when nil.
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// podAffinity restricts the pool to pods whose labels match.
	// +optional
	PodAffinity *metav1.LabelSelector `json:"podAffinity,omitempty"`

	// namespaceAffinity restricts the pool to namespaces whose labels match; ignored when namespaceName is set.
	// +optional
	NamespaceAffinity *metav1.LabelSelector `json:"namespaceAffinity,omitempty"`

	// namespaceName restricts the pool to pods of the listed namespaces.
	// +optional
	NamespaceName []string `json:"namespaceName,omitempty"`

	// nodeAffinity restricts the pool to nodes whose labels match; ignored when nodeName is set.
	// +optional
	NodeAffinity *metav1.LabelSelector `json:"nodeAffinity,omitempty"`

	// nodeName restricts the pool to pods scheduled on the listed nodes.
	// +optional
	NodeName []string `json:"nodeName,omitempty"`

	// multusName restricts the pool to interfaces created from the listed NetworkAttachmentDefinitions
	// ("namespace/name", or "name" for the Spiderpool install namespace).
	// +optional
	MultusName []string `json:"multusName,omitempty"`

	// default makes the pool a cluster-wide default candidate, the last step of pool selection.
	// +kubebuilder:default=false
	// +optional
	Default *bool `json:"default,omitempty"`

	// disable stops new allocations from the pool; existing allocations are kept.
	// +kubebuilder:default=false
	// +optional
	Disable *bool `json:"disable,omitempty"`
}

// Route is a destination CIDR reached through a gateway.
type Route struct {
	// dst is the destination CIDR. Host bits are accepted as upstream accepts them: 10.6.0.1/16 means
	// 10.6.0.0/16, the form the webhooks of SpiderIPPool, SpiderSubnet and SpiderCoordinator store. In
	// a coordinator's policyRoutes a single address stands for its /32 or /128.
	// +required
	Dst string `json:"dst"`

	// gw is the next hop, an address of the same family as dst. In a pool or subnet it must lie
	// inside spec.subnet.
	// +required
	Gw string `json:"gw"`
}

// IPPoolStatus is the observed state of a SpiderIPPool. The allocation records live here so that the
// Kubernetes API stays the only database of the system.
type IPPoolStatus struct {
	// allocatedIPs is a JSON object serialised into a string, mapping each allocated IP (no prefix
	// length) to its holder: {"10.6.212.145":{"pod":"default/nginx","podUid":"5d1c..."}}. Absent when
	// nothing is allocated. A string rather than a map keeps upstream's wire format.
	// +optional
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`

	// totalIPCount is the number of usable addresses: ips minus excludeIPs.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// allocatedIPCount is the number of entries of allocatedIPs.
	// +kubebuilder:validation:Minimum=0
	// +optional
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// PoolIPAllocations is the decoded form of IPPoolStatus.AllocatedIPs, keyed by IP address.
type PoolIPAllocations map[string]PoolIPAllocation

// PoolIPAllocation names the pod holding one address.
type PoolIPAllocation struct {
	// NamespacedName is "namespace/name" of the pod.
	NamespacedName string `json:"pod"`
	// PodUID is the UID of the pod; a release only removes the record when the UID matches.
	PodUID string `json:"podUid"`
}

// SpiderIPPool is a set of addresses of one subnet, with the rules deciding which pods may use it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spiderippools",scope="Cluster",shortName={sp},singular="spiderippool"
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:JSONPath=".spec.ipVersion",description="ipVersion",name="VERSION",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.subnet",description="subnet",name="SUBNET",type=string
// +kubebuilder:printcolumn:JSONPath=".status.allocatedIPCount",description="allocatedIPCount",name="ALLOCATED-IP-COUNT",type=integer
// +kubebuilder:printcolumn:JSONPath=".status.totalIPCount",description="totalIPCount",name="TOTAL-IP-COUNT",type=integer
// +kubebuilder:printcolumn:JSONPath=".spec.default",description="default",name="DEFAULT",type=boolean
// +kubebuilder:printcolumn:JSONPath=".spec.disable",description="disable",name="DISABLE",type=boolean,priority=10
// +kubebuilder:printcolumn:JSONPath=".spec.nodeName",description="nodeName",name="NodeName",type=string,priority=10
// +kubebuilder:printcolumn:JSONPath=".spec.multusName",description="multusName",name="MultusName",type=string,priority=10
// +kubebuilder:printcolumn:JSONPath=`.spec.podAffinity.matchLabels['ipam\.spidernet\.io/app\-namespace']`,description="AppNamespace",name="APP-NAMESPACE",type=string,priority=10
type SpiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec,omitempty"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// SpiderIPPoolList is a list of SpiderIPPool.
//
// +kubebuilder:object:root=true
type SpiderIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderIPPool `json:"items"`
}
