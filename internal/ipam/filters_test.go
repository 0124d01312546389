package ipam_test

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
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

func pool4(name string) *ipamtest.PoolBuilder {
	return ipamtest.MakeIPPool(name).Subnet("10.6.0.0/16").IPs("10.6.0.10-10.6.0.20")
}

func autoPoolAffinity(kind, ns, name string) *metav1.LabelSelector {
	return ipamtest.Selector(
		v2beta1.AutoPoolPodAffinityAppAPIGrp, "apps",
		v2beta1.AutoPoolPodAffinityAppAPIVer, "v1",
		v2beta1.AutoPoolPodAffinityAppKind, kind,
		v2beta1.AutoPoolPodAffinityAppNS, ns,
		v2beta1.AutoPoolPodAffinityAppName, name,
	)
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
		{name: "plain pool", pool: pool4("p").Obj()},
		{name: "terminating", pool: pool4("p").Terminating().Obj(), reason: "terminating"},
		{name: "disabled", pool: pool4("p").Disable().Obj(), reason: "disabled"},
		{name: "ipVersion mismatch", pool: ipamtest.MakeIPPool("p").Subnet("fd00::/64").IPs("fd00::1").Obj(), reason: "ipVersion is 6, not 4"},
		{name: "nodeName includes the node", pool: pool4("p").NodeName("master", "worker").Obj()},
		{name: "nodeName excludes the node", pool: pool4("p").NodeName("master").Obj(), reason: `nodeName does not include "worker"`},
		{name: "nodeName wins over nodeAffinity", pool: pool4("p").NodeName("worker").NodeAffinity(ipamtest.Selector("zone", "b")).Obj()},
		{name: "nodeAffinity matches", pool: pool4("p").NodeAffinity(ipamtest.Selector("zone", "a")).Obj()},
		{name: "nodeAffinity does not match", pool: pool4("p").NodeAffinity(ipamtest.Selector("zone", "b")).Obj(), reason: `nodeAffinity "zone=b" does not match the labels of node "worker"`},
		{
			name:   "invalid nodeAffinity",
			pool:   pool4("p").NodeAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Bogus"}}}).Obj(),
			reason: `invalid nodeAffinity: "Bogus" is not a valid label selector operator`,
		},
		{name: "namespaceName includes the namespace", pool: pool4("p").NamespaceName("app").Obj()},
		{name: "namespaceName excludes the namespace", pool: pool4("p").NamespaceName("other").Obj(), reason: `namespaceName does not include "app"`},
		{name: "namespaceName wins over namespaceAffinity", pool: pool4("p").NamespaceName("app").NamespaceAffinity(ipamtest.Selector("team", "red")).Obj()},
		{name: "namespaceAffinity matches", pool: pool4("p").NamespaceAffinity(ipamtest.Selector("team", "blue")).Obj()},
		{name: "namespaceAffinity does not match", pool: pool4("p").NamespaceAffinity(ipamtest.Selector("team", "red")).Obj(), reason: `namespaceAffinity "team=red" does not match the labels of namespace "app"`},
		{name: "podAffinity matches", pool: pool4("p").PodAffinity(ipamtest.Selector("app", "web")).Obj()},
		{name: "podAffinity does not match", pool: pool4("p").PodAffinity(ipamtest.Selector("app", "db")).Obj(), reason: `podAffinity "app=db" does not match the labels of pod "app/web-0"`},
		{
			name: "auto pool matches the top controller",
			pool: pool4("auto4-web-eth0-abcde").Label(v2beta1.LabelOwnerApplicationUID, "x").PodAffinity(autoPoolAffinity("Deployment", "app", "web")).Obj(),
		},
		{
			name:   "auto pool of another application",
			pool:   pool4("auto4-db-eth0-abcde").Label(v2beta1.LabelOwnerApplicationUID, "x").PodAffinity(autoPoolAffinity("Deployment", "app", "db")).Obj(),
			reason: "podAffinity of auto-created IPPool does not match Deployment app/web",
		},
		{name: "multusName includes the default network", pool: pool4("p").MultusName("kube-system/ipvlan-eth0").Obj()},
		{name: "multusName without namespace is in the install namespace", pool: pool4("p").MultusName("ipvlan-eth0").Obj()},
		{name: "multusName excludes the default network", pool: pool4("p").MultusName("kube-system/ipvlan-eth1").Obj(), reason: `multusName does not include "kube-system/ipvlan-eth0"`},
		{
			name:   "multusName and the cluster default network",
			pool:   pool4("p").MultusName("kube-system/ipvlan-eth0").Obj(),
			anno:   map[string]string{},
			reason: "",
		},
		{name: "multusName of net1 from the pod namespace", ifName: "net1", pool: pool4("p").MultusName("app/macvlan-a").Obj()},
		{name: "multusName of net1 in another namespace", ifName: "net1", pool: pool4("p").MultusName("macvlan-a").Obj(), reason: `multusName does not include "app/macvlan-a"`},
		{name: "multusName of a requested interface name", ifName: "eth9", pool: pool4("p").MultusName("kube-system/macvlan-b").Obj()},
		{name: "multusName of an interface without NAD", ifName: "net7", pool: pool4("p").MultusName("kube-system/macvlan-b").Obj(), reason: "multusName is set but no NetworkAttachmentDefinition is known for net7"},
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
		pool4("a").NodeName("master").Obj(),
		pool4("b").NodeName("worker").MultusName("kube-system/ipvlan-eth0").Obj(),
		// Refused by the first failing check only, in SPEC order.
		pool4("c").Disable().NodeName("master").Obj(),
		pool4("d").Obj(),
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
	pools := []*v2beta1.SpiderIPPool{pool4("plain").Obj(), pool4("m").MultusName("x").Obj()}
	_, err := ipam.Filter(req, &ipam.Config{EnableIPv4: true}, 4, pools)
	if !errors.Is(err, ipam.ErrInvalidAnnotation) {
		t.Fatalf("got %v, want ErrInvalidAnnotation", err)
	}
	// Without a multusName pool the annotation is not consulted.
	if _, err := ipam.Filter(req, &ipam.Config{EnableIPv4: true}, 4, pools[:1]); err != nil {
		t.Fatal(err)
	}
}
