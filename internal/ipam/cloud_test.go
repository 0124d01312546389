package ipam_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// guideConfig is what the agent gets from the guides' helm install lines: the
// chart's default ipam.enableIPv4 and ipam.enableIPv6 (both true; the guides
// do not change them although their pools are IPv4-only), the release
// namespace and multus.multusCNI.defaultCniCRName.
func guideConfig(defaultCniCRName string) ipam.Config {
	return ipam.Config{EnableIPv4: true, EnableIPv6: true, InstallNamespace: "kube-system", ClusterDefaultNAD: defaultCniCRName}
}

func TestPublicCloudTopology(t *testing.T) {
	// helm install ... --set ipam.enableStatefulSet=false --set multus.multusCNI.defaultCniCRName="ipvlan-eth0"
	cfg := guideConfig("ipvlan-eth0")
	tests := []struct {
		name     string
		node     string
		ifName   string
		anno     map[string]string
		wantPool string
		wantAddr string
		wantGW   string
	}{
		{
			name: "test-app-1 on master", node: "master",
			anno:     map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth0"},
			wantPool: "master-172", wantAddr: "172.31.199.185/20", wantGW: "172.31.207.253",
		},
		{
			name: "test-app-2 on master", node: "master",
			anno:     map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth1"},
			wantPool: "master-192", wantAddr: "192.168.0.156/24", wantGW: "192.168.0.253",
		},
		{
			name: "test-app-1 on worker", node: "worker",
			anno:     map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth0"},
			wantPool: "worker-172", wantAddr: "172.31.199.190/20", wantGW: "172.31.207.253",
		},
		{
			name: "test-app-2 on worker", node: "worker",
			anno:     map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth1"},
			wantPool: "worker-192", wantAddr: "192.168.0.161/24", wantGW: "192.168.0.253",
		},
		{
			name: "no annotation uses the cluster default network", node: "worker",
			wantPool: "worker-172", wantAddr: "172.31.199.190/20", wantGW: "172.31.207.253",
		},
		{
			name: "second NIC from k8s.v1.cni.cncf.io/networks", node: "master", ifName: "net1",
			anno:     map[string]string{v2beta1.AnnoMultusNetworks: "kube-system/ipvlan-eth1"},
			wantPool: "master-192", wantAddr: "192.168.0.156/24", wantGW: "192.168.0.253",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := ipamtest.NewStore(ipamtest.PublicCloudPools()...)
			req := &ipam.Request{
				PodNamespace: "default", PodName: "test-app", PodUID: "uid-" + tc.node,
				NodeName: tc.node, IfName: "eth0", PodAnnotations: tc.anno,
			}
			if tc.ifName != "" {
				req.IfName = tc.ifName
			}
			res, err := ipam.New(store, cfg).Allocate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got := res.IPs[0]
			if len(res.IPs) != 1 || got.Pool != tc.wantPool || got.Address.String() != tc.wantAddr || got.Gateway.String() != tc.wantGW {
				t.Fatalf("got %+v, want %s from %s via %s", res.IPs, tc.wantAddr, tc.wantPool, tc.wantGW)
			}
			checkStore(t, store)
		})
	}
}

func TestPublicCloudTopologyAllocatedCounts(t *testing.T) {
	cfg := guideConfig("ipvlan-eth0")
	store := ipamtest.NewStore(ipamtest.PublicCloudPools()...)
	a := ipam.New(store, cfg)
	// The two DaemonSets put one pod on each node.
	for _, node := range []string{"master", "worker"} {
		for _, nad := range []string{"kube-system/ipvlan-eth0", "kube-system/ipvlan-eth1"} {
			req := &ipam.Request{
				PodNamespace: "default", PodName: node + nad, PodUID: node + nad, NodeName: node, IfName: "eth0",
				PodAnnotations: map[string]string{v2beta1.AnnoMultusDefaultNetwork: nad},
			}
			if _, err := a.Allocate(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
	}
	pools, _ := store.Pools(context.Background())
	for _, p := range pools {
		st, err := ipam.NewPoolState(p)
		if err != nil {
			t.Fatal(err)
		}
		if *p.Status.AllocatedIPCount != 1 || st.Usable().Count() != 5 {
			t.Errorf("%s: ALLOCATED-IP-COUNT %d TOTAL-IP-COUNT %d, want 1 and 5", p.Name, *p.Status.AllocatedIPCount, st.Usable().Count())
		}
	}
	checkStore(t, store)
}

func TestPublicCloudTopologyOtherNode(t *testing.T) {
	cfg := guideConfig("ipvlan-eth0")
	store := ipamtest.NewStore(ipamtest.PublicCloudPools()...)
	req := &ipam.Request{
		PodNamespace: "default", PodName: "test-app", PodUID: "u", NodeName: "other", IfName: "eth0",
		PodAnnotations: map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth1"},
	}
	_, err := ipam.New(store, cfg).Allocate(context.Background(), req)
	const want = `no IPPool available, all IPv4 IPPools [master-172 master-192 worker-172 worker-192] of eth0 filtered out: ` +
		`master-172: nodeName does not include "other"; master-192: nodeName does not include "other"; ` +
		`worker-172: nodeName does not include "other"; worker-192: nodeName does not include "other"`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var fe *ipam.FilterError
	if !errors.As(err, &fe) || !errors.Is(err, ipam.ErrNoCandidatePool) || len(fe.Refusals) != 4 {
		t.Fatalf("error %v is not a *FilterError with four refusals", err)
	}

	// On a known node, the wrong NIC's pools are refused by multusName.
	req.NodeName = "worker"
	req.PodAnnotations[v2beta1.AnnoMultusDefaultNetwork] = "kube-system/macvlan"
	_, err = ipam.New(store, cfg).Allocate(context.Background(), req)
	const want2 = `no IPPool available, all IPv4 IPPools [master-172 master-192 worker-172 worker-192] of eth0 filtered out: ` +
		`master-172: nodeName does not include "worker"; master-192: nodeName does not include "worker"; ` +
		`worker-172: multusName does not include "kube-system/macvlan"; worker-192: multusName does not include "kube-system/macvlan"`
	if err == nil || err.Error() != want2 {
		t.Fatalf("got  %v\nwant %s", err, want2)
	}
}

func TestAWSTopology(t *testing.T) {
	// --set multus.multusCNI.defaultCniCRName="default/ipvlan-ens5"
	cfg := guideConfig("default/ipvlan-ens5")
	store := ipamtest.NewStore(
		build.Pool("master-v4-ens5", "172.31.16.0/20", build.IPs("172.31.16.4-172.31.16.8"), build.Gateway("172.31.16.1"), build.Default(), build.NodeName("master"), build.MultusName("default/ipvlan-ens5")),
		build.Pool("master-v4-ens6", "210.22.16.0/24", build.IPs("210.22.16.11-210.22.16.15"), build.Gateway("210.22.16.1"), build.Default(), build.NodeName("master"), build.MultusName("default/ipvlan-ens6")),
		build.Pool("worker1-v4-ens5", "180.17.16.0/24", build.IPs("180.17.16.11-180.17.16.15"), build.Gateway("180.17.16.1"), build.Default(), build.NodeName("worker1"), build.MultusName("default/ipvlan-ens5")),
		build.Pool("worker1-v4-ens6", "210.22.32.0/24", build.IPs("210.22.32.11-210.22.32.15"), build.Gateway("210.22.32.1"), build.Default(), build.NodeName("worker1"), build.MultusName("default/ipvlan-ens6")),
	)
	a := ipam.New(store, cfg)
	for _, tc := range []struct{ node, nad, pool string }{
		{"master", "default/ipvlan-ens5", "master-v4-ens5"},
		{"worker1", "default/ipvlan-ens5", "worker1-v4-ens5"},
		{"master", "default/ipvlan-ens6", "master-v4-ens6"},
		{"worker1", "default/ipvlan-ens6", "worker1-v4-ens6"},
		{"worker1", "", "worker1-v4-ens5"},
	} {
		req := &ipam.Request{PodNamespace: "default", PodName: "nginx", PodUID: tc.node + tc.nad, NodeName: tc.node, IfName: "eth0"}
		if tc.nad != "" {
			req.PodAnnotations = map[string]string{v2beta1.AnnoMultusDefaultNetwork: tc.nad}
		}
		res, err := a.Allocate(context.Background(), req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.node, tc.nad, err)
		}
		if len(res.IPs) != 1 || res.IPs[0].Pool != tc.pool {
			t.Errorf("%s %s: got %+v, want one address from %s", tc.node, tc.nad, res.IPs, tc.pool)
		}
	}
	checkStore(t, store)
}
