package integration

import (
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// sriovIPAM returns the ipam object of the NAD generated for a sriov SpiderMultusConfig whose
// ippools are pools (docs/design/behaviour.md#nad-generation), as the controller writes it, minus its type.
func sriovIPAM(t *testing.T, match bool, pools ...string) map[string]any {
	t.Helper()
	smc := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "sriov-rail"},
		Spec: v2beta1.MultusCNIConfigSpec{
			CniType: new(v2beta1.CniTypeSriov),
			SriovConfig: &v2beta1.SpiderSRIOVCniConfig{
				ResourceName:          new("spidernet.io/rail"),
				SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: pools, MatchMasterSubnet: new(match)},
			},
		},
	}
	v2beta1.DefaultSpiderMultusConfig(smc)
	conf, err := controller.NADConfig(smc, "")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Plugins []struct {
			Type string         `json:"type"`
			IPAM map[string]any `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(conf), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Plugins) == 0 || list.Plugins[0].Type != "sriov" || list.Plugins[0].IPAM == nil {
		t.Fatalf("NAD config %s has no sriov plugin with ipam", conf)
	}
	ipamConf := list.Plugins[0].IPAM
	if got, _ := ipamConf["match_master_subnet"].(bool); got != match {
		t.Fatalf("NAD ipam %v: match_master_subnet is not %v", ipamConf, match)
	}
	delete(ipamConf, "type")
	return ipamConf
}

// The agent's side of match_master_subnet against the real apiserver: the master arrives in the
// request (the plugin finds it, internal/sriov), and only the pools on its network serve the
// interface. This kernel has no SR-IOV, so the plugin cannot find a PF here; the agent is called
// through its client with the master a plugin on an SR-IOV node would send, a PF with an address
// in rail-b's subnet.
func TestMatchMasterSubnetAgent(t *testing.T) {
	createTestPool(t, build.Pool("rail-a", "10.112.1.0/24", build.IPs("10.112.1.10-10.112.1.20"), build.NodeName("mmsnode")))
	createTestPool(t, build.Pool("rail-b", "10.112.2.0/24", build.IPs("10.112.2.10-10.112.2.20"), build.NodeName("mmsnode")))
	makeNode(t, "mmsnode", nil)
	a := startAgent(t, "mmsnode", nil)
	api := agentclient.New(a.socket)
	pf := &v1.Master{Name: "ens2f0", Addresses: []string{"10.112.2.1/24", "fe80::1/64"}}

	tests := []struct {
		name     string
		match    bool
		master   *v1.Master
		pools    []string
		wantPool string // "" when the ADD must fail
		wantCode v1.Code
		wantErr  []string
	}{
		{name: "off: the first pool", pools: []string{"rail-a", "rail-b"}, wantPool: "10.112.1.0/24"},
		{name: "off: a master is ignored", master: pf, pools: []string{"rail-a", "rail-b"}, wantPool: "10.112.1.0/24"},
		{name: "on: the pool on the PF's network", match: true, master: pf, pools: []string{"rail-a", "rail-b"}, wantPool: "10.112.2.0/24"},
		{name: "on: wildcard", match: true, master: pf, pools: []string{"rail-*"}, wantPool: "10.112.2.0/24"},
		{
			name: "on: no pool on the PF's network", match: true, master: pf, pools: []string{"rail-a"}, wantCode: v1.CodeNoCandidatePool,
			wantErr: []string{"no IPPool available", "rail-a", "subnet 10.112.1.0/24 holds no address of master ens2f0 (10.112.2.1/24, fe80::1/64)"},
		},
		{
			name: "on: no master", match: true, pools: []string{"rail-a", "rail-b"}, wantCode: v1.CodeInvalidRequest,
			wantErr: []string{"missing required field(s): master", "matchMasterSubnet is true"},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := makePod(t, "default", "vf-api-"+string(rune('a'+i)), "mmsnode", nil, nil)
			uid := string(pod.UID)
			ctx := testContext(t)
			res, err := api.Allocate(ctx, &v1.IpamAddArgs{
				ContainerID: "ctr-" + uid, IfName: "net1", NetNamespace: "/var/run/netns/cni-" + pod.Name,
				PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: uid,
				DefaultIPv4IPPool: tc.pools, MatchMasterSubnet: tc.match, Master: tc.master,
			})
			if tc.wantPool == "" {
				var apiErr *v1.Error
				if !errors.As(err, &apiErr) || apiErr.Code != tc.wantCode || !hasAll(apiErr.Message, tc.wantErr...) {
					t.Fatalf("ADD: %v, want %s containing %q", err, tc.wantCode, tc.wantErr)
				}
				for _, p := range []string{"rail-a", "rail-b"} {
					if recs := poolRecords(t, p); len(recs) != 0 {
						t.Errorf("refused ADD left records in %s: %v", p, recs)
					}
				}
				if endpointExists(t, pod.Namespace, pod.Name) {
					t.Errorf("refused ADD left a SpiderEndpoint")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IPs) != 1 || !netip.MustParsePrefix(tc.wantPool).Contains(netip.MustParsePrefix(res.IPs[0].Address).Addr()) {
				t.Fatalf("answer %+v, want one address of %s", res.IPs, tc.wantPool)
			}
			err = api.Release(ctx, &v1.IpamDelArgs{ContainerID: "ctr-" + uid, IfName: "net1",
				PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: uid})
			if err != nil {
				t.Fatalf("DEL: %v", err)
			}
		})
	}
}

// SpiderMultusConfig sriov.ippools.matchMasterSubnet through the NAD the controller generates,
// the real plugin and a real agent. Off, the plugin asks for the NAD's first pool and sends no
// master. On, the plugin looks the master up itself; where it cannot (here CNI_NETNS is no
// namespace) the ADD fails with the option and the interface named, before the agent is asked,
// so nothing is allocated. The lookup on a real namespace is
// TestPrivilegedMatchMasterSubnetWithoutSRIOV; the agent's filter is TestMatchMasterSubnetAgent.
func TestMatchMasterSubnetThroughPlugin(t *testing.T) {
	createTestPool(t, build.Pool("rail-d", "10.112.4.0/24", build.IPs("10.112.4.10-10.112.4.20"), build.NodeName("mmsnode3")))
	createTestPool(t, build.Pool("rail-e", "10.112.5.0/24", build.IPs("10.112.5.10-10.112.5.20"), build.NodeName("mmsnode3")))
	makeNode(t, "mmsnode3", nil)
	a := startAgent(t, "mmsnode3", nil)

	t.Run("off", func(t *testing.T) {
		pod := makePod(t, "default", "vf-off", "mmsnode3", nil, nil)
		inv := cniInvocation{cniVersion: "1.1.0", ifName: "net1", pod: pod, socket: a.socket, ipam: sriovIPAM(t, false, "rail-d", "rail-e")}
		res, err := inv.add(t)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 1 || !netip.MustParsePrefix("10.112.4.0/24").Contains(netip.MustParseAddr(res.IPs[0].Address.IP.String())) {
			t.Fatalf("result %+v, want one address of rail-d", res.IPs)
		}
		inv.command = "DEL"
		if _, err := inv.run(t); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	})
	t.Run("on, the master not found", func(t *testing.T) {
		pod := makePod(t, "default", "vf-on", "mmsnode3", nil, nil)
		netns := filepath.Join(t.TempDir(), "no-such-netns")
		_, err := cniInvocation{ifName: "net1", pod: pod, socket: a.socket, netns: netns, ipam: sriovIPAM(t, true, "rail-d", "rail-e")}.add(t)
		want := []string{"match_master_subnet: find the master of net1: interface net1 in " + netns}
		if err == nil || !hasAll(err.Error(), want...) {
			t.Fatalf("ADD: %v, want an error containing %q", err, want)
		}
		for _, p := range []string{"rail-d", "rail-e"} {
			for ip, uid := range poolRecords(t, p) {
				if uid == string(pod.UID) {
					t.Errorf("refused ADD left %s in %s", ip, p)
				}
			}
		}
		if endpointExists(t, "default", "vf-on") {
			t.Errorf("refused ADD left a SpiderEndpoint")
		}
	})
}

// The plugin's own lookup on a real pod namespace: this kernel has no SR-IOV, so on a veth
// match_master_subnet fails the ADD with the reason, and the agent allocates nothing.
func TestPrivilegedMatchMasterSubnetWithoutSRIOV(t *testing.T) {
	podNS := testutil.NewNS(t)
	peerNS := testutil.NewNS(t)
	testutil.InNS(t, peerNS, func() error {
		_, err := netlinkx.AddVeth(netlinkx.Veth{Name: "peer0", PeerName: "net1", PeerNS: podNS})
		return err
	})
	createTestPool(t, build.Pool("rail-c", "10.112.3.0/24", build.IPs("10.112.3.10-10.112.3.20"), build.NodeName("mmsnode2")))
	makeNode(t, "mmsnode2", nil)
	a := startAgent(t, "mmsnode2", nil)
	pod := makePod(t, "default", "vf-veth", "mmsnode2", nil, nil)
	_, err := cniInvocation{ifName: "net1", pod: pod, socket: a.socket, netns: podNS.Path(), ipam: sriovIPAM(t, true, "rail-c")}.add(t)
	want := []string{"match_master_subnet: find the master of net1", `(driver "veth") is not a PCI device, so not an SR-IOV VF`}
	if err == nil || !hasAll(err.Error(), want...) {
		t.Fatalf("ADD: %v, want an error containing %q", err, want)
	}
	if recs := poolRecords(t, "rail-c"); len(recs) != 0 {
		t.Errorf("refused ADD left records %v", recs)
	}
	if endpointExists(t, "default", "vf-veth") {
		t.Errorf("refused ADD left a SpiderEndpoint")
	}
}
