package controller

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// multusConfig is the SpiderMultusConfig default/name of cniType as the generator meets it in
// production: written by a user (opts), then defaulted by the mutating webhook.
func multusConfig(name, cniType string, opts ...build.Option) *v2beta1.SpiderMultusConfig {
	smc := rawMultusConfig(name, cniType, opts...)
	v2beta1.DefaultSpiderMultusConfig(smc)
	return smc
}

// rawMultusConfig is multusConfig without the webhook's defaults.
func rawMultusConfig(name, cniType string, opts ...build.Option) *v2beta1.SpiderMultusConfig {
	return build.MultusConfig("default", name, append([]build.Option{build.CNIType(cniType)}, opts...)...)
}

// spec applies f to the spec of a SpiderMultusConfig.
func spec(f func(*v2beta1.MultusCNIConfigSpec)) build.Option {
	return build.With(func(smc *v2beta1.SpiderMultusConfig) { f(&smc.Spec) })
}

const coordDefault = `{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}`

func TestNADConfig(t *testing.T) {
	tests := []struct {
		name string
		smc  *v2beta1.SpiderMultusConfig
		want string
	}{
		// Upstream's four generated NAD configurations, byte for byte (the generation rules:
		// docs/design/behaviour.md#nad-generation).
		{
			name: "spec example: Alibaba ipvlan-eth0",
			smc: multusConfig("ipvlan-eth0", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.EnableCoordinator = new(true)
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			})),
			want: `{"cniVersion":"0.3.1","name":"ipvlan-eth0","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`,
		},
		{
			name: "spec example: Calico-overlay macvlan-ens192",
			smc: multusConfig("macvlan-ens192", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{
					Master: []string{"ens192"}, VlanID: new(int32(0)),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"10-6-v4"}},
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`,
		},
		{
			name: "spec example: macvlan vlan 100",
			smc: multusConfig("macvlan-vlan100", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"ens192"}, VlanID: new(int32(100))}
			})),
			want: `{"cniVersion":"0.3.1","name":"macvlan-vlan100","plugins":[{"vlanID":100,"type":"ifacer","interfaces":["ens192"]},{"type":"macvlan","master":"ens192.100","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`,
		},
		{
			name: "spec example: sriov rdma",
			smc: multusConfig("sriov-rdma", "sriov", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{
					ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), RdmaIsolation: new(true),
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"sriov-rdma","plugins":[{"vlan":100,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":{"type":"spiderpool"}},{"type":"rdma"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`,
		},

		// Every cniType, vlan and bond variant.
		{
			name: "ipvlan vlan puts ifacer first and suffixes the master",
			smc: multusConfig("ipv", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth1"}, VlanID: new(int32(7)), MTU: new(int32(1450))}
			})),
			want: `{"cniVersion":"0.3.1","name":"ipv","plugins":[{"vlanID":7,"type":"ifacer","interfaces":["eth1"]},{"type":"ipvlan","master":"eth1.7","mtu":1450,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "macvlan bond: master is the bond, ifacer carries the bond",
			smc: multusConfig("bonded", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{
					Master: []string{"ens192", "ens224"}, Bond: &v2beta1.BondConfig{Name: "bond0", Mode: 1},
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"bonded","plugins":[{"type":"ifacer","interfaces":["ens192","ens224"],"bond":{"name":"bond0","mode":1,"options":""}},{"type":"macvlan","master":"bond0","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "ipvlan bond with vlan",
			smc: multusConfig("bonded", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{
					Master: []string{"eth0", "eth1"}, VlanID: new(int32(200)),
					Bond: &v2beta1.BondConfig{Name: "bond1", Mode: 4, Options: new("miimon=100")},
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"bonded","plugins":[{"vlanID":200,"type":"ifacer","interfaces":["eth0","eth1"],"bond":{"name":"bond1","mode":4,"options":"miimon=100"}},{"type":"ipvlan","master":"bond1.200","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "vlan manual",
			smc: multusConfig("v10", "vlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanID: new(int32(10))}
			})),
			want: `{"cniVersion":"0.3.1","name":"v10","plugins":[{"type":"vlan","master":"eth0","vlanMode":"manual","vlanId":10,"mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "vlan auto has no vlanId",
			smc: multusConfig("vauto", "vlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("auto")}
			})),
			want: `{"cniVersion":"0.3.1","name":"vauto","plugins":[{"type":"vlan","master":"eth0","vlanMode":"auto","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "vlan bond: ifacer builds the bond only, master has no suffix",
			smc: multusConfig("vbond", "vlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.VlanConfig = &v2beta1.SpiderVlanCniConfig{
					Master: []string{"eth0", "eth1"}, VlanID: new(int32(30)), Bond: &v2beta1.BondConfig{Name: "bond0"},
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"vbond","plugins":[{"type":"ifacer","interfaces":["eth0","eth1"],"bond":{"name":"bond0","mode":0,"options":""}},{"type":"vlan","master":"bond0","vlanMode":"manual","vlanId":30,"mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "sriov: pools, matchMasterSubnet, rates, chain before coordinator, tuning last",
			smc: multusConfig("sriov", "sriov", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{
					ResourceName: new("spidernet.io/vf"), MTU: new(int32(9000)), MinTxRateMbps: new(10), MaxTxRateMbps: new(100),
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{
						IPv4IPPool: []string{"v4-*"}, IPv6IPPool: []string{"v6"}, MatchMasterSubnet: new(true),
					},
				}
				s.ChainCNIJsonData = []string{`{"type":"bandwidth","ingressRate":100}`}
			})),
			want: `{"cniVersion":"0.3.1","name":"sriov","plugins":[{"vlan":0,"min_tx_rate":10,"max_tx_rate":100,"type":"sriov","ipam":{"type":"spiderpool","default_ipv4_ippool":["v4-*"],"default_ipv6_ippool":["v6"],"match_master_subnet":true}},{"ingressRate":100,"type":"bandwidth"},` + coordDefault + `,{"type":"tuning","mtu":9000}]}`,
		},
		{
			name: "ib-sriov",
			smc: multusConfig("ib", "ib-sriov", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: new("spidernet.io/ib"), Pkey: new("0x6611")}
			})),
			want: `{"cniVersion":"0.3.1","name":"ib","plugins":[{"type":"ib-sriov","pkey":"0x6611","link_state":"enable","rdmaIsolation":true,"ibKubernetesEnabled":false,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "ipoib",
			smc: multusConfig("ipoib", "ipoib", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IpoibConfig = &v2beta1.SpiderIpoibCniConfig{Master: "ib0",
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv6IPPool: []string{"ib-v6"}}}
			})),
			want: `{"cniVersion":"0.3.1","name":"ipoib","plugins":[{"type":"ipoib","master":"ib0","ipam":{"type":"spiderpool","default_ipv6_ippool":["ib-v6"]}},` + coordDefault + `]}`,
		},
		{
			name: "ovs with deviceID and trunk",
			smc: multusConfig("ovs", "ovs", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1", VlanTag: new(int32(5)), DeviceID: "0000:3b:00.2",
					Trunk: []*v2beta1.Trunk{{MinID: new(uint(10)), MaxID: new(uint(20))}, {ID: new(uint(30))}}}
			})),
			want: `{"cniVersion":"0.3.1","name":"ovs","plugins":[{"vlan":5,"type":"ovs","bridge":"br1","deviceID":"0000:3b:00.2","ipam":{"type":"spiderpool"},"trunk":[{"minID":10,"maxID":20},{"id":30}]},` + coordDefault + `]}`,
		},
		{
			name: "ovs defaults",
			smc: multusConfig("ovs", "ovs", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1"}
			})),
			want: `{"cniVersion":"0.3.1","name":"ovs","plugins":[{"vlan":0,"type":"ovs","bridge":"br1","ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},

		// IPAM, coordinator and chain switches.
		{
			name: "disableIPAM leaves the ipam object out",
			smc: multusConfig("noipam", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.DisableIPAM = new(true)
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"},
					SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"ignored"}}}
			})),
			want: `{"cniVersion":"0.3.1","name":"noipam","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0},` + coordDefault + `]}`,
		},
		{
			name: "enableCoordinator false",
			smc: multusConfig("nocoord", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.EnableCoordinator = new(false)
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			})),
			want: `{"cniVersion":"0.3.1","name":"nocoord","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}}]}`,
		},
		{
			name: "given coordinator: copied in upstream's key order, tunePodRoutes false quirk, podRPFilter with podCIDRType",
			smc: multusConfig("coord", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}}
				s.CoordinatorConfig = &v2beta1.CoordinatorSpec{
					Mode: new("underlay"), PodCIDRType: new("cluster"), HijackCIDR: []string{"169.254.0.0/16"},
					PolicyRoutes: []v2beta1.Route{{Dst: "10.0.0.0/8", Gw: "10.6.0.1"}}, PodMACPrefix: new("0a:1b"),
					PodDefaultRouteNIC: new("net1"), PodRPFilter: new(1), VethLinkAddress: new("169.254.100.1"), VethMTU: new(1500),
					HostRuleTable: new(600), DetectGateway: new(true), DetectIPConflict: new(true),
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"coord","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},{"txQueueLen":0,"vethLinkAddress":"169.254.100.1","vethMTU":1500,"tunePodRoutes":false,"podMACPrefix":"0a:1b","mode":"underlay","type":"coordinator","podDefaultRouteNic":"net1","podRPFilter":1,"hijackCIDR":["169.254.0.0/16"],"policyRoutes":[{"dst":"10.0.0.0/8","gw":"10.6.0.1"}]}]}`,
		},
		{
			name: "given coordinator without podCIDRType: podRPFilter not copied",
			smc: multusConfig("coord", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}}
				s.CoordinatorConfig = &v2beta1.CoordinatorSpec{PodRPFilter: new(2), TunePodRoutes: new(true), TxQueueLen: new(1000)}
			})),
			want: `{"cniVersion":"0.3.1","name":"coord","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},{"txQueueLen":1000,"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`,
		},
		{
			name: "chainCNIJsonData in order, compacted with sorted keys, numbers as written",
			smc: multusConfig("chain", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				s.ChainCNIJsonData = []string{
					"{ \"type\": \"tuning\", \"sysctl\": {\"net.core.somaxconn\": \"500\"} }",
					`{"type":"bandwidth","egressBurst":12345678901234567890,"egressRate":1.50}`,
				}
			})),
			want: `{"cniVersion":"0.3.1","name":"chain","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},{"sysctl":{"net.core.somaxconn":"500"},"type":"tuning"},{"egressBurst":12345678901234567890,"egressRate":1.50,"type":"bandwidth"},` + coordDefault + `]}`,
		},

		// Annotations.
		{
			name: "cni-version annotation",
			smc: multusConfig("v100", "ipvlan", build.Annotation(v2beta1.AnnoMultusConfigCNIVersion, "1.0.0"), spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			})),
			want: `{"cniVersion":"1.0.0","name":"v100","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "cr-name annotation names the config after the NAD",
			smc: multusConfig("smc", "ipvlan", build.Annotation(v2beta1.AnnoMultusConfigName, "my-nad"), spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			})),
			want: `{"cniVersion":"0.3.1","name":"my-nad","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},
		{
			name: "cniconfig-name annotation wins over the NAD name",
			smc: multusConfig("smc", "ipvlan", build.Annotation(v2beta1.AnnoMultusConfigName, "my-nad"),
				build.Annotation(v2beta1.AnnoCNIConfigName, "net-a"), spec(func(s *v2beta1.MultusCNIConfigSpec) {
					s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				})),
			want: `{"cniVersion":"0.3.1","name":"net-a","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},` + coordDefault + `]}`,
		},

		// custom.
		{
			name: "custom uses customCNI verbatim",
			smc: multusConfig("custom", "custom", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.CustomCNIConfig = new("{\n  \"cniVersion\": \"1.0.0\", \"name\": \"x\", \"plugins\": [{\"type\": \"calico\"}]\n}")
			})),
			want: "{\n  \"cniVersion\": \"1.0.0\", \"name\": \"x\", \"plugins\": [{\"type\": \"calico\"}]\n}",
		},
		{
			name: "custom without customCNI has no config",
			smc:  multusConfig("custom", "custom"),
			want: "",
		},
		{
			name: "no cniType at all is custom",
			smc:  build.MultusConfig("", "empty"),
			want: "",
		},

		// Without the webhook's defaulting: only what is set is written (upstream's generator).
		{
			name: "undefaulted: no coordinator object gives a bare coordinator, nil mtu is left out",
			smc: rawMultusConfig("raw", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}}
			})),
			want: `{"cniVersion":"0.3.1","name":"raw","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"spiderpool"}},{"type":"coordinator"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NADConfig(tt.smc, "")
			if err != nil {
				t.Fatalf("NADConfig: %v", err)
			}
			if got != tt.want {
				t.Errorf("NADConfig mismatch\n got: %s\nwant: %s", got, tt.want)
			}
			if got != "" && !json.Valid([]byte(got)) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestNADConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		smc  *v2beta1.SpiderMultusConfig
		want string
	}{
		{
			name: "macvlan without its sub-object",
			smc:  multusConfig("x", "macvlan"),
			want: "spec.macvlan",
		},
		{
			name: "several masters without bond",
			smc: multusConfig("x", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}}
			})),
			want: "bond.name",
		},
		{
			name: "chain entry not JSON",
			smc: multusConfig("x", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				s.ChainCNIJsonData = []string{`{"type":"bandwidth"}`, `{"type":`}
			})),
			want: "chainCNIJsonData[1]",
		},
		{
			name: "chain entry with trailing data",
			smc: multusConfig("x", "ipvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				s.ChainCNIJsonData = []string{`{"type":"a"}{"type":"b"}`}
			})),
			want: "after the first value",
		},
		{
			name: "custom not JSON",
			smc: multusConfig("x", "custom", spec(func(s *v2beta1.MultusCNIConfigSpec) {
				s.CustomCNIConfig = new("{")
			})),
			want: "customCNI",
		},
		{
			name: "unknown cniType",
			smc:  multusConfig("x", "bridge"),
			want: `unsupported cniType "bridge"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NADConfig(tt.smc, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NADConfig = %q, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

func TestNADNameAndResourceName(t *testing.T) {
	tests := []struct {
		name                string
		smc                 *v2beta1.SpiderMultusConfig
		wantName, wantResrc string
	}{
		{"plain", multusConfig("a", "macvlan"), "a", ""},
		{"cr-name", multusConfig("a", "macvlan", build.Annotation(v2beta1.AnnoMultusConfigName, "b")), "b", ""},
		{"sriov", multusConfig("s", "sriov", spec(func(s *v2beta1.MultusCNIConfigSpec) {
			s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{ResourceName: new("spidernet.io/mellanoxrdma")}
		})), "s", "spidernet.io/mellanoxrdma"},
		{"ib-sriov", multusConfig("s", "ib-sriov", spec(func(s *v2beta1.MultusCNIConfigSpec) {
			s.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: new("spidernet.io/ib")}
		})), "s", "spidernet.io/ib"},
		{"ovs with deviceID", multusConfig("o", "ovs", spec(func(s *v2beta1.MultusCNIConfigSpec) {
			s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1", DeviceID: "0000:3b:00.2"}
		})), "o", "ovs-cni.network.kubevirt.io/br1"},
		{"ovs without deviceID", multusConfig("o", "ovs", spec(func(s *v2beta1.MultusCNIConfigSpec) {
			s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: "br1"}
		})), "o", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NADName(tt.smc); got != tt.wantName {
				t.Errorf("NADName = %q, want %q", got, tt.wantName)
			}
			if got := NADResourceName(tt.smc); got != tt.wantResrc {
				t.Errorf("NADResourceName = %q, want %q", got, tt.wantResrc)
			}
		})
	}
}

var fuzzCNITypes = []string{"macvlan", "ipvlan", "vlan", "sriov", "ovs", "ib-sriov", "ipoib", "custom", ""}

// FuzzNADConfig checks that whatever a SpiderMultusConfig holds, a generated configuration is valid
// JSON whose top-level keys are cniVersion, name and plugins in that order, and that custom passes
// customCNI through untouched.
func FuzzNADConfig(f *testing.F) {
	f.Add(uint8(0), "eth0", int32(0), false, `{"type":"bandwidth"}`, "", "1.0.0", "", false, true)
	f.Add(uint8(1), "eth<1>&", int32(100), true, `[1,2]`, "", "", "cfg", true, false)
	f.Add(uint8(3), "", int32(5), false, "", "", "", "", false, true)
	f.Add(uint8(7), "", int32(0), false, "", `{"cniVersion":"0.3.1"}`, "", "", false, false)
	f.Fuzz(func(t *testing.T, typ uint8, master string, vlanID int32, twoMasters bool, chain, custom, version, cfgName string, disableIPAM, enableCoord bool) {
		var opts []build.Option
		if version != "" {
			opts = append(opts, build.Annotation(v2beta1.AnnoMultusConfigCNIVersion, version))
		}
		if cfgName != "" {
			opts = append(opts, build.Annotation(v2beta1.AnnoCNIConfigName, cfgName))
		}
		masters := []string{master}
		var bond *v2beta1.BondConfig
		if twoMasters {
			masters = append(masters, master+"x")
			bond = &v2beta1.BondConfig{Name: master + "b"}
		}
		opts = append(opts, spec(func(s *v2beta1.MultusCNIConfigSpec) {
			s.DisableIPAM = new(disableIPAM)
			s.EnableCoordinator = new(enableCoord)
			if chain != "" {
				s.ChainCNIJsonData = []string{chain}
			}
			if custom != "" {
				s.CustomCNIConfig = new(custom)
			}
			pools := &v2beta1.SpiderpoolPools{IPv4IPPool: []string{master}}
			s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: masters, VlanID: new(vlanID), Bond: bond, SpiderpoolConfigPools: pools}
			s.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: masters, VlanID: new(vlanID), Bond: bond}
			s.VlanConfig = &v2beta1.SpiderVlanCniConfig{Master: masters, VlanID: new(vlanID), Bond: bond}
			s.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{ResourceName: new(master), VlanID: new(vlanID), MTU: new(vlanID)}
			s.OvsConfig = &v2beta1.SpiderOvsCniConfig{BrName: master, DeviceID: master}
			s.IbSriovConfig = &v2beta1.SpiderIBSriovCniConfig{ResourceName: new(master), Pkey: new(master)}
			s.IpoibConfig = &v2beta1.SpiderIpoibCniConfig{Master: master}
		}))
		smc := multusConfig("fuzz", fuzzCNITypes[int(typ)%len(fuzzCNITypes)], opts...)
		out, err := NADConfig(smc, "")
		if err != nil || out == "" {
			return
		}
		if nadCNIType(&smc.Spec) == v2beta1.CniTypeCustom {
			if out != custom || !json.Valid([]byte(out)) {
				t.Fatalf("custom output %q, customCNI %q", out, custom)
			}
			return
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("invalid JSON: %s", out)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(out)))
		if tok, _ := dec.Token(); tok != json.Delim('{') {
			t.Fatalf("not an object: %s", out)
		}
		var keys []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, tok.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			if tok == "plugins" && (len(v) == 0 || v[0] != '[') {
				t.Fatalf("plugins is not an array: %s", out)
			}
		}
		if strings.Join(keys, ",") != "cniVersion,name,plugins" {
			t.Fatalf("top-level keys %v: %s", keys, out)
		}
		var top struct{ CNIVersion, Name string }
		_ = json.Unmarshal([]byte(out), &top)
		wantVersion := version
		if wantVersion == "" {
			wantVersion = DefaultCNIVersion
		}
		// encoding/json replaces invalid UTF-8, so only valid strings come back as written.
		if utf8.ValidString(wantVersion) && top.CNIVersion != wantVersion {
			t.Fatalf("cniVersion %q, want %q", top.CNIVersion, wantVersion)
		}
	})
}

// TestNADConfigIPAMSocket: global.ipamUNIXSocketHostPath reaches the generated NAD's spiderpool
// IPAM entry when it moves the agent's socket, and leaves the NAD as upstream writes it otherwise.
func TestNADConfigIPAMSocket(t *testing.T) {
	smc := rawMultusConfig("raw", "macvlan", spec(func(s *v2beta1.MultusCNIConfigSpec) {
		s.MacvlanConfig = &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}}
	}))
	const plain = `{"cniVersion":"0.3.1","name":"raw","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"spiderpool"}},{"type":"coordinator"}]}`
	for _, tc := range []struct{ socket, want string }{
		{"", plain},
		{"/var/run/spidernet/spiderpool.sock", plain},
		{"/run/sp/agent.sock", `{"cniVersion":"0.3.1","name":"raw","plugins":[{"type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"spiderpool","ipam_unix_socket_path":"/run/sp/agent.sock"}},{"type":"coordinator"}]}`},
	} {
		got, err := NADConfig(smc, tc.socket)
		if err != nil {
			t.Fatalf("socket %q: %v", tc.socket, err)
		}
		if got != tc.want {
			t.Errorf("socket %q:\n got: %s\nwant: %s", tc.socket, got, tc.want)
		}
	}
}
