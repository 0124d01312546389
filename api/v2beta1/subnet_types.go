package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubnetSpec is the desired state of a SpiderSubnet.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.subnet) || self.subnet == oldSelf.subnet || (isCIDR(self.subnet) && isCIDR(oldSelf.subnet) && cidr(self.subnet).masked() == cidr(oldSelf.subnet).masked())",message="spec.subnet is not changeable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.ipVersion) || !has(self.ipVersion) || self.ipVersion == oldSelf.ipVersion",message="spec.ipVersion is not changeable"
type SubnetSpec struct {
	// ipVersion is the IP family, 4 or 6; derived from subnet when absent.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// subnet is the CIDR, written as in a SpiderIPPool: any valid CIDR (2002::ac0f:0/64), stored by the
	// webhook in canonical network form (2002::/64). Pools of the same network belong to this subnet,
	// whatever their spelling.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR, e.g. 10.6.0.0/16"
	// +required
	Subnet string `json:"subnet"`

	// ips are the addresses the subnet may hand to the pools it controls (single IPs or ranges).
	// +optional
	IPs []string `json:"ips,omitempty"`

	// excludeIPs are addresses of ips never handed to a pool.
	// +optional
	ExcludeIPs []string `json:"excludeIPs,omitempty"`

	// gateway is inherited by controlled pools that set none.
	// +optional
	Gateway *string `json:"gateway,omitempty"`

	// routes are inherited by controlled pools whose routes are nil.
	// +optional
	Routes []Route `json:"routes,omitempty"`
}

// SubnetStatus is the observed state of a SpiderSubnet.
type SubnetStatus struct {
	// controlledIPPools is a JSON object serialised into a string, mapping each controlled pool name to
	// the addresses it took from this subnet: {"pool":{"ips":["10.6.0.10-10.6.0.20"],"application":"..."}}.
	// +optional
	ControlledIPPools *string `json:"controlledIPPools,omitempty"`

	// totalIPCount is the number of usable addresses: ips minus excludeIPs.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// allocatedIPCount is the number of addresses handed to controlled pools.
	// +kubebuilder:validation:Minimum=0
	// +optional
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// PoolIPPreAllocations is the decoded form of SubnetStatus.ControlledIPPools, keyed by pool name.
type PoolIPPreAllocations map[string]PoolIPPreAllocation

// PoolIPPreAllocation is the share of a subnet held by one pool.
type PoolIPPreAllocation struct {
	IPs         []string `json:"ips"`
	Application *string  `json:"application,omitempty"`
}

// SpiderSubnet is a CIDR whose addresses are shared out to SpiderIPPools, by hand or automatically
// for workloads.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spidersubnets",scope="Cluster",shortName={ss},singular="spidersubnet"
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:JSONPath=".spec.ipVersion",description="ipVersion",name="VERSION",type=string
// +kubebuilder:printcolumn:JSONPath=".spec.subnet",description="subnet",name="SUBNET",type=string
// +kubebuilder:printcolumn:JSONPath=".status.allocatedIPCount",description="allocatedIPCount",name="ALLOCATED-IP-COUNT",type=integer
// +kubebuilder:printcolumn:JSONPath=".status.totalIPCount",description="totalIPCount",name="TOTAL-IP-COUNT",type=integer
type SpiderSubnet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SubnetSpec   `json:"spec,omitempty"`
	Status SubnetStatus `json:"status,omitempty"`
}

// SpiderSubnetList is a list of SpiderSubnet.
//
// +kubebuilder:object:root=true
type SpiderSubnetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderSubnet `json:"items"`
}
