package initjob

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func load(t *testing.T, args []string, lookup func(string) (string, bool)) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := cfg.Load(fs, args, lookup)
	return cfg, err
}

func TestDefaultConfigIsTheControllersCoordinator(t *testing.T) {
	cfg := DefaultConfig()
	p, err := cfg.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := v2beta1.HelmDefaultCoordinator("default")
	// detectGateway/detectIPConflict are Helm values (false); the controller leaves them unset.
	want.Spec.DetectGateway, want.Spec.DetectIPConflict = new(false), new(false)
	if diff := cmp.Diff(want.Spec, p.Coordinator.Spec); diff != "" {
		t.Errorf("coordinator spec (-controller +init):\n%s", diff)
	}
	if len(p.Pools) != 0 || len(p.Subnets) != 0 {
		t.Errorf("default values install pools %v / subnets %v, want none", p.Pools, p.Subnets)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     func(string) (string, bool)
		check   func(t *testing.T, c Config)
		wantErr string // substring; "" means success
	}{
		{
			name: "env only",
			env: env(
				"SPIDERPOOL_INIT_COORDINATOR_MODE", "overlay",
				"SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR", "10.0.0.0/8, 169.254.0.0/16,",
				"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL", "true",
				"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET", "10.6.0.0/16",
				"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES", `["10.6.0.10-10.6.0.20","10.6.0.30"]`,
				"SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME", "default/ipvlan-ens5",
				"SPIDERPOOL_INIT_MULTUS_INSTALL", "false",
				"SPIDERPOOL_INIT_IPAM_SPIDER_SUBNET_ENABLE", "False",
				"SPIDERPOOL_INIT_NAMESPACE", "spiderpool",
				"SPIDERPOOL_INIT_COORDINATOR_POLICY_ROUTES", `[{"dst":"10.7.0.0/16","gw":"10.6.0.1"}]`,
				"SPIDERPOOL_INIT_COORDINATOR_VETH_MTU", "9000",
				"SPIDERPOOL_INIT_TIMEOUT", "30s",
			),
			check: func(t *testing.T, c Config) {
				want := DefaultConfig()
				want.Coordinator.Mode = "overlay"
				want.Coordinator.HijackCIDR = []string{"10.0.0.0/8", "169.254.0.0/16"}
				want.Coordinator.PolicyRoutes = []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "10.6.0.1"}}
				want.Coordinator.VethMTU = 9000
				want.IPv4Pool.Install = true
				want.IPv4Pool.Subnet = "10.6.0.0/16"
				want.IPv4Pool.IPRanges = []string{"10.6.0.10-10.6.0.20", "10.6.0.30"}
				want.Multus = MultusValues{Install: false, DefaultCNICRName: "default/ipvlan-ens5"}
				want.SpiderSubnetEnabled = false
				want.Namespace = "spiderpool"
				want.Timeout = 30 * time.Second
				if diff := cmp.Diff(want, c); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"--coordinator-mode=underlay", "--multus-install=false", "--coordinator-hijack-cidr="},
			env:  env("SPIDERPOOL_INIT_COORDINATOR_MODE", "overlay", "SPIDERPOOL_INIT_MULTUS_INSTALL", "true"),
			check: func(t *testing.T, c Config) {
				if c.Coordinator.Mode != "underlay" || c.Multus.Install || c.Coordinator.HijackCIDR != nil {
					t.Errorf("mode %q, multus install %t, hijackCIDR %q; want underlay, false, none", c.Coordinator.Mode, c.Multus.Install, c.Coordinator.HijackCIDR)
				}
			},
		},
		{
			name: "bare bool flag means true",
			args: []string{"--cluster-default-pool-install-ipv6-ippool"},
			env:  env(),
			check: func(t *testing.T, c Config) {
				if !c.IPv6Pool.Install {
					t.Error("installIPv6IPPool = false, want true")
				}
			},
		},
		{
			name: "empty env list is the empty list",
			env:  env("SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR", ""),
			check: func(t *testing.T, c Config) {
				if c.Coordinator.HijackCIDR != nil {
					t.Errorf("hijackCIDR = %q, want none", c.Coordinator.HijackCIDR)
				}
			},
		},
		{name: "bad env bool", env: env("SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL", "yes please"),
			wantErr: `SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL="yes please"`},
		{name: "empty env bool", env: env("SPIDERPOOL_INIT_MULTUS_INSTALL", ""), wantErr: "SPIDERPOOL_INIT_MULTUS_INSTALL"},
		{name: "bad env int", env: env("SPIDERPOOL_INIT_COORDINATOR_VETH_MTU", "big"), wantErr: "SPIDERPOOL_INIT_COORDINATOR_VETH_MTU"},
		{name: "bad env JSON list", env: env("SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR", `["10.0.0.0/8"`), wantErr: "SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR"},
		{name: "bad env routes", env: env("SPIDERPOOL_INIT_COORDINATOR_POLICY_ROUTES", `[{"dst":"10.0.0.0/8"}]`), wantErr: "SPIDERPOOL_INIT_COORDINATOR_POLICY_ROUTES"},
		{name: "bad env duration", env: env("SPIDERPOOL_INIT_TIMEOUT", "-1s"), wantErr: "SPIDERPOOL_INIT_TIMEOUT"},
		{name: "bad flag bool", args: []string{"--ipam-spider-subnet-enable=perhaps"}, env: env(), wantErr: "-ipam-spider-subnet-enable"},
		{name: "bad flag level", args: []string{"--log-level=loud"}, env: env(), wantErr: "-log-level"},
		{name: "unknown flag", args: []string{"--coordinator-colour=red"}, env: env(), wantErr: "coordinator-colour"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestPlanErrorsNameTheValue(t *testing.T) {
	pool4 := func(c *Config) {
		c.IPv4Pool.Install = true
		c.IPv4Pool.Subnet = "10.6.0.0/16"
		c.IPv4Pool.IPRanges = []string{"10.6.0.10-10.6.0.20"}
		c.IPv4Pool.Gateway = "10.6.0.1"
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error
	}{
		{"subnet garbage", func(c *Config) { pool4(c); c.IPv4Pool.Subnet = "ten-six" },
			[]string{"clusterDefaultPool.ipv4Subnet", "SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET", "--cluster-default-pool-ipv4-subnet", `"ten-six"`}},
		{"subnet of the wrong family", func(c *Config) {
			pool4(c)
			c.IPv4Pool.Subnet = "fd00::/64"
			c.IPv4Pool.IPRanges = []string{"fd00::10"}
			c.IPv4Pool.Gateway = ""
		},
			[]string{"clusterDefaultPool.ipv4Subnet", "fd00::/64"}},
		{"subnet missing", func(c *Config) { pool4(c); c.IPv4Pool.Subnet = "" },
			[]string{"clusterDefaultPool.ipv4Subnet", "required"}},
		{"ranges missing", func(c *Config) { pool4(c); c.IPv4Pool.IPRanges = nil },
			[]string{"clusterDefaultPool.ipv4IPRanges", "SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES"}},
		{"range outside the subnet", func(c *Config) { pool4(c); c.IPv4Pool.IPRanges = []string{"10.7.0.1"} },
			[]string{"clusterDefaultPool.ipv4IPRanges", `"10.7.0.1"`}},
		{"gateway outside the subnet", func(c *Config) { pool4(c); c.IPv4Pool.Gateway = "10.9.0.1" },
			[]string{"clusterDefaultPool.ipv4Gateway", `"10.9.0.1"`}},
		{"bad v6 pool name", func(c *Config) {
			c.IPv6Pool = PoolValues{Install: true, PoolName: "Default_V6", SubnetName: "s6", Subnet: "fd00::/64", IPRanges: []string{"fd00::10"}}
		}, []string{"clusterDefaultPool.ipv6IPPoolName", "Default_V6"}},
		{"bad subnet name", func(c *Config) { pool4(c); c.IPv4Pool.SubnetName = "-x" },
			[]string{"clusterDefaultPool.ipv4SubnetName", `"-x"`}},
		{"bad mode", func(c *Config) { c.Coordinator.Mode = "sideways" },
			[]string{"coordinator.mode", "SPIDERPOOL_INIT_COORDINATOR_MODE", "sideways"}},
		{"bad podCIDRType", func(c *Config) { c.Coordinator.PodCIDRType = "weave" },
			[]string{"coordinator.podCIDRType", "SPIDERPOOL_INIT_COORDINATOR_POD_CIDR_TYPE"}},
		{"bad hijackCIDR", func(c *Config) { c.Coordinator.HijackCIDR = []string{"10.0.0.0/8", "10.1.0.1/33"} },
			[]string{"coordinator.hijackCIDR", "SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR", "10.1.0.1/33"}},
		{"bad policy route", func(c *Config) { c.Coordinator.PolicyRoutes = []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "fd00::1"}} },
			[]string{"coordinator.policyRoutes", "fd00::1"}},
		{"bad vethLinkAddress", func(c *Config) { c.Coordinator.VethLinkAddress = "fe80::1" },
			[]string{"coordinator.vethLinkAddress", "SPIDERPOOL_INIT_COORDINATOR_VETH_LINK_ADDRESS"}},
		{"bad vethMTU", func(c *Config) { c.Coordinator.VethMTU = 0 },
			[]string{"coordinator.vethMTU", "--coordinator-veth-mtu"}},
		{"bad coordinator name", func(c *Config) { c.Coordinator.Name = "Default" },
			[]string{"coordinator.name", "SPIDERPOOL_INIT_COORDINATOR_NAME"}},
		{"bad namespace", func(c *Config) { c.Namespace = "kube_system" },
			[]string{"SPIDERPOOL_INIT_NAMESPACE", "kube_system"}},
		{"bad defaultCniCRName", func(c *Config) { c.Multus.DefaultCNICRName = "a/b/c" },
			[]string{"multus.multusCNI.defaultCniCRName", "SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME", "a/b/c"}},
		// A DNS subdomain is a valid object name, but Multus and the IPAM only match NADs named by
		// DNS labels: a SpiderMultusConfig "ipvlan.eth0" would give a network nobody can use.
		{"defaultCniCRName with a dot", func(c *Config) { c.Multus.DefaultCNICRName = "ipvlan.eth0" },
			[]string{"multus.multusCNI.defaultCniCRName", `name "ipvlan.eth0"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			_, err := c.Plan()
			if err == nil {
				t.Fatal("Plan succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPlanObjects(t *testing.T) {
	c := DefaultConfig()
	c.Namespace = "spiderpool"
	c.IPv4Pool = PoolValues{Install: true, PoolName: "p4", SubnetName: "s4", Subnet: "10.6.0.0/16",
		IPRanges: []string{"10.6.0.20", "10.6.0.10-10.6.0.19"}, Gateway: "10.6.0.1"}
	// Any CIDR upstream accepts is planned in the canonical form the webhook would store.
	c.IPv6Pool = PoolValues{Install: true, PoolName: "p6", SubnetName: "s6", Subnet: "fd00:6:0::1/64", IPRanges: []string{"fd00:6::10-fd00:6::20"}}
	c.Coordinator.HijackCIDR = []string{"10.96.0.10"}
	c.Multus.DefaultCNICRName = "ipvlan-ens5"
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Coordinator.Spec.HijackCIDR; !cmp.Equal(got, []string{"10.96.0.10/32"}) {
		t.Errorf("hijackCIDR = %q, want the webhook's rewrite to a /32", got)
	}
	if len(p.Pools) != 2 || len(p.Subnets) != 2 {
		t.Fatalf("%d pools and %d subnets, want 2 and 2", len(p.Pools), len(p.Subnets))
	}
	v4 := p.Pools[0]
	if v4.Name != "p4" || !*v4.Spec.Default || *v4.Spec.IPVersion != 4 || *v4.Spec.Gateway != "10.6.0.1" ||
		!cmp.Equal(v4.Spec.IPs, []string{"10.6.0.10-10.6.0.20"}) {
		t.Errorf("IPv4 pool = %+v, want p4, default, version 4, gateway 10.6.0.1, merged ips", v4.Spec)
	}
	if v6 := p.Pools[1]; v6.Spec.Gateway != nil || *v6.Spec.IPVersion != 6 || v6.Spec.Subnet != "fd00:6::/64" {
		t.Errorf("IPv6 pool = %+v, want no gateway, version 6 and subnet fd00:6::/64", v6.Spec)
	}
	if s6 := p.Subnets[1]; s6.Spec.Subnet != "fd00:6::/64" {
		t.Errorf("IPv6 subnet = %q, want fd00:6::/64", s6.Spec.Subnet)
	}
	if p.Subnets[0].Name != "s4" || p.Subnets[1].Name != "s6" {
		t.Errorf("subnets %s, %s; want s4, s6", p.Subnets[0].Name, p.Subnets[1].Name)
	}
	if p.MultusName != (MultusName{Namespace: "spiderpool", Name: "ipvlan-ens5"}) {
		t.Errorf("multus name = %v, want spiderpool/ipvlan-ens5", p.MultusName)
	}

	c.SpiderSubnetEnabled = false
	c.Multus.DefaultCNICRName = "default/ipvlan-ens5"
	if p, err = c.Plan(); err != nil {
		t.Fatal(err)
	}
	if len(p.Subnets) != 0 || p.MultusName.String() != "default/ipvlan-ens5" {
		t.Errorf("subnets %d, multus %s; want none and default/ipvlan-ens5", len(p.Subnets), p.MultusName)
	}
}

// TestPlanMultusNameIsMultusClusterNetwork: the SpiderMultusConfig spiderpool-init creates is the
// NetworkAttachmentDefinition that `spiderpool-agent multus-config` writes into Multus's
// configuration from the same Helm values.
func TestPlanMultusNameIsMultusClusterNetwork(t *testing.T) {
	for _, raw := range []string{"ipvlan-eth0", "default/ipvlan-ens5"} {
		c := DefaultConfig()
		c.Namespace, c.Multus.DefaultCNICRName = "spiderpool", raw
		p, err := c.Plan()
		if err != nil {
			t.Fatal(err)
		}
		o, err := multusconf.NodeConf{ClusterNetwork: raw, Namespace: c.Namespace}.Options()
		if err != nil {
			t.Fatal(err)
		}
		if want := (MultusName{Namespace: o.MultusNamespace, Name: o.ClusterNetwork}); p.MultusName != want {
			t.Errorf("defaultCniCRName %q: SpiderMultusConfig %s, Multus is configured with %s", raw, p.MultusName, want)
		}
	}
}

// The empty custom SpiderMultusConfig is what the webhook accepts and leaves alone.
func TestMultusConfigPassesTheWebhook(t *testing.T) {
	for _, custom := range []string{"", `{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]}`} {
		smc := multusConfig(MultusName{Namespace: "kube-system", Name: "n"}, custom)
		if errs := v2beta1.ValidateSpiderMultusConfig(smc); len(errs) > 0 {
			t.Errorf("customCNI %q: %v", custom, errs)
		}
		again := smc.DeepCopy()
		v2beta1.DefaultSpiderMultusConfig(again)
		if diff := cmp.Diff(smc, again); diff != "" {
			t.Errorf("defaulting changes the object (-init +webhook):\n%s", diff)
		}
	}
}

// The package documentation is the chart author's contract: it must list every setting.
func TestDocListsEverySetting(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	for _, s := range c.Settings() {
		if !strings.Contains(string(doc), s.Env) || !strings.Contains(string(doc), "--"+s.Flag+" ") {
			t.Errorf("doc.go does not list %s / --%s", s.Env, s.Flag)
		}
		if !strings.HasPrefix(s.Env, EnvPrefix) {
			t.Errorf("%s does not start with %s", s.Env, EnvPrefix)
		}
	}
	// The names the chart was promised.
	for _, env := range []string{
		"SPIDERPOOL_INIT_COORDINATOR_MODE", "SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR",
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL", "SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET",
		"SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME", "SPIDERPOOL_INIT_MULTUS_INSTALL",
		"SPIDERPOOL_INIT_IPAM_SPIDER_SUBNET_ENABLE", "SPIDERPOOL_INIT_NAMESPACE",
	} {
		found := false
		for _, s := range c.Settings() {
			found = found || s.Env == env
		}
		if !found {
			t.Errorf("no setting reads %s", env)
		}
	}
}
