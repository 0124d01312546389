package ipam_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func filterRequest() *ipam.Request {
	return &ipam.Request{
		PodNamespace: "app", PodName: "web-0", PodUID: "uid-1",
		PodLabels:       map[string]string{"app": "web"},
		NodeName:        "worker",
		NodeLabels:      map[string]string{"zone": "a"},
		NamespaceLabels: map[string]string{"team": "blue"},
		IfName:          "eth0",
		Controller:      ipam.Controller{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "app", Name: "web"},
		PodAnnotations: map[string]string{
			v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth0",
			v2beta1.AnnoMultusNetworks:       "macvlan-a,kube-system/macvlan-b@eth9",
		},
	}
}

// pool4 is an IPv4 pool with ten addresses that opts make pass or fail a filter.
func pool4(name string, opts ...build.Option) *v2beta1.SpiderIPPool {
	return build.Pool(name, "10.6.0.0/16", append([]build.Option{build.IPs("10.6.0.10-10.6.0.20")}, opts...)...)
}

func TestFilter(t *testing.T) {
	cfg := &ipam.Config{EnableIPv4: true, EnableIPv6: true, InstallNamespace: "kube-system", ClusterDefaultNAD: "ipvlan-eth0"}
	tests := []struct {
		name   string
		pool   *v2beta1.SpiderIPPool
		ifName string // default eth0
		anno   map[string]string
		reason string // "" when the pool is kept
	}{
		{name: "plain pool", pool: pool4("p")},
		{name: "terminating", pool: pool4("p", build.Deleting(), build.Finalizer(v2beta1.Finalizer)), reason: "terminating"},
		{name: "disabled", pool: pool4("p", build.Disable()), reason: "disabled"},
		{name: "ipVersion mismatch", pool: build.Pool("p", "fd00::/64", build.IPs("fd00::1")), reason: "ipVersion is 6, not 4"},
		{name: "nodeName includes the node", pool: pool4("p", build.NodeName("master", "worker"))},
		{name: "nodeName excludes the node", pool: pool4("p", build.NodeName("master")), reason: `nodeName does not include "worker"`},
		{name: "nodeName wins over nodeAffinity", pool: pool4("p", build.NodeName("worker"), build.NodeAffinity(build.Selector("zone", "b")))},
		{name: "nodeAffinity matches", pool: pool4("p", build.NodeAffinity(build.Selector("zone", "a")))},
		{name: "nodeAffinity does not match", pool: pool4("p", build.NodeAffinity(build.Selector("zone", "b"))), reason: `nodeAffinity "zone=b" does not match the labels of node "worker"`},
		{
			name:   "invalid nodeAffinity",
			pool:   pool4("p", build.NodeAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Bogus"}}})),
			reason: `invalid nodeAffinity: "Bogus" is not a valid label selector operator`,
		},
		{name: "namespaceName includes the namespace", pool: pool4("p", build.NamespaceName("app"))},
		{name: "namespaceName excludes the namespace", pool: pool4("p", build.NamespaceName("other")), reason: `namespaceName does not include "app"`},
		{name: "namespaceName wins over namespaceAffinity", pool: pool4("p", build.NamespaceName("app"), build.NamespaceAffinity(build.Selector("team", "red")))},
		{name: "namespaceAffinity matches", pool: pool4("p", build.NamespaceAffinity(build.Selector("team", "blue")))},
		{name: "namespaceAffinity does not match", pool: pool4("p", build.NamespaceAffinity(build.Selector("team", "red"))), reason: `namespaceAffinity "team=red" does not match the labels of namespace "app"`},
		{name: "podAffinity matches", pool: pool4("p", build.PodAffinity(build.Selector("app", "web")))},
		{name: "podAffinity does not match", pool: pool4("p", build.PodAffinity(build.Selector("app", "db"))), reason: `podAffinity "app=db" does not match the labels of pod "app/web-0"`},
		{
			name: "auto pool matches the top controller",
			pool: pool4("auto4-web-eth0-abcde", build.Label(v2beta1.LabelOwnerApplicationUID, "x"), build.PodAffinity(build.AutoPoolAffinity("Deployment", "app", "web"))),
		},
		{
			name:   "auto pool of another application",
			pool:   pool4("auto4-db-eth0-abcde", build.Label(v2beta1.LabelOwnerApplicationUID, "x"), build.PodAffinity(build.AutoPoolAffinity("Deployment", "app", "db"))),
			reason: "podAffinity of auto-created IPPool does not match Deployment app/web",
		},
		{name: "multusName includes the default network", pool: pool4("p", build.MultusName("kube-system/ipvlan-eth0"))},
		{name: "multusName without namespace is in the install namespace", pool: pool4("p", build.MultusName("ipvlan-eth0"))},
		{name: "multusName excludes the default network", pool: pool4("p", build.MultusName("kube-system/ipvlan-eth1")), reason: `multusName does not include "kube-system/ipvlan-eth0"`},
		{
			name:   "multusName and the cluster default network",
			pool:   pool4("p", build.MultusName("kube-system/ipvlan-eth0")),
			anno:   map[string]string{},
			reason: "",
		},
		{name: "multusName of net1 from the pod namespace", ifName: "net1", pool: pool4("p", build.MultusName("app/macvlan-a"))},
		{name: "multusName of net1 in another namespace", ifName: "net1", pool: pool4("p", build.MultusName("macvlan-a")), reason: `multusName does not include "app/macvlan-a"`},
		{name: "multusName of a requested interface name", ifName: "eth9", pool: pool4("p", build.MultusName("kube-system/macvlan-b"))},
		{name: "multusName of an interface without NAD", ifName: "net7", pool: pool4("p", build.MultusName("kube-system/macvlan-b")), reason: "multusName is set but no NetworkAttachmentDefinition is known for net7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := filterRequest()
			if tc.ifName != "" {
				req.IfName = tc.ifName
			}
			if tc.anno != nil {
				req.PodAnnotations = tc.anno
			}
			kept, err := ipam.Filter(req, cfg, 4, []*v2beta1.SpiderIPPool{tc.pool})
			if tc.reason == "" {
				if err != nil || len(kept) != 1 {
					t.Fatalf("pool refused: %v", err)
				}
				return
			}
			var fe *ipam.FilterError
			if !errors.As(err, &fe) || !errors.Is(err, ipam.ErrNoCandidatePool) {
				t.Fatalf("got %v, want a *FilterError", err)
			}
			if len(fe.Refusals) != 1 || fe.Refusals[0].Reason != tc.reason {
				t.Fatalf("refusals %+v, want reason %q", fe.Refusals, tc.reason)
			}
		})
	}
}

func TestFilterOrderAndMessage(t *testing.T) {
	cfg := &ipam.Config{EnableIPv4: true, InstallNamespace: "kube-system"}
	req := filterRequest()
	req.PodAnnotations = map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth1"}
	pools := []*v2beta1.SpiderIPPool{
		pool4("a", build.NodeName("master")),
		pool4("b", build.NodeName("worker"), build.MultusName("kube-system/ipvlan-eth0")),
		// Refused by the first failing check only, in the order of docs/design/behaviour.md#pool-filters.
		pool4("c", build.Disable(), build.NodeName("master")),
		pool4("d"),
	}
	kept, err := ipam.Filter(req, cfg, 4, pools)
	if err != nil || len(kept) != 1 || kept[0].Name != "d" {
		t.Fatalf("kept %v, err %v", poolNames(kept), err)
	}
	_, err = ipam.Filter(req, cfg, 4, pools[:3])
	want := `no IPPool available, all IPv4 IPPools [a b c] of eth0 filtered out: a: nodeName does not include "worker"; ` +
		`b: multusName does not include "kube-system/ipvlan-eth1"; c: disabled`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestFilterInvalidMultusAnnotation(t *testing.T) {
	req := filterRequest()
	req.IfName = "net1"
	req.PodAnnotations = map[string]string{v2beta1.AnnoMultusNetworks: "a/b/c"}
	pools := []*v2beta1.SpiderIPPool{pool4("plain"), pool4("m", build.MultusName("x"))}
	_, err := ipam.Filter(req, &ipam.Config{EnableIPv4: true}, 4, pools)
	if !errors.Is(err, ipam.ErrInvalidAnnotation) {
		t.Fatalf("got %v, want ErrInvalidAnnotation", err)
	}
	// Without a multusName pool the annotation is not consulted.
	if _, err := ipam.Filter(req, &ipam.Config{EnableIPv4: true}, 4, pools[:1]); err != nil {
		t.Fatal(err)
	}
}

// match_master_subnet (docs/design/behaviour.md#pool-filters): a pool serves the interface only when its subnet holds
// an address of the interface's master (an SR-IOV VF's PF) on the host.
func TestFilterMatchMasterSubnet(t *testing.T) {
	cfg := &ipam.Config{EnableIPv4: true, EnableIPv6: true, InstallNamespace: "kube-system"}
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	pf := &ipam.Master{Name: "ens1f0", Addrs: prefixes("10.20.0.5/24", "fd20::5/64", "fe80::1/64")}
	v6pool := func(name, subnet, ips string) *v2beta1.SpiderIPPool {
		return build.Pool(name, subnet, build.IPs(ips))
	}
	tests := []struct {
		name    string
		master  *ipam.Master
		version int
		pools   []*v2beta1.SpiderIPPool
		kept    []string
		wantErr string
	}{
		{
			name: "no master: no rule", version: 4,
			pools: []*v2beta1.SpiderIPPool{pool4("far")}, kept: []string{"far"},
		},
		{
			name: "the pool on the PF's network is kept, the other dropped", master: pf, version: 4,
			pools: []*v2beta1.SpiderIPPool{
				pool4("far"),
				build.Pool("near", "10.20.0.0/24", build.IPs("10.20.0.10-10.20.0.20")),
				build.Pool("wide", "10.0.0.0/8", build.IPs("10.30.0.10")),
			},
			kept: []string{"near", "wide"},
		},
		{
			name: "the subnet decides, not the pool's IPs", master: pf, version: 4,
			pools: []*v2beta1.SpiderIPPool{build.Pool("near", "10.20.0.0/16", build.IPs("10.20.9.1"))},
			kept:  []string{"near"},
		},
		{
			name: "IPv6 pool against the PF's IPv6 address", master: pf, version: 6,
			pools: []*v2beta1.SpiderIPPool{v6pool("v6-far", "fd30::/64", "fd30::10"), v6pool("v6-near", "fd20::/64", "fd20::10")},
			kept:  []string{"v6-near"},
		},
		{
			name: "every pool elsewhere: the error names the master and its addresses", master: pf, version: 4,
			pools: []*v2beta1.SpiderIPPool{pool4("far"), build.Pool("other", "10.21.0.0/24", build.IPs("10.21.0.9"))},
			wantErr: "no IPPool available, all IPv4 IPPools [far other] of eth0 filtered out: " +
				"far: subnet 10.6.0.0/16 holds no address of master ens1f0 (10.20.0.5/24, fd20::5/64, fe80::1/64) (match_master_subnet); " +
				"other: subnet 10.21.0.0/24 holds no address of master ens1f0 (10.20.0.5/24, fd20::5/64, fe80::1/64) (match_master_subnet)",
		},
		{
			name: "a master without addresses serves no pool", master: &ipam.Master{Name: "ens1f1"}, version: 4,
			pools:   []*v2beta1.SpiderIPPool{pool4("p")},
			wantErr: "p: subnet 10.6.0.0/16 holds no address of master ens1f1, which has none (match_master_subnet)",
		},
		{
			name: "earlier rules refuse first", master: pf, version: 4,
			pools:   []*v2beta1.SpiderIPPool{build.Pool("near", "10.20.0.0/24", build.IPs("10.20.0.10"), build.Disable())},
			wantErr: "near: disabled",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := filterRequest()
			req.Master = tc.master
			kept, err := ipam.Filter(req, cfg, tc.version, tc.pools)
			if tc.wantErr != "" {
				if !errors.Is(err, ipam.ErrNoCandidatePool) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want ErrNoCandidatePool containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.kept, poolNames(kept)); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}
