package integration

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

const defaultNetAnno = "v1.multus-cni.io/default-network"

// The public-cloud guide's topology (docs/guides/public-cloud.md) through the real plugin binary and agents:
// every (node, NIC) pair draws from exactly one of the four default pools.
func TestPublicCloudTopologyThroughPlugin(t *testing.T) {
	objs := loadManifests(t, "testdata/public-cloud.yaml")
	t.Cleanup(func() { deleteAll(context.Background(), t, env.Client, objs) })
	if err := applyStrict(testContext(t), env.Client, objs); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"master", "worker", "other"} {
		makeNode(t, n, nil)
	}
	// Helm: multus.multusCNI.defaultCniCRName=ipvlan-eth0 in the install namespace kube-system.
	withDefaultNAD := func(c *agent.Config) { c.ClusterDefaultNAD = "ipvlan-eth0" }
	agents := map[string]*runningAgent{
		"master": startAgent(t, "master", withDefaultNAD),
		"worker": startAgent(t, "worker", withDefaultNAD),
		"other":  startAgent(t, "other", withDefaultNAD),
	}

	cases := []struct {
		pod, node, nad string
		wantPool       string
		wantSubnet     string
		wantGateway    string
	}{
		{"test-app-1-master", "master", "kube-system/ipvlan-eth0", "master-172", "172.31.192.0/20", "172.31.207.253"},
		{"test-app-1-worker", "worker", "kube-system/ipvlan-eth0", "worker-172", "172.31.192.0/20", "172.31.207.253"},
		{"test-app-2-master", "master", "kube-system/ipvlan-eth1", "master-192", "192.168.0.0/24", "192.168.0.253"},
		{"test-app-2-worker", "worker", "kube-system/ipvlan-eth1", "worker-192", "192.168.0.0/24", "192.168.0.253"},
		// No annotation: Multus uses the cluster default network, ipvlan-eth0.
		{"plain-master", "master", "", "master-172", "172.31.192.0/20", "172.31.207.253"},
	}
	for _, tc := range cases {
		t.Run(tc.pod, func(t *testing.T) {
			var anno map[string]string
			if tc.nad != "" {
				anno = map[string]string{defaultNetAnno: tc.nad}
			}
			pod := makePod(t, "default", tc.pod, tc.node, anno, nil)
			res, err := cniInvocation{ifName: "eth0", pod: pod, socket: agents[tc.node].socket}.add(t)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if len(res.IPs) != 1 {
				t.Fatalf("got %d IPs, want 1: %+v", len(res.IPs), res)
			}
			got := res.IPs[0]
			subnet := netip.MustParsePrefix(tc.wantSubnet)
			addr, _ := netip.AddrFromSlice(got.Address.IP.To4())
			ones, _ := got.Address.Mask.Size()
			if !subnet.Contains(addr) || ones != subnet.Bits() {
				t.Errorf("address %s not in %s with its prefix length", got.Address.String(), subnet)
			}
			if got.Gateway.String() != tc.wantGateway {
				t.Errorf("gateway = %v, want %s", got.Gateway, tc.wantGateway)
			}
			if len(res.Routes) == 0 || res.Routes[0].Dst.String() != "0.0.0.0/0" {
				t.Errorf("routes = %v, want a default route via the gateway", res.Routes)
			}
			recs := poolRecords(t, tc.wantPool)
			if recs[addr.String()] != string(pod.UID) {
				t.Errorf("pool %s records = %v, want %s held by %s", tc.wantPool, recs, addr, pod.UID)
			}
			var ep v2beta1.SpiderEndpoint
			if err := env.Client.Get(testContext(t), types.NamespacedName{Namespace: "default", Name: tc.pod}, &ep); err != nil {
				t.Fatalf("SpiderEndpoint: %v", err)
			}
			if ep.Status.Current.UID != string(pod.UID) || ep.Status.Current.Node != tc.node || len(ep.Status.Current.IPs) != 1 ||
				deref(ep.Status.Current.IPs[0].IPv4Pool) != tc.wantPool || deref(ep.Status.Current.IPs[0].IPv4) != got.Address.String() {
				t.Errorf("SpiderEndpoint status = %+v", ep.Status)
			}
			// DEL twice: both succeed, and the record and the endpoint are gone after the first.
			for i := range 2 {
				if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: pod, socket: agents[tc.node].socket}).run(t); err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
			}
			if recs := poolRecords(t, tc.wantPool); len(recs) != 0 {
				t.Errorf("records left after DEL: %v", recs)
			}
		})
	}

	t.Run("node without a matching pool", func(t *testing.T) {
		pod := makePod(t, "default", "stray", "other", map[string]string{defaultNetAnno: "kube-system/ipvlan-eth0"}, nil)
		_, err := cniInvocation{ifName: "eth0", pod: pod, socket: agents["other"].socket}.add(t)
		if err == nil {
			t.Fatal("ADD succeeded on a node no pool serves")
		}
		msg := err.Error()
		for _, pool := range []string{"master-172", "master-192", "worker-172", "worker-192"} {
			if !strings.Contains(msg, pool) {
				t.Errorf("error does not name pool %s: %s", pool, msg)
			}
		}
		if !hasAll(msg, "no IPPool available", "nodeName") {
			t.Errorf("error does not say why the pools were refused: %s", msg)
		}
	})

	t.Run("exhausted pool", func(t *testing.T) {
		var pods []*corev1.Pod
		for i := range 5 {
			pod := makePod(t, "default", fmt.Sprintf("fill-%d", i), "master", map[string]string{defaultNetAnno: "kube-system/ipvlan-eth0"}, nil)
			if _, err := (cniInvocation{ifName: "eth0", pod: pod, socket: agents["master"].socket}).add(t); err != nil {
				t.Fatalf("ADD %d: %v", i, err)
			}
			pods = append(pods, pod)
		}
		late := makePod(t, "default", "fill-late", "master", map[string]string{defaultNetAnno: "kube-system/ipvlan-eth0"}, nil)
		_, err := cniInvocation{ifName: "eth0", pod: late, socket: agents["master"].socket}.add(t)
		if err == nil || !hasAll(err.Error(), "master-172", "all IP addresses used out") {
			t.Errorf("ADD to the full pool: %v, want an error naming master-172 and 'all IP addresses used out'", err)
		}
		if n := len(poolRecords(t, "master-172")); n != 5 {
			t.Errorf("master-172 holds %d records, want 5", n)
		}
		for _, pod := range pods {
			if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: pod, socket: agents["master"].socket}).run(t); err != nil {
				t.Errorf("DEL: %v", err)
			}
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Every CNI spec version gets a result that libcni's own types parse, with the same address.
func TestPluginResultEveryCNIVersion(t *testing.T) {
	createPool(t, "versions", "10.110.0.0/24", "10.110.0.10-10.110.0.50")
	makeNode(t, "vnode", nil)
	a := startAgent(t, "vnode", nil)
	for _, version := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			pod := makePod(t, "default", "ver-"+strings.ReplaceAll(version, ".", ""), "vnode", nil, nil)
			inv := cniInvocation{command: "ADD", cniVersion: version, ifName: "eth0", pod: pod, socket: a.socket}
			out, err := inv.run(t)
			if err != nil {
				t.Fatal(err)
			}
			var addr string
			switch version {
			case "0.3.1", "0.4.0":
				r, err := types040.NewResult(out)
				if err != nil {
					t.Fatalf("parse %s result: %v", version, err)
				}
				res := r.(*types040.Result)
				if res.CNIVersion != version || len(res.IPs) != 1 {
					t.Fatalf("result %+v", res)
				}
				addr = res.IPs[0].Address.String()
			default:
				r, err := types100.NewResult(out)
				if err != nil {
					t.Fatalf("parse %s result: %v", version, err)
				}
				res := r.(*types100.Result)
				if res.CNIVersion != version || len(res.IPs) != 1 {
					t.Fatalf("result %+v", res)
				}
				addr = res.IPs[0].Address.String()
			}
			if p, err := netip.ParsePrefix(addr); err != nil || !netip.MustParsePrefix("10.110.0.0/24").Contains(p.Addr()) || p.Bits() != 24 {
				t.Errorf("address %q not in 10.110.0.0/24 with /24", addr)
			}
			inv.command = "DEL"
			if _, err := inv.run(t); err != nil {
				t.Errorf("DEL: %v", err)
			}
		})
	}
}

// A retried ADD after an agent restart returns the address the pod already holds.
func TestIdempotentAddAfterAgentRestart(t *testing.T) {
	createPool(t, "restart-agent", "10.111.0.0/24", "10.111.0.10-10.111.0.20")
	makeNode(t, "rnode", nil)
	a := startAgent(t, "rnode", nil)
	pod := makePod(t, "default", "restarted", "rnode", nil, nil)
	first, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket}.add(t)
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	b := startAgent(t, "rnode", nil)
	second, err := cniInvocation{ifName: "eth0", pod: pod, socket: b.socket}.add(t)
	if err != nil {
		t.Fatal(err)
	}
	if addresses(first)[0] != addresses(second)[0] {
		t.Errorf("after restart got %v, before %v", addresses(second), addresses(first))
	}
	if recs := poolRecords(t, "restart-agent"); len(recs) != 1 {
		t.Errorf("records = %v, want exactly one", recs)
	}
}

// Candidate precedence of docs/design/behaviour.md#pool-selection, each rule hiding the ones below it.
func TestAnnotationPrecedence(t *testing.T) {
	createPool(t, "prec-cluster-default", "10.120.0.0/24", "10.120.0.10-10.120.0.20") // rule 6 (default: true)
	createPool(t, "prec-cni-default", "10.121.0.0/24", "10.121.0.10-10.121.0.20")     // rule 5
	createPool(t, "prec-namespace", "10.122.0.0/24", "10.122.0.10-10.122.0.20")       // rule 4
	createPool(t, "prec-pod-ippool", "10.123.0.0/24", "10.123.0.10-10.123.0.20")      // rule 3
	createPool(t, "prec-pod-ippools", "10.124.0.0/24", "10.124.0.10-10.124.0.20")     // rule 2
	makeNode(t, "pnode", nil)
	a := startAgent(t, "pnode", nil)
	makeNamespace(t, "prec-annotated", map[string]string{v2beta1.AnnoNSDefaultV4Pool: `["prec-namespace"]`})
	cniDefault := map[string]any{"default_ipv4_ippool": []string{"prec-cni-default"}}

	cases := []struct {
		name, ns   string
		anno       map[string]string
		ipam       map[string]any
		wantSubnet string
	}{
		{"ippools beats ippool", "prec-annotated", map[string]string{
			v2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["prec-pod-ippools"]}]`,
			v2beta1.AnnoPodIPPool:  `{"ipv4":["prec-pod-ippool"]}`}, cniDefault, "10.124.0.0/24"},
		{"ippool beats namespace", "prec-annotated", map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["prec-pod-ippool"]}`}, cniDefault, "10.123.0.0/24"},
		{"namespace beats CNI default", "prec-annotated", nil, cniDefault, "10.122.0.0/24"},
		{"CNI default beats cluster default", "default", nil, cniDefault, "10.121.0.0/24"},
		{"cluster default last", "default", nil, nil, "10.120.0.0/24"},
	}
	// Only prec-cluster-default is a default pool of these: createPool makes every pool default,
	// so the others are switched off as cluster defaults here.
	for _, name := range []string{"prec-cni-default", "prec-namespace", "prec-pod-ippool", "prec-pod-ippools"} {
		p := getPool(t, name)
		p.Spec.Default = new(false)
		if err := env.Client.Update(testContext(t), p); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := makePod(t, tc.ns, fmt.Sprintf("prec-%d", i), "pnode", tc.anno, nil)
			res, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket, ipam: tc.ipam}.add(t)
			if err != nil {
				t.Fatal(err)
			}
			if got := addresses(res)[0]; !netip.MustParsePrefix(tc.wantSubnet).Contains(netip.MustParseAddr(got)) {
				t.Errorf("got %s, want an address of %s", got, tc.wantSubnet)
			}
		})
	}
}

// Dual stack: one IPv4 and one IPv6 address per NIC, from the default pools of each family.
func TestDualStack(t *testing.T) {
	createPool(t, "ds-v4", "10.130.0.0/24", "10.130.0.10-10.130.0.20")
	v6 := &v2beta1.SpiderIPPool{}
	v6.Name = "ds-v6"
	v6.Spec = v2beta1.IPPoolSpec{IPVersion: new(int64(6)), Subnet: "fd00:130::/64", IPs: []string{"fd00:130::10-fd00:130::20"}, Gateway: new("fd00:130::1"), Default: new(true)}
	if err := env.Client.Create(testContext(t), v6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), v6) })
	makeNode(t, "dsnode", nil)
	a := startAgent(t, "dsnode", func(c *agent.Config) { c.EnableIPv6 = true })
	pod := makePod(t, "default", "dual", "dsnode", nil, nil)
	res, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket}.add(t)
	if err != nil {
		t.Fatal(err)
	}
	got := addresses(res)
	if len(got) != 2 || !netip.MustParseAddr(got[0]).Is4() || !netip.MustParseAddr(got[1]).Is6() {
		t.Fatalf("addresses = %v, want one IPv4 then one IPv6", got)
	}
	if !netip.MustParsePrefix("fd00:130::/64").Contains(netip.MustParseAddr(got[1])) {
		t.Errorf("IPv6 %s not from ds-v6", got[1])
	}
	if recs := poolRecords(t, "ds-v6"); recs[got[1]] != string(pod.UID) {
		t.Errorf("ds-v6 records %v", recs)
	}
}

// Ten agents serve 1000 pods from one pool of exactly 1000 IPs through their unix-socket API: every
// pod gets an address, none twice, the counts match the records, and after every pod is deleted
// no record is left.
func TestTenAgentsThousandPods(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1000 pods")
	}
	const nodes, pods = 10, 1000
	createPool(t, "agents-1000", "10.140.0.0/16", "10.140.0.1-10.140.3.232")
	var agents []*runningAgent
	for i := range nodes {
		name := fmt.Sprintf("cnode-%d", i)
		makeNode(t, name, nil)
		agents = append(agents, startAgent(t, name, nil))
	}
	podObjs := make([]*corev1.Pod, pods)
	testutil.Parallel(pods, 32, func(i int) {
		p, err := createPod(t, "default", fmt.Sprintf("c-%04d", i), fmt.Sprintf("cnode-%d", i%nodes), nil, nil)
		if err != nil {
			t.Error(err)
			return
		}
		podObjs[i] = p
	})
	if t.Failed() {
		t.FailNow()
	}

	var (
		mu   sync.Mutex
		got  = map[string]string{}
		errs []error
	)
	t0 := time.Now()
	testutil.Parallel(pods, 50, func(i int) {
		p := podObjs[i]
		c := agentclient.New(agents[i%nodes].socket)
		resp, err := c.Allocate(context.Background(), &v1.IpamAddArgs{
			ContainerID: "ctr-" + string(p.UID), IfName: "eth0", NetNamespace: "/var/run/netns/x",
			PodNamespace: p.Namespace, PodName: p.Name, PodUID: string(p.UID),
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", p.Name, err))
			return
		}
		got[string(p.UID)] = strings.Split(resp.IPs[0].Address, "/")[0]
	})
	t.Logf("1000 ADDs through 10 agents in %v", time.Since(t0).Round(time.Millisecond))
	for i, err := range errs {
		if i == 5 {
			break
		}
		t.Error(err)
	}
	if len(got) != pods {
		t.Fatalf("%d of %d pods got an address", len(got), pods)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a] {
			t.Errorf("%s given twice", a)
		}
		seen[a] = true
	}
	recs := poolRecords(t, "agents-1000")
	if len(recs) != pods {
		t.Errorf("pool holds %d records, want %d", len(recs), pods)
	}
	for uid, a := range got {
		if recs[a] != uid {
			t.Errorf("record of %s = %q, want %s", a, recs[a], uid)
		}
	}
	pool := getPool(t, "agents-1000")
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{pool}); err != nil {
		t.Error(err)
	}

	// Delete every pod, as the kubelet does: DEL through the agent, then the pod object goes.
	testutil.Parallel(pods, 50, func(i int) {
		p := podObjs[i]
		c := agentclient.New(agents[i%nodes].socket)
		err := c.Release(context.Background(), &v1.IpamDelArgs{
			ContainerID: "ctr-" + string(p.UID), IfName: "eth0", PodNamespace: p.Namespace, PodName: p.Name, PodUID: string(p.UID),
		})
		if err != nil && !errors.Is(err, &v1.Error{Code: v1.CodeNotFound}) {
			t.Errorf("release %s: %v", p.Name, err)
		}
	})
	if recs := poolRecords(t, "agents-1000"); len(recs) != 0 {
		t.Errorf("%d records left after every pod was deleted", len(recs))
	}
	var eps v2beta1.SpiderEndpointList
	if err := env.Client.List(testContext(t), &eps); err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps.Items {
		if strings.HasPrefix(ep.Name, "c-") {
			t.Errorf("SpiderEndpoint %s left after DEL", ep.Name)
		}
	}
}
