package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MultusCNIConfigSpec is the desired state of a SpiderMultusConfig: one main CNI plugin, its IPAM
// pools, and the optional coordinator and chained plugins.
type MultusCNIConfigSpec struct {
	// cniType is the main CNI plugin; exactly the sub-object of that name may be set. custom means
	// customCNI is used verbatim.
	// +kubebuilder:validation:Enum=macvlan;ipvlan;vlan;sriov;ovs;ib-sriov;ipoib;custom
	// +kubebuilder:default=custom
	// +optional
	CniType *string `json:"cniType,omitempty"`

	// macvlan configures cniType macvlan.
	// +optional
	MacvlanConfig *SpiderMacvlanCniConfig `json:"macvlan,omitempty"`

	// ipvlan configures cniType ipvlan.
	// +optional
	IPVlanConfig *SpiderIPvlanCniConfig `json:"ipvlan,omitempty"`

	// vlan configures cniType vlan.
	// +optional
	VlanConfig *SpiderVlanCniConfig `json:"vlan,omitempty"`

	// sriov configures cniType sriov.
	// +optional
	SriovConfig *SpiderSRIOVCniConfig `json:"sriov,omitempty"`

	// ovs configures cniType ovs.
	// +optional
	OvsConfig *SpiderOvsCniConfig `json:"ovs,omitempty"`

	// ibsriov configures cniType ib-sriov.
	// +optional
	IbSriovConfig *SpiderIBSriovCniConfig `json:"ibsriov,omitempty"`

	// ipoib configures cniType ipoib.
	// +optional
	IpoibConfig *SpiderIpoibCniConfig `json:"ipoib,omitempty"`

	// enableCoordinator appends the coordinator plugin to the generated chain; forced to false for custom.
	// +kubebuilder:default=true
	// +optional
	EnableCoordinator *bool `json:"enableCoordinator,omitempty"`

	// disableIPAM leaves the ipam block out of the main plugin.
	// +kubebuilder:default=false
	// +optional
	DisableIPAM *bool `json:"disableIPAM,omitempty"`

	// coordinator overrides the SpiderCoordinator defaults for this network.
	// +optional
	CoordinatorConfig *CoordinatorSpec `json:"coordinator,omitempty"`

	// chainCNIJsonData are plugin objects, each a JSON object in a string, inserted into the
	// generated chain after the main plugin (and before coordinator).
	// +optional
	ChainCNIJsonData []string `json:"chainCNIJsonData"`

	// customCNI is the whole CNI configuration (JSON) used verbatim for cniType custom; may be empty.
	// +optional
	CustomCNIConfig *string `json:"customCNI,omitempty"`
}

// SpiderMacvlanCniConfig configures the macvlan plugin.
type SpiderMacvlanCniConfig struct {
	// master lists the host parent interfaces; two or more need bond, which the ifacer plugin creates.
	// +kubebuilder:validation:MinItems=1
	// +required
	Master []string `json:"master"`

	// mtu of the pod interface; 0 lets the kernel choose.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// vlanID, when not 0, makes the parent the VLAN sub-interface <master>.<vlanID> (created by ifacer).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// bond is the bond built from several masters.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// rdmaResourceName is the RDMA shared-device resource injected into pods (when resource injection is on).
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIPvlanCniConfig configures the ipvlan plugin; the fields mean what they mean for macvlan.
type SpiderIPvlanCniConfig struct {
	// master lists the host parent interfaces; two or more need bond.
	// +kubebuilder:validation:MinItems=1
	// +required
	Master []string `json:"master"`

	// mtu of the pod interface; 0 lets the kernel choose.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// vlanID, when not 0, makes the parent the VLAN sub-interface <master>.<vlanID>.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// bond is the bond built from several masters.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// rdmaResourceName is the RDMA shared-device resource injected into pods.
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderVlanCniConfig configures the vlan plugin.
type SpiderVlanCniConfig struct {
	// master lists the host parent interfaces; two or more need bond.
	// +kubebuilder:validation:MinItems=1
	// +required
	Master []string `json:"master"`

	// mtu of the pod interface; 0 lets the kernel choose.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// vlanMode is manual (vlanID given here) or auto (vlanID chosen elsewhere, vlanID forbidden).
	// +kubebuilder:validation:Enum=manual;auto
	// +kubebuilder:default=manual
	// +optional
	VlanMode *string `json:"vlanMode,omitempty"`

	// vlanID is the VLAN of the pod interface; required in manual mode, forbidden in auto mode.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// bond is the bond built from several masters.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// rdmaResourceName is the RDMA shared-device resource injected into pods.
	// +optional
	RdmaResourceName *string `json:"rdmaResourceName,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderSRIOVCniConfig configures the sriov plugin.
type SpiderSRIOVCniConfig struct {
	// resourceName is the device-plugin resource of the VFs, e.g. spidernet.io/mellanoxrdma.
	// +required
	ResourceName *string `json:"resourceName,omitempty"`

	// vlanID tags the VF's traffic; 0 means untagged.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// mtu, when above 0, is set on the VF by a chained tuning plugin.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// minTxRateMbps is the VF's guaranteed transmit rate; 0 disables it.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinTxRateMbps *int `json:"minTxRateMbps,omitempty"`

	// maxTxRateMbps caps the VF's transmit rate; 0 disables it.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTxRateMbps *int `json:"maxTxRateMbps,omitempty"`

	// rdmaIsolation chains the rdma plugin, which moves the VF's RDMA device into the pod.
	// +kubebuilder:default=false
	// +optional
	RdmaIsolation *bool `json:"rdmaIsolation,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIBSriovCniConfig configures the ib-sriov plugin.
type SpiderIBSriovCniConfig struct {
	// resourceName is the device-plugin resource of the InfiniBand VFs.
	// +required
	ResourceName *string `json:"resourceName,omitempty"`

	// pkey is the InfiniBand partition key given to the VF.
	// +optional
	Pkey *string `json:"pkey,omitempty"`

	// linkState is the link state set on the VF: auto (follows the physical port), enable or disable.
	// +kubebuilder:validation:Enum=auto;enable;disable
	// +kubebuilder:default=enable
	// +optional
	LinkState *string `json:"linkState,omitempty"`

	// rdmaIsolation moves the VF's RDMA device into the pod.
	// +kubebuilder:default=true
	// +optional
	RdmaIsolation *bool `json:"rdmaIsolation,omitempty"`

	// enableIbKubernetes makes the plugin cooperate with ib-kubernetes.
	// +kubebuilder:default=false
	// +optional
	EnableIbKubernetes *bool `json:"enableIbKubernetes,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIpoibCniConfig configures the ipoib plugin.
type SpiderIpoibCniConfig struct {
	// master is the host interface the IPoIB link is created from.
	// +required
	Master string `json:"master,omitempty"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderOvsCniConfig configures the ovs plugin.
type SpiderOvsCniConfig struct {
	// bridge is the Open vSwitch bridge the pod port is added to.
	// +required
	BrName string `json:"bridge"`

	// vlan is the access VLAN tag of the port.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanTag *int32 `json:"vlan,omitempty"`

	// trunk lists the VLANs allowed on a trunk port.
	// +optional
	Trunk []*Trunk `json:"trunk,omitempty"`

	// deviceID is the PCI address of a VF (hardware offload), in sysfs form.
	// +optional
	DeviceID string `json:"deviceID"`

	// ippools are the default pools written into the generated IPAM configuration.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// Trunk is one VLAN or VLAN range of an ovs trunk port.
type Trunk struct {
	// minID is the first VLAN of a range.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MinID *uint `json:"minID,omitempty"`

	// maxID is the last VLAN of a range.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MaxID *uint `json:"maxID,omitempty"`

	// id is a single VLAN.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	ID *uint `json:"id,omitempty"`
}

// BondConfig is a bond device built by the ifacer plugin from several masters.
type BondConfig struct {
	// name of the bond device.
	// +required
	Name string `json:"name"`

	// mode is the bonding mode, 0 (balance-rr) to 6 (balance-alb).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=6
	// +required
	Mode int32 `json:"mode"`

	// options are extra bond parameters, "k1=v1;k2=v2".
	// +optional
	Options *string `json:"options,omitempty"`
}

// SpiderpoolPools are the default pools of a network's IPAM configuration.
type SpiderpoolPools struct {
	// matchMasterSubnet keeps only the pools whose subnet holds an address of the VF's parent
	// interface (PF). Only cniType sriov may set it true; the other types refuse it.
	// +kubebuilder:default=false
	// +optional
	MatchMasterSubnet *bool `json:"matchMasterSubnet,omitempty"`

	// ipv4 lists IPv4 pool names; shell-style wildcards are allowed.
	// +optional
	IPv4IPPool []string `json:"ipv4,omitempty"`

	// ipv6 lists IPv6 pool names; shell-style wildcards are allowed.
	// +optional
	IPv6IPPool []string `json:"ipv6,omitempty"`
}

// SpiderMultusConfig generates a Multus NetworkAttachmentDefinition of the same namespace (named
// after it, or after the multus.spidernet.io/cr-name annotation) and keeps it in sync.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spidermultusconfigs",scope="Namespaced",shortName={smc},singular="spidermultusconfig"
// +kubebuilder:storageversion
type SpiderMultusConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MultusCNIConfigSpec `json:"spec,omitempty"`
}

// SpiderMultusConfigList is a list of SpiderMultusConfig.
//
// +kubebuilder:object:root=true
type SpiderMultusConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderMultusConfig `json:"items"`
}
