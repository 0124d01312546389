package v2beta1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestDefaultSpiderMultusConfig(t *testing.T) {
	missingCoordinator := func() *v2beta1.CoordinatorSpec {
		return &v2beta1.CoordinatorSpec{Mode: new("auto"), HijackCIDR: []string{}, PolicyRoutes: []v2beta1.Route{}, VethLinkAddress: new(""),
			PodMACPrefix: new(""), PodDefaultRouteNIC: new(""), PodRPFilter: new(0), TunePodRoutes: new(true)}
	}
	emptyPools := func() *v2beta1.SpiderpoolPools {
		return &v2beta1.SpiderpoolPools{IPv4IPPool: []string{}, IPv6IPPool: []string{}}
	}
	base := func(cniType string, f func(*v2beta1.MultusCNIConfigSpec)) *v2beta1.SpiderMultusConfig {
		m := &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: "default"}}
		if cniType != "" {
			m.Spec.CniType = new(cniType)
		}
		if f != nil {
			f(&m.Spec)
		}
		return m
	}
	tests := []struct {
		name string
		in   *v2beta1.SpiderMultusConfig
		want *v2beta1.SpiderMultusConfig
	}{
		{
			name: "nil cniType becomes custom without coordinator",
			in: base("", func(s *v2beta1.MultusCNIConfigSpec) {
				s.EnableCoordinator, s.CoordinatorConfig = new(true), &v2beta1.CoordinatorSpec{Mode: new("overlay")}
			}),
			want: base("custom", func(s *v2beta1.MultusCNIConfigSpec) {
				s.CustomCNIConfig, s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(""), new(false), new(false), []string{}
			}),
		},
		{
			name: "custom keeps its customCNI",
			in:   base("custom", func(s *v2beta1.MultusCNIConfigSpec) { s.CustomCNIConfig = new(`{"type":"x"}`) }),
			want: base("custom", func(s *v2beta1.MultusCNIConfigSpec) {
				s.CustomCNIConfig, s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(`{"type":"x"}`), new(false), new(false), []string{}
			}),
		},
		{
			name: "macvlan from the Calico-overlay guide",
			in: base("macvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"ens192"}, VlanID: new(int32(0)),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"10-6-v4"}}}
			}),
			want: base("macvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"ens192"}, VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"10-6-v4"}}}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ipvlan with bond, enableCoordinator false kept",
			in: base("ipvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &v2beta1.BondConfig{Name: "bond0", Mode: 1}}
				s.EnableCoordinator = new(false)
			}),
			want: base("ipvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &v2beta1.BondConfig{Name: "bond0", Mode: 1, Options: new("")},
					VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(false), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "given coordinator without tunePodRoutes gets the upstream quirk",
			in: base("ipvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				s.CoordinatorConfig = &v2beta1.CoordinatorSpec{PodCIDRType: new("cluster"), HijackCIDR: []string{"169.254.0.0/16"}}
			}),
			want: base("ipvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}, VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.CoordinatorConfig = &v2beta1.CoordinatorSpec{Mode: new("auto"), PodCIDRType: new("cluster"), HijackCIDR: []string{"169.254.0.0/16"}, PolicyRoutes: []v2beta1.Route{},
					PodMACPrefix: new(""), PodDefaultRouteNIC: new(""), TunePodRoutes: new(false), TxQueueLen: new(0), PodRPFilter: new(0)}
				s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(true), new(false), []string{}
			}),
		},
		{
			name: "vlan manual gets vlanID 0, auto does not",
			in: base("vlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}}
			}),
			want: base("vlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("manual"), VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "vlan auto",
			in: base("vlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("auto")}
			}),
			want: base("vlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("auto"), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "sriov",
			in: base("sriov", func(s *v2beta1.MultusCNIConfigSpec) {
				s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), RdmaIsolation: new(true),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4"}}}
			}),
			want: base("sriov", func(s *v2beta1.MultusCNIConfigSpec) {
				s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), MTU: new(int32(0)),
					MinTxRateMbps: new(0), MaxTxRateMbps: new(0), RdmaIsolation: new(true),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4"}, MatchMasterSubnet: new(false)}}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ib-sriov",
			in: base("ib-sriov", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: new("r")}
			}),
			want: base("ib-sriov", func(s *v2beta1.MultusCNIConfigSpec) {
				s.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: new("r"), Pkey: new(""), LinkState: new("enable"), RdmaIsolation: new(true),
					EnableIbKubernetes: new(false), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ipoib and ovs",
			in:   base("ovs", func(s *v2beta1.MultusCNIConfigSpec) { s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1"} }),
			want: base("ovs", func(s *v2beta1.MultusCNIConfigSpec) {
				s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1", VlanTag: new(int32(0)), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "missing sub-object is left for validation",
			in:   base("macvlan", func(s *v2beta1.MultusCNIConfigSpec) { s.ChainCNIJsonData = []string{`{"type":"tuning"}`} }),
			want: base("macvlan", func(s *v2beta1.MultusCNIConfigSpec) {
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{`{"type":"tuning"}`}
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v2beta1.DefaultSpiderMultusConfig(tc.in)
			jsonDiff(t, tc.want, tc.in)
		})
	}

	// Like upstream's webhook, a second pass (the webhook runs on every update) treats the
	// coordinator the first pass created as a given one and adds txQueueLen 0; nothing else moves.
	t.Run("second pass", func(t *testing.T) {
		m := base("ipvlan", func(s *v2beta1.MultusCNIConfigSpec) {
			s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
		})
		v2beta1.DefaultSpiderMultusConfig(m)
		want := m.DeepCopy()
		want.Spec.CoordinatorConfig.TxQueueLen = new(0)
		v2beta1.DefaultSpiderMultusConfig(m)
		jsonDiff(t, want, m)
	})

	t.Run("injection annotations copied to labels", func(t *testing.T) {
		m := base("macvlan", func(s *v2beta1.MultusCNIConfigSpec) {
			s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}}
		})
		m.Annotations = map[string]string{v2beta1.AnnoRDMAResourceInject: "gpu-rdma", v2beta1.AnnoNetworkResourceInject: "net", "other": "x"}
		v2beta1.DefaultSpiderMultusConfig(m)
		jsonDiff(t, map[string]string{v2beta1.AnnoRDMAResourceInject: "gpu-rdma", v2beta1.AnnoNetworkResourceInject: "net"}, m.Labels)
	})
}
