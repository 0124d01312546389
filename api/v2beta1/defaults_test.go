package v2beta1

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// jsonDiff compares two values through their JSON form, which is what the API server stores and
// what the NAD generator reads, and reports both sides when they differ.
func jsonDiff(t *testing.T, want, got any) {
	t.Helper()
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(w) != string(g) {
		t.Errorf("mismatch (-want +got):\n-%s\n+%s", strings.ReplaceAll(string(w), "\n", "\n-"), strings.ReplaceAll(string(g), "\n", "\n+"))
	}
}

func TestDefaultSpiderIPPool(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name string
		in   *SpiderIPPool
		want *SpiderIPPool
	}{
		{
			name: "IPv4 pool: version, flags, merged entries, label, finalizer",
			in:   makePool("p", "10.6.0.0/16").IPs("10.6.0.20-10.6.0.30", "10.6.0.10", "10.6.0.11-10.6.0.19", "10.6.0.50").Exclude("10.6.0.25", "10.6.0.24").Obj(),
			want: func() *SpiderIPPool {
				p := makePool("p", "10.6.0.0/16").Version(4).IPs("10.6.0.10-10.6.0.30", "10.6.0.50").Exclude("10.6.0.24-10.6.0.25").
					Label(LabelIPPoolCIDR, "10-6-0-0-16").Obj()
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{Finalizer}
				return p
			}(),
		},
		{
			name: "IPv6 entries written canonically, set flags kept",
			in: func() *SpiderIPPool {
				p := makePool("p6", "fd00::/64").IPs("fd00:0::1-fd00::0:9", "fd00::0a").Obj()
				p.Spec.Default = new(true)
				p.Finalizers = []string{"other", Finalizer}
				return p
			}(),
			want: func() *SpiderIPPool {
				p := makePool("p6", "fd00::/64").Version(6).IPs("fd00::1-fd00::a").Label(LabelIPPoolCIDR, "fd00---64").Obj()
				p.Spec.Default, p.Spec.Disable = new(true), new(false)
				p.Finalizers = []string{"other", Finalizer}
				return p
			}(),
		},
		{
			name: "unparsable entries are left as written",
			in:   makePool("p", "10.6.0.0/16").IPs("10.6.0.2", "10.6.0.1", "oops").Exclude("10.6.0.1", "fd00::1").Obj(),
			want: func() *SpiderIPPool {
				p := makePool("p", "10.6.0.0/16").Version(4).IPs("10.6.0.2", "10.6.0.1", "oops").Exclude("10.6.0.1", "fd00::1").
					Label(LabelIPPoolCIDR, "10-6-0-0-16").Obj()
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{Finalizer}
				return p
			}(),
		},
		{
			name: "invalid subnet: no version, no label",
			in:   makePool("p", "10.6.1.0").IPs("10.6.0.2", "10.6.0.1").Obj(),
			want: func() *SpiderIPPool {
				p := makePool("p", "10.6.1.0").IPs("10.6.0.2", "10.6.0.1").Obj()
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{Finalizer}
				return p
			}(),
		},
		{
			name: "ipVersion given but wrong family: entries untouched",
			in:   makePool("p", "10.6.0.0/16").Version(6).IPs("10.6.0.2", "10.6.0.1").Obj(),
			want: func() *SpiderIPPool {
				p := makePool("p", "10.6.0.0/16").Version(6).IPs("10.6.0.2", "10.6.0.1").Label(LabelIPPoolCIDR, "10-6-0-0-16").Obj()
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{Finalizer}
				return p
			}(),
		},
		{
			name: "empty lists stay empty, nil stays nil, no finalizer while deleting",
			in: func() *SpiderIPPool {
				p := makePool("p", "10.6.0.0/16").IPs().Obj()
				p.DeletionTimestamp = &now
				return p
			}(),
			want: func() *SpiderIPPool {
				p := makePool("p", "10.6.0.0/16").Version(4).IPs().Label(LabelIPPoolCIDR, "10-6-0-0-16").Obj()
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.DeletionTimestamp = &now
				return p
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			DefaultSpiderIPPool(tc.in)
			jsonDiff(t, tc.want, tc.in)
			if tc.in.Spec.IPs != nil && len(tc.in.Spec.IPs) == 0 && tc.want.Spec.IPs == nil {
				t.Errorf("ips: empty list turned into nil")
			}
			// Defaulting is idempotent: the webhook may run again on every update.
			again := tc.in.DeepCopy()
			DefaultSpiderIPPool(again)
			jsonDiff(t, tc.in, again)
		})
	}
}

// TestDefaultCanonicalCIDRs checks, by field path, that the mutating webhooks store every CIDR
// field in canonical network form whatever spelling upstream accepts, derive ipVersion and the
// CIDR label from it, and leave text they cannot parse for validation to report.
func TestDefaultCanonicalCIDRs(t *testing.T) {
	poolLabel := field.NewPath("metadata", "labels").Key(LabelIPPoolCIDR).String()
	subnetLabel := field.NewPath("metadata", "labels").Key(LabelSubnetCIDR).String()
	tests := []struct {
		name string
		obj  any // *SpiderIPPool, *SpiderSubnet or *SpiderCoordinator, defaulted in place
		want map[string]string
	}{
		{
			name: "pool with host bits, as in upstream's multi-interface example",
			obj:  makePool("p", "10.6.0.1/16").IPs("10.6.168.101-10.6.168.110").Gateway("10.6.0.1").Obj(),
			want: map[string]string{"spec.subnet": "10.6.0.0/16", "spec.ipVersion": "4", poolLabel: "10-6-0-0-16"},
		},
		{
			name: "IPv6 pool and route destinations",
			obj:  makePool("p", "FD00:0::1/64").Route("fd01:0:0::5/64", "fd00::1").Route("fd02::/48", "fd00::1").Obj(),
			want: map[string]string{"spec.subnet": "fd00::/64", "spec.ipVersion": "6", poolLabel: "fd00---64",
				"spec.routes[0].dst": "fd01::/64", "spec.routes[1].dst": "fd02::/48"},
		},
		{
			name: "IPv4-mapped IPv6 stays in hex, the form the parsers read back",
			obj:  makePool("p", "::ffff:a06:1/112").Obj(),
			want: map[string]string{"spec.subnet": "::ffff:a06:0/112", "spec.ipVersion": "6", poolLabel: "ffff-a06-0-112"},
		},
		{
			name: "canonical pool unchanged",
			obj:  makePool("p", "10.6.0.0/16").Version(4).Route("10.7.0.0/16", "10.6.0.1").Obj(),
			want: map[string]string{"spec.subnet": "10.6.0.0/16", "spec.ipVersion": "4", poolLabel: "10-6-0-0-16", "spec.routes[0].dst": "10.7.0.0/16"},
		},
		{
			name: "unparsable text left as written",
			obj:  makePool("p", "10.6.0.1").Route("10.7.0.0/40", "10.6.0.1").Route("10.8.0.1/16", "10.6.0.1").Obj(),
			want: map[string]string{"spec.subnet": "10.6.0.1", "spec.routes[0].dst": "10.7.0.0/40", "spec.routes[1].dst": "10.8.0.0/16"},
		},
		{
			name: "SpiderSubnet of upstream's example",
			obj:  makeSubnet("s", "2002::ac0f:0/64").IPs("2002::ac0f:2-2002::ac0f:9").Route("2003::1/64", "2002::ac0f:1").Obj(),
			want: map[string]string{"spec.subnet": "2002::/64", "spec.ipVersion": "6", subnetLabel: "2002---64", "spec.routes[0].dst": "2003::/64"},
		},
		{
			name: "SpiderSubnet with host bits",
			obj:  makeSubnet("s", "172.31.199.185/20").Obj(),
			want: map[string]string{"spec.subnet": "172.31.192.0/20", "spec.ipVersion": "4", subnetLabel: "172-31-192-0-20"},
		},
		{
			name: "SpiderCoordinator hijackCIDR and policyRoutes",
			obj: &SpiderCoordinator{Spec: CoordinatorSpec{
				HijackCIDR:   []string{"169.254.1.0/16", "10.96.0.10", "fd00:0::1/64", "bad"},
				PolicyRoutes: []Route{{"10.7.0.1/16", "10.6.0.1"}, {"fd00::0:1", "fd00::1"}},
			}},
			want: map[string]string{"spec.hijackCIDR[0]": "169.254.0.0/16", "spec.hijackCIDR[1]": "10.96.0.10/32",
				"spec.hijackCIDR[2]": "fd00::/64", "spec.hijackCIDR[3]": "bad",
				"spec.policyRoutes[0].dst": "10.7.0.0/16", "spec.policyRoutes[1].dst": "fd00::1/128"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			put := func(p *field.Path, v string) { got[p.String()] = v }
			addr := func(meta metav1.ObjectMeta, label string, version *int64, subnet string, routes []Route) {
				put(subnetPath, subnet)
				if version != nil {
					put(ipVersionPath, strconv.FormatInt(*version, 10))
				}
				if v, ok := meta.Labels[label]; ok {
					put(field.NewPath("metadata", "labels").Key(label), v)
				}
				for i, r := range routes {
					put(routesPath.Index(i).Child("dst"), r.Dst)
				}
			}
			switch o := tc.obj.(type) {
			case *SpiderIPPool:
				DefaultSpiderIPPool(o)
				addr(o.ObjectMeta, LabelIPPoolCIDR, o.Spec.IPVersion, o.Spec.Subnet, o.Spec.Routes)
			case *SpiderSubnet:
				DefaultSpiderSubnet(o)
				addr(o.ObjectMeta, LabelSubnetCIDR, o.Spec.IPVersion, o.Spec.Subnet, o.Spec.Routes)
			case *SpiderCoordinator:
				DefaultSpiderCoordinator(o)
				for i, c := range o.Spec.HijackCIDR {
					put(specPath.Child("hijackCIDR").Index(i), c)
				}
				for i, r := range o.Spec.PolicyRoutes {
					put(specPath.Child("policyRoutes").Index(i).Child("dst"), r.Dst)
				}
			default:
				t.Fatalf("unexpected %T", tc.obj)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fields after defaulting (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultSpiderSubnet(t *testing.T) {
	in := makeSubnet("s", "172.31.192.0/20").IPs("172.31.199.190-172.31.199.194", "172.31.199.185-172.31.199.189").Exclude("172.31.199.200").Obj()
	DefaultSpiderSubnet(in)
	want := makeSubnet("s", "172.31.192.0/20").Version(4).IPs("172.31.199.185-172.31.199.194").Exclude("172.31.199.200").Obj()
	want.Labels = map[string]string{LabelSubnetCIDR: "172-31-192-0-20"}
	want.Finalizers = []string{Finalizer}
	jsonDiff(t, want, in)

	t.Run("invalid entries untouched", func(t *testing.T) {
		in := makeSubnet("s", "fd00::/64").IPs("fd00::2", "fd00::1", "10.0.0.1").Obj()
		DefaultSpiderSubnet(in)
		if got := strings.Join(in.Spec.IPs, ","); got != "fd00::2,fd00::1,10.0.0.1" {
			t.Errorf("ips = %s", got)
		}
		if in.Spec.IPVersion == nil || *in.Spec.IPVersion != 6 {
			t.Errorf("ipVersion not derived")
		}
	})
}

func TestDefaultSpiderReservedIP(t *testing.T) {
	tests := []struct {
		name        string
		ips         []string
		version     *int64
		wantVersion *int64
		wantIPs     []string
	}{
		{name: "IPv4 from first entry, merged", ips: []string{"10.6.0.3", "10.6.0.1-10.6.0.2"}, wantVersion: new(int64(4)), wantIPs: []string{"10.6.0.1-10.6.0.3"}},
		{name: "IPv6 from first entry", ips: []string{"fd00::0:1"}, wantVersion: new(int64(6)), wantIPs: []string{"fd00::1"}},
		{name: "first entry invalid", ips: []string{"x", "10.6.0.1"}, wantIPs: []string{"x", "10.6.0.1"}},
		{name: "no entries", ips: nil},
		{name: "given version kept", ips: []string{"10.6.0.1"}, version: new(int64(4)), wantVersion: new(int64(4)), wantIPs: []string{"10.6.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &SpiderReservedIP{Spec: ReservedIPSpec{IPVersion: tc.version, IPs: tc.ips}}
			DefaultSpiderReservedIP(r)
			jsonDiff(t, ReservedIPSpec{IPVersion: tc.wantVersion, IPs: tc.wantIPs}, r.Spec)
		})
	}
}

func TestDefaultCoordinatorSpec(t *testing.T) {
	t.Run("schema defaults", func(t *testing.T) {
		var s CoordinatorSpec
		DefaultCoordinatorSpec(&s)
		jsonDiff(t, CoordinatorSpec{Mode: new("auto"), TunePodRoutes: new(true), HostRuleTable: new(500), PodRPFilter: new(0), TxQueueLen: new(0)}, s)
	})
	t.Run("set values kept", func(t *testing.T) {
		s := CoordinatorSpec{Mode: new("overlay"), TunePodRoutes: new(false), HostRuleTable: new(1000), PodRPFilter: new(-1), TxQueueLen: new(5)}
		want := *s.DeepCopy()
		DefaultCoordinatorSpec(&s)
		jsonDiff(t, want, s)
	})
	t.Run("SpiderCoordinator webhook defaults", func(t *testing.T) {
		c := &SpiderCoordinator{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: CoordinatorSpec{PodCIDRType: new("auto"), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10", "fd00::0:1"},
				PolicyRoutes: []Route{{"10.7.0.1", "10.6.0.1"}, {"bad", "10.6.0.1"}}},
		}
		DefaultSpiderCoordinator(c)
		want := &SpiderCoordinator{
			ObjectMeta: metav1.ObjectMeta{Name: "default", Finalizers: []string{Finalizer}},
			Spec: CoordinatorSpec{Mode: new("auto"), PodCIDRType: new("auto"), TunePodRoutes: new(true), HostRuleTable: new(500), PodRPFilter: new(0), TxQueueLen: new(0),
				VethLinkAddress: new(""), VethMTU: new(1500), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10/32", "fd00::1/128"},
				PolicyRoutes: []Route{{"10.7.0.1/32", "10.6.0.1"}, {"bad", "10.6.0.1"}}},
		}
		jsonDiff(t, want, c)
	})
}

func TestDefaultSpiderMultusConfig(t *testing.T) {
	missingCoordinator := func() *CoordinatorSpec {
		return &CoordinatorSpec{Mode: new("auto"), HijackCIDR: []string{}, PolicyRoutes: []Route{}, VethLinkAddress: new(""),
			PodMACPrefix: new(""), PodDefaultRouteNIC: new(""), PodRPFilter: new(0), TunePodRoutes: new(true)}
	}
	emptyPools := func() *SpiderpoolPools { return &SpiderpoolPools{IPv4IPPool: []string{}, IPv6IPPool: []string{}} }
	base := func(cniType string, f func(*MultusCNIConfigSpec)) *SpiderMultusConfig {
		m := &SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: "default"}}
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
		in   *SpiderMultusConfig
		want *SpiderMultusConfig
	}{
		{
			name: "nil cniType becomes custom without coordinator",
			in: base("", func(s *MultusCNIConfigSpec) {
				s.EnableCoordinator, s.CoordinatorConfig = new(true), &CoordinatorSpec{Mode: new("overlay")}
			}),
			want: base("custom", func(s *MultusCNIConfigSpec) {
				s.CustomCNIConfig, s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(""), new(false), new(false), []string{}
			}),
		},
		{
			name: "custom keeps its customCNI",
			in:   base("custom", func(s *MultusCNIConfigSpec) { s.CustomCNIConfig = new(`{"type":"x"}`) }),
			want: base("custom", func(s *MultusCNIConfigSpec) {
				s.CustomCNIConfig, s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(`{"type":"x"}`), new(false), new(false), []string{}
			}),
		},
		{
			name: "macvlan from the Calico-overlay guide",
			in: base("macvlan", func(s *MultusCNIConfigSpec) {
				s.MacvlanConfig = &SpiderMacvlanCniConfig{Master: []string{"ens192"}, VlanID: new(int32(0)),
					SpiderpoolConfigPools: &SpiderpoolPools{IPv4IPPool: []string{"10-6-v4"}}}
			}),
			want: base("macvlan", func(s *MultusCNIConfigSpec) {
				s.MacvlanConfig = &SpiderMacvlanCniConfig{Master: []string{"ens192"}, VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""),
					SpiderpoolConfigPools: &SpiderpoolPools{IPv4IPPool: []string{"10-6-v4"}}}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ipvlan with bond, enableCoordinator false kept",
			in: base("ipvlan", func(s *MultusCNIConfigSpec) {
				s.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &BondConfig{Name: "bond0", Mode: 1}}
				s.EnableCoordinator = new(false)
			}),
			want: base("ipvlan", func(s *MultusCNIConfigSpec) {
				s.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &BondConfig{Name: "bond0", Mode: 1, Options: new("")},
					VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(false), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "given coordinator without tunePodRoutes gets the upstream quirk",
			in: base("ipvlan", func(s *MultusCNIConfigSpec) {
				s.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}}
				s.CoordinatorConfig = &CoordinatorSpec{PodCIDRType: new("cluster"), HijackCIDR: []string{"169.254.0.0/16"}}
			}),
			want: base("ipvlan", func(s *MultusCNIConfigSpec) {
				s.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}, VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.CoordinatorConfig = &CoordinatorSpec{Mode: new("auto"), PodCIDRType: new("cluster"), HijackCIDR: []string{"169.254.0.0/16"}, PolicyRoutes: []Route{},
					PodMACPrefix: new(""), PodDefaultRouteNIC: new(""), TunePodRoutes: new(false), TxQueueLen: new(0), PodRPFilter: new(0)}
				s.EnableCoordinator, s.DisableIPAM, s.ChainCNIJsonData = new(true), new(false), []string{}
			}),
		},
		{
			name: "vlan manual gets vlanID 0, auto does not",
			in: base("vlan", func(s *MultusCNIConfigSpec) {
				s.VlanConfig = &SpiderVlanCniConfig{Master: []string{"eth0"}}
			}),
			want: base("vlan", func(s *MultusCNIConfigSpec) {
				s.VlanConfig = &SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("manual"), VlanID: new(int32(0)), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "vlan auto",
			in: base("vlan", func(s *MultusCNIConfigSpec) {
				s.VlanConfig = &SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("auto")}
			}),
			want: base("vlan", func(s *MultusCNIConfigSpec) {
				s.VlanConfig = &SpiderVlanCniConfig{Master: []string{"eth0"}, VlanMode: new("auto"), MTU: new(int32(0)), RdmaResourceName: new(""), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "sriov",
			in: base("sriov", func(s *MultusCNIConfigSpec) {
				s.SriovConfig = &SpiderSRIOVCniConfig{ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), RdmaIsolation: new(true),
					SpiderpoolConfigPools: &SpiderpoolPools{IPv4IPPool: []string{"v4"}}}
			}),
			want: base("sriov", func(s *MultusCNIConfigSpec) {
				s.SriovConfig = &SpiderSRIOVCniConfig{ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), MTU: new(int32(0)),
					MinTxRateMbps: new(0), MaxTxRateMbps: new(0), RdmaIsolation: new(true),
					SpiderpoolConfigPools: &SpiderpoolPools{IPv4IPPool: []string{"v4"}, MatchMasterSubnet: new(false)}}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ib-sriov",
			in:   base("ib-sriov", func(s *MultusCNIConfigSpec) { s.IbSriovConfig = &SpiderIBSriovCniConfig{ResourceName: new("r")} }),
			want: base("ib-sriov", func(s *MultusCNIConfigSpec) {
				s.IbSriovConfig = &SpiderIBSriovCniConfig{ResourceName: new("r"), Pkey: new(""), LinkState: new("enable"), RdmaIsolation: new(true),
					EnableIbKubernetes: new(false), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "ipoib and ovs",
			in:   base("ovs", func(s *MultusCNIConfigSpec) { s.OvsConfig = &SpiderOvsCniConfig{BrName: "br1"} }),
			want: base("ovs", func(s *MultusCNIConfigSpec) {
				s.OvsConfig = &SpiderOvsCniConfig{BrName: "br1", VlanTag: new(int32(0)), SpiderpoolConfigPools: emptyPools()}
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{}
			}),
		},
		{
			name: "missing sub-object is left for validation",
			in:   base("macvlan", func(s *MultusCNIConfigSpec) { s.ChainCNIJsonData = []string{`{"type":"tuning"}`} }),
			want: base("macvlan", func(s *MultusCNIConfigSpec) {
				s.EnableCoordinator, s.DisableIPAM, s.CoordinatorConfig, s.ChainCNIJsonData = new(true), new(false), missingCoordinator(), []string{`{"type":"tuning"}`}
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			DefaultSpiderMultusConfig(tc.in)
			jsonDiff(t, tc.want, tc.in)
		})
	}

	// Like upstream's webhook, a second pass (the webhook runs on every update) treats the
	// coordinator the first pass created as a given one and adds txQueueLen 0; nothing else moves.
	t.Run("second pass", func(t *testing.T) {
		m := base("ipvlan", func(s *MultusCNIConfigSpec) { s.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}} })
		DefaultSpiderMultusConfig(m)
		want := m.DeepCopy()
		want.Spec.CoordinatorConfig.TxQueueLen = new(0)
		DefaultSpiderMultusConfig(m)
		jsonDiff(t, want, m)
	})

	t.Run("injection annotations copied to labels", func(t *testing.T) {
		m := base("macvlan", func(s *MultusCNIConfigSpec) { s.MacvlanConfig = &SpiderMacvlanCniConfig{Master: []string{"eth0"}} })
		m.Annotations = map[string]string{AnnoRDMAResourceInject: "gpu-rdma", AnnoNetworkResourceInject: "net", "other": "x"}
		DefaultSpiderMultusConfig(m)
		jsonDiff(t, map[string]string{AnnoRDMAResourceInject: "gpu-rdma", AnnoNetworkResourceInject: "net"}, m.Labels)
	})
}

func TestPoolAllocations(t *testing.T) {
	t.Run("round trip, deterministic, count kept", func(t *testing.T) {
		var st IPPoolStatus
		a := PoolIPAllocations{
			"10.6.212.148": {NamespacedName: "default/nginx-4653bc4f24-aswpm", PodUID: "u2"},
			"10.6.212.145": {NamespacedName: "default/nginx-4653bc4f24-rswak", PodUID: "5d1c"},
		}
		if err := st.SetAllocations(a); err != nil {
			t.Fatal(err)
		}
		want := `{"10.6.212.145":{"pod":"default/nginx-4653bc4f24-rswak","podUid":"5d1c"},"10.6.212.148":{"pod":"default/nginx-4653bc4f24-aswpm","podUid":"u2"}}`
		if st.AllocatedIPs == nil || *st.AllocatedIPs != want {
			t.Errorf("allocatedIPs = %v, want %s", st.AllocatedIPs, want)
		}
		if st.AllocatedIPCount == nil || *st.AllocatedIPCount != 2 {
			t.Errorf("allocatedIPCount = %v, want 2", st.AllocatedIPCount)
		}
		got, err := st.Allocations()
		if err != nil {
			t.Fatal(err)
		}
		jsonDiff(t, a, got)
	})
	t.Run("empty clears", func(t *testing.T) {
		st := IPPoolStatus{AllocatedIPs: new(`{"10.6.0.1":{"pod":"a/b","podUid":"u"}}`), AllocatedIPCount: new(int64(1))}
		if err := st.SetAllocations(PoolIPAllocations{}); err != nil {
			t.Fatal(err)
		}
		if st.AllocatedIPs != nil || st.AllocatedIPCount == nil || *st.AllocatedIPCount != 0 {
			t.Errorf("got allocatedIPs %v, count %v", st.AllocatedIPs, st.AllocatedIPCount)
		}
	})
	for _, raw := range []*string{nil, new(""), new("null")} {
		st := IPPoolStatus{AllocatedIPs: raw}
		a, err := st.Allocations()
		if err != nil || a == nil || len(a) != 0 {
			t.Errorf("Allocations(%v) = %v, %v; want empty map", raw, a, err)
		}
		a["10.6.0.1"] = PoolIPAllocation{} // writable
	}
	t.Run("invalid JSON", func(t *testing.T) {
		st := IPPoolStatus{AllocatedIPs: new(`{"10.6.0.1":`)}
		if _, err := st.Allocations(); err == nil || !strings.Contains(err.Error(), "status.allocatedIPs") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSubnetControlledPools(t *testing.T) {
	t.Run("round trip and distinct count", func(t *testing.T) {
		var st SubnetStatus
		p := PoolIPPreAllocations{
			"b": {IPs: []string{"10.6.0.20-10.6.0.29"}, Application: new("apps_v1_Deployment_default_nginx")},
			"a": {IPs: []string{"10.6.0.1-10.6.0.10", "10.6.0.5"}},
		}
		if err := st.SetControlledPools(p); err != nil {
			t.Fatal(err)
		}
		want := `{"a":{"ips":["10.6.0.1-10.6.0.10","10.6.0.5"]},"b":{"ips":["10.6.0.20-10.6.0.29"],"application":"apps_v1_Deployment_default_nginx"}}`
		if st.ControlledIPPools == nil || *st.ControlledIPPools != want {
			t.Errorf("controlledIPPools = %v, want %s", st.ControlledIPPools, want)
		}
		if st.AllocatedIPCount == nil || *st.AllocatedIPCount != 20 {
			t.Errorf("allocatedIPCount = %v, want 20", st.AllocatedIPCount)
		}
		got, err := st.ControlledPools()
		if err != nil {
			t.Fatal(err)
		}
		jsonDiff(t, p, got)
	})
	t.Run("mixed families rejected, status unchanged", func(t *testing.T) {
		st := SubnetStatus{ControlledIPPools: new("{}"), AllocatedIPCount: new(int64(7))}
		err := st.SetControlledPools(PoolIPPreAllocations{"a": {IPs: []string{"10.6.0.1"}}, "b": {IPs: []string{"fd00::1"}}})
		if err == nil || !strings.Contains(err.Error(), `pool "b"`) {
			t.Errorf("err = %v, want a family error naming pool b", err)
		}
		if *st.ControlledIPPools != "{}" || *st.AllocatedIPCount != 7 {
			t.Errorf("status changed on error: %v %v", *st.ControlledIPPools, *st.AllocatedIPCount)
		}
	})
	t.Run("empty clears", func(t *testing.T) {
		st := SubnetStatus{ControlledIPPools: new(`{"a":{"ips":["10.6.0.1"]}}`)}
		if err := st.SetControlledPools(nil); err != nil {
			t.Fatal(err)
		}
		if st.ControlledIPPools != nil || *st.AllocatedIPCount != 0 {
			t.Errorf("not cleared")
		}
		if got, err := st.ControlledPools(); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ControlledPools() = %v, %v", got, err)
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		st := SubnetStatus{ControlledIPPools: new("[")}
		if _, err := st.ControlledPools(); err == nil {
			t.Error("want error")
		}
	})
}
