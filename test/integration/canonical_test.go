package integration

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// Upstream Spiderpool accepts any valid CIDR in spec.subnet: its multi-interface example writes
// 10.6.0.1/16 and its SpiderSubnet example 2002::ac0f:0/64. These tests apply such objects with our
// webhooks running (stored canonical) and without them (stored as written, read masked).

// TestCanonicalCIDRsThroughWebhook: the mutating webhooks store the canonical network form, and an
// update re-sending the create's spelling is not a change of the immutable subnet.
func TestCanonicalCIDRsThroughWebhook(t *testing.T) {
	w := startWebhooks(t)
	ctx := testContext(t)
	c := env.Client

	pool := rawPool("canonical-v4", "10.6.0.1/16", build.IPs("10.6.168.101-10.6.168.110"), build.Gateway("10.6.0.1"),
		build.Route("10.7.1.0/16", "10.6.0.1"))
	if err := c.Create(ctx, pool); err != nil {
		t.Fatalf("create pool of 10.6.0.1/16: %v", err)
	}
	w.track(pool)
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "canonical-v6"},
		Spec:       v2beta1.SubnetSpec{Subnet: "2002::ac0f:0/64", IPs: []string{"2002::ac0f:10-2002::ac0f:20"}, Gateway: ptr.To("2002::ac0f:1")},
	}
	if err := c.Create(ctx, subnet); err != nil {
		t.Fatalf("create SpiderSubnet of 2002::ac0f:0/64: %v", err)
	}
	w.track(subnet)

	storedPool, storedSubnet := getPool(t, pool.Name), getStoredSubnet(t, subnet.Name)
	got := map[string]string{
		"SpiderIPPool spec.subnet":        storedPool.Spec.Subnet,
		"SpiderIPPool spec.ipVersion":     versionText(storedPool.Spec.IPVersion),
		"SpiderIPPool spec.routes[0].dst": storedPool.Spec.Routes[0].Dst,
		"SpiderIPPool ippool-cidr label":  storedPool.Labels[v2beta1.LabelIPPoolCIDR],
		"SpiderSubnet spec.subnet":        storedSubnet.Spec.Subnet,
		"SpiderSubnet spec.ipVersion":     versionText(storedSubnet.Spec.IPVersion),
		"SpiderSubnet subnet-cidr label":  storedSubnet.Labels[v2beta1.LabelSubnetCIDR],
	}
	want := map[string]string{
		"SpiderIPPool spec.subnet":        "10.6.0.0/16",
		"SpiderIPPool spec.ipVersion":     "4",
		"SpiderIPPool spec.routes[0].dst": "10.7.0.0/16",
		"SpiderIPPool ippool-cidr label":  "10-6-0-0-16",
		"SpiderSubnet spec.subnet":        "2002::/64",
		"SpiderSubnet spec.ipVersion":     "6",
		"SpiderSubnet subnet-cidr label":  "2002---64",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored objects (-want +got):\n%s", diff)
	}

	// kubectl apply of the same manifest sends the original spelling again; the webhook turns it
	// into the stored canonical form before the CEL rule compares it with the old object.
	t.Run("update with the original spelling", func(t *testing.T) {
		p := getPool(t, pool.Name)
		p.Spec.Subnet = "10.6.0.1/16"
		p.Spec.IPs = append(p.Spec.IPs, "10.6.168.120")
		if err := c.Update(ctx, p); err != nil {
			t.Fatalf("pool update re-sending 10.6.0.1/16: %v", err)
		}
		if s := getPool(t, pool.Name).Spec.Subnet; s != "10.6.0.0/16" {
			t.Errorf("pool subnet after update = %q, want 10.6.0.0/16", s)
		}
		s := getStoredSubnet(t, subnet.Name)
		s.Spec.Subnet = "2002::ac0f:0/64"
		s.Spec.IPs = append(s.Spec.IPs, "2002::ac0f:30")
		if err := c.Update(ctx, s); err != nil {
			t.Fatalf("SpiderSubnet update re-sending 2002::ac0f:0/64: %v", err)
		}
		if s := getStoredSubnet(t, subnet.Name).Spec.Subnet; s != "2002::/64" {
			t.Errorf("SpiderSubnet subnet after update = %q, want 2002::/64", s)
		}
	})
	t.Run("another network is refused", func(t *testing.T) {
		p := getPool(t, pool.Name)
		p.Spec.Subnet = "10.7.0.1/16"
		wantRejected(t, c.Update(ctx, p), "spec.subnet", "not changeable")
		s := getStoredSubnet(t, subnet.Name)
		s.Spec.Subnet = "2002:0:0:1::/64"
		wantRejected(t, c.Update(ctx, s), "spec.subnet", "not changeable")
	})
}

// TestCanonicalSubnetWithoutWebhookAllocates: a pool written while the webhook was down keeps its
// spelling "10.6.0.1/16"; the agent still serves it as the /16 it is, and the CEL immutability rule
// compares networks, not strings.
func TestCanonicalSubnetWithoutWebhookAllocates(t *testing.T) {
	ctx := testContext(t)
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "spelt-v4"},
		Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.1/16", IPs: []string{"10.6.168.101-10.6.168.110"}, Gateway: ptr.To("10.6.0.1"),
			Routes: []v2beta1.Route{{Dst: "10.7.1.0/16", Gw: "10.6.0.1"}}},
	}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatalf("create pool of 10.6.0.1/16 without webhook: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(testContext(t), pool) })
	if stored := getPool(t, pool.Name); stored.Spec.Subnet != "10.6.0.1/16" || stored.Spec.IPVersion != nil {
		t.Fatalf("stored subnet %q, ipVersion %v: a mutating webhook is running, the test needs none", stored.Spec.Subnet, stored.Spec.IPVersion)
	}

	makeNode(t, "spelt-node", nil)
	a := startAgent(t, "spelt-node", nil)
	pod := makePod(t, "default", "spelt", "spelt-node", map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["spelt-v4"]}`}, nil)
	inv := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket}
	res, err := inv.add(t)
	if err != nil {
		t.Fatalf("ADD from a pool of 10.6.0.1/16: %v", err)
	}
	if len(res.IPs) != 1 {
		t.Fatalf("result has %d IPs, want 1: %+v", len(res.IPs), res)
	}
	addr, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	ones, _ := res.IPs[0].Address.Mask.Size()
	var routes []string
	for _, r := range res.Routes {
		routes = append(routes, r.Dst.String()+" via "+r.GW.String())
	}
	got := map[string]any{
		"in the pool's ips": netip.MustParseAddr("10.6.168.101").Compare(addr) <= 0 && addr.Compare(netip.MustParseAddr("10.6.168.110")) <= 0,
		"prefix length":     ones,
		"gateway":           ipString(res.IPs[0].Gateway),
		"routes":            routes,
	}
	want := map[string]any{
		"in the pool's ips": true,
		"prefix length":     16,
		"gateway":           "10.6.0.1",
		"routes":            []string{"0.0.0.0/0 via 10.6.0.1", "10.7.0.0/16 via 10.6.0.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ADD result for address %s (-want +got):\n%s", addr, diff)
	}
	if recs := poolRecords(t, pool.Name); recs[addr.String()] != string(pod.UID) {
		t.Errorf("pool records %v, want %s held by %s", recs, addr, pod.UID)
	}
	inv.command, inv.cniVersion = "DEL", "1.1.0"
	if _, err := inv.run(t); err != nil {
		t.Errorf("DEL: %v", err)
	}

	p := getPool(t, pool.Name)
	p.Spec.Subnet = "10.7.0.1/16"
	wantRejected(t, env.Client.Update(ctx, p), "spec.subnet", "not changeable")
	p = getPool(t, pool.Name)
	p.Spec.Subnet = "10.6.0.0/16" // what the webhook writes on the next update once it runs again
	if err := env.Client.Update(ctx, p); err != nil {
		t.Errorf("update respelling 10.6.0.1/16 as 10.6.0.0/16: %v", err)
	}
}

// TestCanonicalSubnetWithoutWebhookAdopts: a SpiderSubnet written as "2002::ac0f:0/64" past the
// webhook still controls and counts the pool of 2002::/64.
func TestCanonicalSubnetWithoutWebhookAdopts(t *testing.T) {
	ctx := testContext(t)
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "spelt-v6"},
		Spec:       v2beta1.SubnetSpec{Subnet: "2002::ac0f:0/64", IPs: []string{"2002::ac0f:10-2002::ac0f:20"}},
	}
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "spelt-v6-pool"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "2002::/64", IPs: []string{"2002::ac0f:10-2002::ac0f:12"}},
	}
	removeWhenDone(t, pool, subnet)
	for _, o := range []client.Object{subnet, pool} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	s := getStoredSubnet(t, subnet.Name)
	s.Spec.Subnet = "2003::/64"
	wantRejected(t, env.Client.Update(ctx, s), "spec.subnet", "not changeable")

	startSubnetController(t)
	waitSubnet(t, subnet.Name, func(s *v2beta1.SpiderSubnet) bool {
		return subnetShows(s, 17, 3, v2beta1.PoolIPPreAllocations{pool.Name: {IPs: []string{"2002::ac0f:10-2002::ac0f:12"}}})
	})
	if got := getPool(t, pool.Name); got.Labels[v2beta1.LabelOwnerSpiderSubnet] != subnet.Name {
		t.Errorf("pool of 2002::/64 not adopted by the SpiderSubnet of 2002::ac0f:0/64: labels %v", got.Labels)
	}
}

func getStoredSubnet(t *testing.T, name string) *v2beta1.SpiderSubnet {
	t.Helper()
	var s v2beta1.SpiderSubnet
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: name}, &s); err != nil {
		t.Fatalf("get SpiderSubnet %s: %v", name, err)
	}
	return &s
}

func versionText(v *int64) string {
	if v == nil {
		return "<nil>"
	}
	return strconv.FormatInt(*v, 10)
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
