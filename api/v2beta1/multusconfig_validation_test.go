package v2beta1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// smc builds the SpiderMultusConfig default/net of cniType ("" leaves it unset) with opts.
func smc(cniType string, opts ...build.Option) *v2beta1.SpiderMultusConfig {
	if cniType != "" {
		opts = append([]build.Option{build.CNIType(cniType)}, opts...)
	}
	return build.MultusConfig("default", "net", opts...)
}

func TestValidateSpiderMultusConfig(t *testing.T) {
	s := func(v string) *string { return &v }
	i32 := func(v int32) *int32 { return &v }
	n := func(v int) *int { return &v }
	u := func(v uint) *uint { return &v }
	yes := new(true)
	macvlan := func(f func(*v2beta1.SpiderMacvlanCniConfig)) build.Option {
		return build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"ens192"}}
			if f != nil {
				f(m.Spec.MacvlanConfig)
			}
		})
	}
	ovs := func(f func(*v2beta1.SpiderOvsCniConfig)) build.Option {
		return build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1"}
			if f != nil {
				f(m.Spec.OvsConfig)
			}
		})
	}
	sriov := func(f func(*v2beta1.SpiderSRIOVCniConfig)) build.Option {
		return build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{ResourceName: s("spidernet.io/mellanoxrdma")}
			if f != nil {
				f(m.Spec.SriovConfig)
			}
		})
	}
	vlan := func(f func(*v2beta1.SpiderVlanCniConfig)) build.Option {
		return build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanID: i32(100)}
			if f != nil {
				f(m.Spec.VlanConfig)
			}
		})
	}

	tests := []struct {
		name string
		smc  *v2beta1.SpiderMultusConfig
		want field.ErrorList
	}{
		// Accepted.
		{name: "macvlan", smc: smc("macvlan", macvlan(nil))},
		{name: "macvlan with vlan and bond", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) {
			c.Master, c.VlanID, c.MTU = []string{"ens192", "ens224"}, i32(100), i32(9000)
			c.Bond = &v2beta1.BondConfig{Name: "bond0", Mode: 1, Options: s("miimon=100")}
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"10-6-v4", "rdmarail1-*"}, IPv6IPPool: []string{"v6-pool-[ab]"}}
		}))},
		{name: "ipvlan", smc: smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
		}))},
		{name: "vlan manual", smc: smc("vlan", vlan(nil))},
		{name: "vlan auto", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) { c.VlanMode, c.VlanID = s("auto"), nil }))},
		{name: "sriov with matchMasterSubnet", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) {
			c.VlanID, c.MinTxRateMbps, c.MaxTxRateMbps, c.RdmaIsolation = i32(100), n(10), n(100), yes
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{MatchMasterSubnet: yes}
		}))},
		{name: "ib-sriov", smc: smc("ib-sriov", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: s("spidernet.io/ib"), LinkState: s("auto")}
		}))},
		{name: "ipoib", smc: smc("ipoib", build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.IpoibConfig = &v2beta1.SpiderIpoibCniConfig{Master: "ib0"} }))},
		{name: "ovs with trunk", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) {
			c.VlanTag, c.Trunk = i32(10), []*v2beta1.Trunk{{MinID: u(10), MaxID: u(20)}, {ID: u(42)}}
		}))},
		{name: "custom with CNI JSON", smc: smc("custom", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.CustomCNIConfig = s(`{"cniVersion":"0.3.1","name":"x","plugins":[{"type":"bridge"}]}`)
		}))},
		{name: "custom empty", smc: smc("custom", build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("") }))},
		{name: "nil cniType is custom", smc: smc("")},
		{name: "annotations accepted", smc: smc("macvlan", macvlan(nil), build.Annotation(v2beta1.AnnoMultusConfigName, "my-nad"),
			build.Annotation(v2beta1.AnnoMultusConfigCNIVersion, "1.0.0"))},
		{name: "CNI version 1.1.0 accepted", smc: smc("macvlan", macvlan(nil), build.Annotation(v2beta1.AnnoMultusConfigCNIVersion, "1.1.0"))},
		{name: "resource injection allowed for macvlan", smc: smc("macvlan", macvlan(nil), build.Annotation(v2beta1.AnnoRDMAResourceInject, "rdma"))},
		{name: "chain plugins", smc: smc("macvlan", macvlan(nil), build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.ChainCNIJsonData = []string{`{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}`}
		}))},

		// Structure.
		{name: "cniType unsupported", smc: smc("bridge"), want: field.ErrorList{notSupported("spec.cniType")}},
		{name: "macvlan sub-object missing", smc: smc("macvlan"), want: field.ErrorList{required("spec.macvlan")}},
		{name: "ipvlan sub-object missing", smc: smc("ipvlan"), want: field.ErrorList{required("spec.ipvlan")}},
		{name: "vlan sub-object missing", smc: smc("vlan"), want: field.ErrorList{required("spec.vlan")}},
		{name: "sriov sub-object missing", smc: smc("sriov"), want: field.ErrorList{required("spec.sriov")}},
		{name: "ib-sriov sub-object missing", smc: smc("ib-sriov"), want: field.ErrorList{required("spec.ibsriov")}},
		{name: "ipoib sub-object missing", smc: smc("ipoib"), want: field.ErrorList{required("spec.ipoib")}},
		{name: "ovs sub-object missing", smc: smc("ovs"), want: field.ErrorList{required("spec.ovs")}},
		{name: "other sub-object present", smc: smc("macvlan", macvlan(nil), build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
		})), want: field.ErrorList{forbidden("spec.ipvlan", "cniType macvlan only supports spec.macvlan; remove spec.ipvlan")}},
		{name: "customCNI with macvlan", smc: smc("macvlan", macvlan(nil),
			build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.CustomCNIConfig = s(`{"type":"x"}`) })),
			want: field.ErrorList{forbidden("spec.customCNI", "cniType macvlan only supports spec.macvlan; remove spec.customCNI")}},
		// kubectl apply of an ipvlan object over spiderpool-init's custom placeholder keeps customCNI "".
		{name: "empty customCNI with ipvlan", smc: smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			m.Spec.CustomCNIConfig = s("")
		}))},
		{name: "sub-object with default custom", smc: smc("", macvlan(nil)),
			want: field.ErrorList{forbidden("spec.macvlan", "cniType custom only supports spec.customCNI; remove spec.macvlan")}},

		// macvlan / ipvlan / vlan rules.
		{name: "master empty", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.Master = nil })),
			want: field.ErrorList{required("spec.macvlan.master")}},
		{name: "master entry invalid", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.Master = []string{"ens192", "bad/name"} })),
			want: field.ErrorList{invalid("spec.macvlan.master[1]"), required("spec.macvlan.bond")}},
		{name: "two masters without bond", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.Master = []string{"ens192", "ens224"} })),
			want: field.ErrorList{required("spec.macvlan.bond")}},
		{name: "two masters with nameless bond", smc: smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &v2beta1.BondConfig{Mode: 1}}
		})), want: field.ErrorList{required("spec.ipvlan.bond.name")}},
		{name: "bond mode out of range", smc: smc("macvlan",
			macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.Bond = &v2beta1.BondConfig{Name: "bond0", Mode: 7} })),
			want: field.ErrorList{invalid("spec.macvlan.bond.mode")}},
		{name: "vlanID out of range", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.VlanID = i32(4095) })),
			want: field.ErrorList{invalid("spec.macvlan.vlanID")}},
		{name: "ipvlan vlanID negative", smc: smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}, VlanID: i32(-1)}
		})), want: field.ErrorList{invalid("spec.ipvlan.vlanID")}},
		{name: "mtu negative", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) { c.MTU = i32(-1) })),
			want: field.ErrorList{invalid("spec.macvlan.mtu")}},
		{name: "matchMasterSubnet on ipvlan", smc: smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{MatchMasterSubnet: yes}}
		})), want: field.ErrorList{forbidden("spec.ipvlan.ippools.matchMasterSubnet", "is only supported by cniType sriov")}},
		{name: "matchMasterSubnet on macvlan", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{MatchMasterSubnet: yes}
		})),
			want: field.ErrorList{forbidden("spec.macvlan.ippools.matchMasterSubnet")}},
		{name: "matchMasterSubnet on vlan", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) {
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{MatchMasterSubnet: yes}
		})),
			want: field.ErrorList{forbidden("spec.vlan.ippools.matchMasterSubnet")}},
		{name: "pool name invalid", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"Pool_A"}}
		})),
			want: field.ErrorList{invalid("spec.macvlan.ippools.ipv4[0]", "not a valid SpiderIPPool name: "+subdomainMsg)}},
		{name: "pool pattern malformed", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{IPv6IPPool: []string{"ok", "v6-[a"}}
		})),
			want: field.ErrorList{invalid("spec.macvlan.ippools.ipv6[1]", "not a valid pool name pattern: syntax error in pattern")}},
		{name: "pool pattern with bad character", smc: smc("macvlan", macvlan(func(c *v2beta1.SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"A*"}}
		})),
			want: field.ErrorList{invalid("spec.macvlan.ippools.ipv4[0]", "character 'A' cannot appear in a pool name pattern")}},
		{name: "vlan manual without vlanID", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) { c.VlanID = nil })),
			want: field.ErrorList{required("spec.vlan.vlanID")}},
		{name: "vlan auto with vlanID", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) { c.VlanMode = s("auto") })),
			want: field.ErrorList{forbidden("spec.vlan.vlanID")}},
		{name: "vlan mode unsupported", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) { c.VlanMode = s("trunk") })),
			want: field.ErrorList{notSupported("spec.vlan.vlanMode")}},
		{name: "vlan vlanID out of range", smc: smc("vlan", vlan(func(c *v2beta1.SpiderVlanCniConfig) { c.VlanID = i32(5000) })),
			want: field.ErrorList{invalid("spec.vlan.vlanID")}},

		// sriov, ib-sriov, ipoib.
		{name: "sriov resourceName missing", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.ResourceName = nil })),
			want: field.ErrorList{required("spec.sriov.resourceName")}},
		{name: "sriov resourceName empty", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.ResourceName = s("") })),
			want: field.ErrorList{required("spec.sriov.resourceName")}},
		{name: "sriov min above max", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.MinTxRateMbps, c.MaxTxRateMbps = n(200), n(100) })),
			want: field.ErrorList{invalid("spec.sriov.minTxRateMbps", "must not be greater than maxTxRateMbps (100)")}},
		{name: "sriov negative rate", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.MaxTxRateMbps = n(-1) })),
			want: field.ErrorList{invalid("spec.sriov.maxTxRateMbps")}},
		{name: "sriov mtu negative", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.MTU = i32(-5) })),
			want: field.ErrorList{invalid("spec.sriov.mtu")}},
		{name: "sriov vlanID out of range", smc: smc("sriov", sriov(func(c *v2beta1.SpiderSRIOVCniConfig) { c.VlanID = i32(4095) })),
			want: field.ErrorList{invalid("spec.sriov.vlanID")}},
		{name: "ib-sriov resourceName missing", smc: smc("ib-sriov",
			build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{} })),
			want: field.ErrorList{required("spec.ibsriov.resourceName")}},
		{name: "ib-sriov linkState unsupported", smc: smc("ib-sriov", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: s("r"), LinkState: s("up")}
		})), want: field.ErrorList{notSupported("spec.ibsriov.linkState")}},
		{name: "ipoib master missing", smc: smc("ipoib", build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.IpoibConfig = &v2beta1.SpiderIpoibCniConfig{} })),
			want: field.ErrorList{required("spec.ipoib.master")}},

		// ovs.
		{name: "ovs bridge missing", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) { c.BrName = "" })),
			want: field.ErrorList{required("spec.ovs.bridge")}},
		{name: "ovs vlan out of range", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) { c.VlanTag = i32(4095) })),
			want: field.ErrorList{invalid("spec.ovs.vlan")}},
		{name: "ovs trunk min above max", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) {
			c.Trunk = []*v2beta1.Trunk{{ID: u(1)}, {MinID: u(30), MaxID: u(20)}}
		})),
			want: field.ErrorList{invalid("spec.ovs.trunk[1].minID", "must not be greater than maxID (20)")}},
		{name: "ovs trunk id out of range", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) { c.Trunk = []*v2beta1.Trunk{{ID: u(4095)}} })),
			want: field.ErrorList{invalid("spec.ovs.trunk[0].id")}},
		{name: "ovs trunk null entry", smc: smc("ovs", ovs(func(c *v2beta1.SpiderOvsCniConfig) { c.Trunk = []*v2beta1.Trunk{nil} })),
			want: field.ErrorList{required("spec.ovs.trunk[0]")}},
		{name: "ovs rejects RDMA injection", smc: smc("ovs", ovs(nil), build.Annotation(v2beta1.AnnoRDMAResourceInject, "g")),
			want: field.ErrorList{forbidden("metadata.annotations[cni.spidernet.io/rdma-resource-inject]",
				"cniType ovs does not support RDMA or network resource injection")}},

		// custom.
		{name: "custom rejects network injection", smc: smc("custom", build.Annotation(v2beta1.AnnoNetworkResourceInject, "g")),
			want: field.ErrorList{forbidden("metadata.annotations[cni.spidernet.io/network-resource-inject]",
				"cniType custom does not support RDMA or network resource injection")}},
		{name: "customCNI not JSON", smc: smc("custom", build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("{") })),
			want: field.ErrorList{invalid("spec.customCNI", "must be a JSON object (the whole CNI configuration)")}},
		{name: "customCNI JSON but not an object", smc: smc("custom", build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("[1]") })),
			want: field.ErrorList{invalid("spec.customCNI")}},

		// Shared parts.
		{name: "chain entry not JSON", smc: smc("macvlan", macvlan(nil),
			build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.ChainCNIJsonData = []string{`{"type":"tuning"}`, "tuning"} })),
			want: field.ErrorList{invalid("spec.chainCNIJsonData[1]",
				"must be a JSON object describing a CNI plugin: invalid character 'u' in literal true (expecting 'r')")}},
		{name: "chain entry without type", smc: smc("macvlan", macvlan(nil),
			build.With(func(m *v2beta1.SpiderMultusConfig) { m.Spec.ChainCNIJsonData = []string{`{"mtu":1400}`} })),
			want: field.ErrorList{invalid("spec.chainCNIJsonData[0]", `must be a JSON object with a non-empty "type"`)}},
		{name: "cr-name invalid", smc: smc("macvlan", macvlan(nil), build.Annotation(v2beta1.AnnoMultusConfigName, "My_NAD")),
			want: field.ErrorList{invalid("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "cni-version unsupported", smc: smc("macvlan", macvlan(nil), build.Annotation(v2beta1.AnnoMultusConfigCNIVersion, "0.2.0")),
			want: field.ErrorList{notSupported("metadata.annotations[multus.spidernet.io/cni-version]")}},
		{name: "coordinator validated", smc: smc("macvlan", macvlan(nil), build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.CoordinatorConfig = &v2beta1.CoordinatorSpec{PodRPFilter: n(5), PodMACPrefix: s("0b:00")}
		})), want: field.ErrorList{invalid("spec.coordinator.podMACPrefix"), notSupported("spec.coordinator.podRPFilter")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderMultusConfig(tc.smc), tc.want)
		})
	}
}

func TestValidateSpiderMultusConfigUpdate(t *testing.T) {
	withName := func(name string, anno ...string) *v2beta1.SpiderMultusConfig {
		m := smc("ipvlan", build.With(func(m *v2beta1.SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
		}))
		m.Name = name
		if len(anno) > 0 {
			m.Annotations = map[string]string{v2beta1.AnnoMultusConfigName: anno[0]}
		}
		return m
	}
	tests := []struct {
		name     string
		new, old *v2beta1.SpiderMultusConfig
		want     field.ErrorList
	}{
		{name: "unchanged", new: withName("a", "nad"), old: withName("a", "nad")},
		{name: "no annotation", new: withName("a"), old: withName("a")},
		{name: "annotation added with the same name", new: withName("a", "a"), old: withName("a")},
		{name: "cr-name changed", new: withName("a", "nad2"), old: withName("a", "nad"),
			want: field.ErrorList{forbidden("metadata.annotations[multus.spidernet.io/cr-name]",
				`is not changeable: the generated NetworkAttachmentDefinition would be renamed from "nad" to "nad2"`)}},
		{name: "cr-name added", new: withName("a", "nad"), old: withName("a"),
			want: field.ErrorList{forbidden("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "cr-name removed", new: withName("a"), old: withName("a", "nad"),
			want: field.ErrorList{forbidden("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "new object validated too", new: withName("a", "Bad_Name"), old: withName("a", "Bad_Name"),
			want: field.ErrorList{invalid("metadata.annotations[multus.spidernet.io/cr-name]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderMultusConfigUpdate(tc.new, tc.old), tc.want)
		})
	}
}
