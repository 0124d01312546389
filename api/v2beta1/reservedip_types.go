package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservedIPSpec is the desired state of a SpiderReservedIP.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.ipVersion) || !has(self.ipVersion) || self.ipVersion == oldSelf.ipVersion",message="spec.ipVersion is not changeable"
type ReservedIPSpec struct {
	// ipVersion is the IP family, 4 or 6; derived from the first entry of ips when absent.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// ips are addresses (single IPs or ranges) that no pool hands out.
	// +optional
	IPs []string `json:"ips,omitempty"`
}

// SpiderReservedIP keeps addresses out of every pool of its family, for example addresses used by
// hosts outside Kubernetes. Addresses already allocated when it is created are not revoked.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spiderreservedips",scope="Cluster",shortName={sr},singular="spiderreservedip"
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:JSONPath=".spec.ipVersion",description="ipVersion",name="VERSION",type=string
type SpiderReservedIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ReservedIPSpec `json:"spec,omitempty"`
}

// SpiderReservedIPList is a list of SpiderReservedIP.
//
// +kubebuilder:object:root=true
type SpiderReservedIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderReservedIP `json:"items"`
}
