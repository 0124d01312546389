package coordinator

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// prevResultJSON is a main plugin's result for eth0 in the given version's shape.
func prevResultJSON(ver, ifName string, addrs ...string) string {
	var ips []string
	for _, a := range addrs {
		p := netip.MustParsePrefix(a)
		gw := p.Masked().Addr().Next()
		switch ver {
		case "0.3.0", "0.3.1", "0.4.0":
			fam := "4"
			if p.Addr().Is6() {
				fam = "6"
			}
			ips = append(ips, fmt.Sprintf(`{"version":%q,"interface":0,"address":%q,"gateway":%q}`, fam, a, gw))
		default:
			ips = append(ips, fmt.Sprintf(`{"interface":0,"address":%q,"gateway":%q}`, a, gw))
		}
	}
	return fmt.Sprintf(`{"cniVersion":%q,"interfaces":[{"name":%q,"sandbox":"/var/run/netns/x"}],"ips":[%s]}`, ver, ifName, strings.Join(ips, ","))
}

func confJSON(ver, extra string) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-conf","type":"coordinator","prevResult":%s`, ver, prevResultJSON(ver, "eth0", "10.6.212.145/16", "fd00:10:6::91/64"))
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func TestLoadConfEveryVersion(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "") // the node's default log directory
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			conf, err := loadConf(confJSON(ver, `"mode":"underlay","hostRuleTable":600,"podRPFilter":-1,"hostRPFilter":1,"txQueueLen":3000,
				"podMACPrefix":"0a:1b","vethLinkAddress":"169.254.200.1","vethMTU":9000,"overlayPodCIDR":["10.233.64.0/18"],
				"serviceCIDR":["10.233.0.0/18"],"hijackCIDR":["169.254.25.10/32"],"policyRoutes":[{"dst":"172.16.0.0/16","gw":"10.6.0.254"}],
				"podDefaultCniNic":"eth0","multusNicPrefix":"net","detectIPConflict":true,"detectGateway":true,"tunePodRoutes":true,
				"podDefaultRouteNic":"net1","logOptions":{"logLevel":"INFO","logFile":"/var/log/spidernet/c.log"}`))
			if err != nil {
				t.Fatal(err)
			}
			if conf.CNIVersion != ver || conf.LogOptions.LogLevel != "info" || conf.LogOptions.LogMaxSize != DefaultLogMaxSize ||
				conf.LogOptions.LogFile != "/var/log/spidernet/c.log" {
				t.Errorf("cniVersion %s, logOptions %+v", conf.CNIVersion, conf.LogOptions)
			}
			prev, err := prevResult(conf)
			if err != nil {
				t.Fatal(err)
			}
			addrs, gws := nicAddrs(prev, "eth0")
			want := []netip.Prefix{netip.MustParsePrefix("10.6.212.145/16"), netip.MustParsePrefix("fd00:10:6::91/64")}
			if diff := cmp.Diff(want, addrs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if len(gws) != 2 || gws[0] != netip.MustParseAddr("10.6.0.1") {
				t.Errorf("gateways = %v", gws)
			}
			if addrs, _ := nicAddrs(prev, "net1"); len(addrs) != 0 {
				t.Errorf("addresses of net1 = %v, want none", addrs)
			}
		})
	}
}

func TestLoadConfErrors(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "")
	tests := []struct {
		name, extra, want string
	}{
		{"mode", `"mode":"bridge"`, `mode "bridge"`},
		{"hostRuleTable zero", `"hostRuleTable":0`, "hostRuleTable 0"},
		{"hostRuleTable main", `"hostRuleTable":254`, "hostRuleTable 254"},
		{"hostRuleTable type", `"hostRuleTable":"500"`, `"hostRuleTable"`},
		{"podRPFilter", `"podRPFilter":3`, "podRPFilter 3"},
		{"txQueueLen", `"txQueueLen":-1`, "txQueueLen -1"},
		{"vethMTU", `"vethMTU":0`, "vethMTU 0"},
		{"vethMTU big", `"vethMTU":70000`, "vethMTU 70000"},
		{"podMACPrefix", `"podMACPrefix":"zz:01"`, `podMACPrefix "zz:01"`},
		{"podMACPrefix multicast", `"podMACPrefix":"01:00"`, "multicast"},
		{"podMACPrefix long", `"podMACPrefix":"0a:00:01"`, "podMACPrefix"},
		{"vethLinkAddress", `"vethLinkAddress":"169.254.0.1/32"`, "vethLinkAddress"},
		{"overlayPodCIDR", `"overlayPodCIDR":["10.233.64.0"]`, "overlayPodCIDR[0]"},
		{"serviceCIDR", `"serviceCIDR":["10.233.0.0/18","x"]`, "serviceCIDR[1]"},
		{"hijackCIDR", `"hijackCIDR":["::1/200"]`, "hijackCIDR[0]"},
		{"policyRoutes dst", `"policyRoutes":[{"dst":"1.2.3.4","gw":"10.6.0.1"}]`, "policyRoutes[0].dst"},
		{"policyRoutes gw", `"policyRoutes":[{"dst":"1.2.3.0/24","gw":"gw"}]`, "policyRoutes[0].gw"},
		{"policyRoutes family", `"policyRoutes":[{"dst":"1.2.3.0/24","gw":"fd00::1"}]`, "policyRoutes[0]"},
		{"podDefaultCniNic", `"podDefaultCniNic":"a/b"`, "podDefaultCniNic"},
		{"podDefaultRouteNic", `"podDefaultRouteNic":"a-very-long-interface"`, "podDefaultRouteNic"},
		{"logLevel", `"logOptions":{"logLevel":"trace"}`, "logOptions.logLevel"},
		{"logMaxAge", `"logOptions":{"logMaxAge":-1}`, "logOptions.logMaxAge"},
		{"logFile outside", `"logOptions":{"logFile":"/etc/shadow"}`, `logOptions.logFile "/etc/shadow": must be a file under /var/log/spidernet`},
		{"logFile relative", `"logOptions":{"logFile":"coordinator.log"}`, `logOptions.logFile "coordinator.log": must be a file under /var/log/spidernet`},
		{"logFile ..", `"logOptions":{"logFile":"/var/log/spidernet/../x.log"}`, `logOptions.logFile "/var/log/spidernet/../x.log": must be`},
		{"tunePodRoutes type", `"tunePodRoutes":"yes"`, `"tunePodRoutes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConf(confJSON("1.0.0", tt.extra))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConf error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		_, err := loadConf([]byte(`{"cniVersion":"0.2.0","name":"n","type":"coordinator"}`))
		if err == nil || !strings.Contains(err.Error(), "0.2.0") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("prevResult", func(t *testing.T) {
		_, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"coordinator","prevResult":{"ips":[{"address":"bad"}]}}`))
		if err == nil || !strings.Contains(err.Error(), "prevResult") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("no prevResult", func(t *testing.T) {
		conf, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"coordinator"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := prevResult(conf); err == nil || !strings.Contains(err.Error(), "prevResult") {
			t.Fatalf("prevResult error = %v", err)
		}
	})
}

func TestMerge(t *testing.T) {
	agent := &v1.CoordinatorConfig{
		Mode: "overlay", OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"},
		HijackCIDR: []string{"169.254.25.10/32"}, PolicyRoutes: []v1.Route{{Dst: "172.16.0.0/16", Gw: "10.6.0.254"}},
		PodMACPrefix: "0a:1b", TunePodRoutes: true, PodDefaultRouteNIC: "net1", HostRuleTable: 600, PodRPFilter: 2,
		TxQueueLen: 1000, VethLinkAddress: "169.254.100.1", VethMTU: 1450,
	}
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	cmpOpts := cmp.Options{
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	}
	tests := []struct {
		name  string
		extra string
		agent *v1.CoordinatorConfig
		want  Config
	}{
		{
			name: "nothing set: fixed defaults",
			want: Config{Mode: ModeAuto, HostRuleTable: 500, VethMTU: 1500, PodDefaultCNINIC: "eth0"},
		},
		{
			name:  "agent fills every absent key",
			agent: agent,
			want: Config{
				Mode: ModeOverlay, TunePodRoutes: true, PodDefaultRouteNIC: "net1", HostRuleTable: 600, PodRPFilter: 2,
				TxQueueLen: 1000, PodMACPrefix: []byte{0x0a, 0x1b}, VethLinkAddress: netip.MustParseAddr("169.254.100.1"),
				VethMTU: 1450, OverlayPodCIDR: pfx("10.233.64.0/18"), ServiceCIDR: pfx("10.233.0.0/18"),
				HijackCIDR: pfx("169.254.25.10/32"), PolicyRoutes: []Route{{Dst: netip.MustParsePrefix("172.16.0.0/16"), GW: netip.MustParseAddr("10.6.0.254")}},
				PodDefaultCNINIC: "eth0",
			},
		},
		{
			name: "NAD values win, explicit zero and empty lists included",
			extra: `"mode":"Underlay","tunePodRoutes":false,"podDefaultRouteNic":"eth0","hostRuleTable":700,"podRPFilter":-1,
				"txQueueLen":0,"podMACPrefix":"0e:00","vethLinkAddress":"fd00::1","vethMTU":9000,"overlayPodCIDR":[],
				"serviceCIDR":["10.96.0.1/12"],"hijackCIDR":[],"policyRoutes":[],"podDefaultCniNic":"net0"`,
			agent: agent,
			want: Config{
				Mode: ModeUnderlay, PodDefaultRouteNIC: "eth0", HostRuleTable: 700, PodRPFilter: -1,
				PodMACPrefix: []byte{0x0e, 0}, VethLinkAddress: netip.MustParseAddr("fd00::1"), VethMTU: 9000,
				ServiceCIDR: pfx("10.96.0.0/12"), PodDefaultCNINIC: "net0",
			},
		},
		{
			name:  "disable is disabled",
			extra: `"mode":"disable"`,
			want:  Config{Mode: ModeDisabled, HostRuleTable: 500, VethMTU: 1500, PodDefaultCNINIC: "eth0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := loadConf(confJSON("1.1.0", tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			got, err := merge(conf, tt.agent)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got, cmpOpts); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("invalid agent value names the key and source", func(t *testing.T) {
		conf, err := loadConf(confJSON("1.1.0", ""))
		if err != nil {
			t.Fatal(err)
		}
		for _, ac := range []*v1.CoordinatorConfig{
			{Mode: "weird"}, {HostRuleTable: 255}, {VethMTU: 10}, {ServiceCIDR: []string{"nope"}}, {PodMACPrefix: "ff:ff"},
		} {
			_, err := merge(conf, ac)
			if err == nil || !strings.Contains(err.Error(), "spiderpool-agent") {
				data, _ := json.Marshal(ac)
				t.Errorf("merge with agent %s: error %v, want one naming spiderpool-agent", data, err)
			}
		}
	})
}

func TestParseCNIArgs(t *testing.T) {
	got, err := parseCNIArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=c;X=y")
	if err != nil || got != (podArgs{Namespace: "default", Name: "nginx"}) {
		t.Fatalf("parseCNIArgs = %+v, %v", got, err)
	}
	for _, s := range []string{"K8S_POD_NAME=nginx", "K8S_POD_NAMESPACE=default", "K8S_POD_NAMESPACE=d;K8S_POD_NAME=n;BOGUS=1"} {
		if _, err := parseCNIArgs(s); err == nil {
			t.Errorf("parseCNIArgs(%q) succeeded", s)
		}
	}
}

func TestHostVethName(t *testing.T) {
	for id, want := range map[string]string{
		"4653bc4f24aabbccddeeff": "veth4653bc4f24a",
		"short":                  "vethshort",
	} {
		if got := hostVethName(id); got != want {
			t.Errorf("hostVethName(%q) = %q, want %q", id, got, want)
		}
	}
}
