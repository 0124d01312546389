package v2beta1

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// wantErr is one expected error: its type, its field path and, optionally, a fragment its message
// must contain. Tests list them in the order the validator reports them, so the order is part of
// the contract (and stays deterministic).
type wantErr struct {
	typ    field.ErrorType
	field  string
	detail string
}

func checkErrs(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := got[i], want[i]
		if g.Type != w.typ || g.Field != w.field || !strings.Contains(g.Error(), w.detail) {
			ok = false
		}
	}
	if ok {
		return
	}
	var gs, ws []string
	for _, g := range got {
		gs = append(gs, fmt.Sprintf("  %s %s: %s", g.Type, g.Field, g.Error()))
	}
	for _, w := range want {
		ws = append(ws, fmt.Sprintf("  %s %s (containing %q)", w.typ, w.field, w.detail))
	}
	t.Errorf("errors mismatch\nwant:\n%s\ngot:\n%s", strings.Join(ws, "\n"), strings.Join(gs, "\n"))
}

// Shorthands keep the tables readable.
func invalid(f string, detail ...string) wantErr {
	return wantErr{field.ErrorTypeInvalid, f, strings.Join(detail, "")}
}
func required(f string) wantErr { return wantErr{typ: field.ErrorTypeRequired, field: f} }
func forbidden(f string, detail ...string) wantErr {
	return wantErr{field.ErrorTypeForbidden, f, strings.Join(detail, "")}
}
func notSupported(f string) wantErr { return wantErr{typ: field.ErrorTypeNotSupported, field: f} }
func duplicate(f string) wantErr    { return wantErr{typ: field.ErrorTypeDuplicate, field: f} }
func internal(f string) wantErr     { return wantErr{typ: field.ErrorTypeInternal, field: f} }
func tooLong(f string) wantErr      { return wantErr{typ: field.ErrorTypeTooLong, field: f} }

// poolBuilder builds test pools: makePool("p", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Obj().
type poolBuilder struct{ p SpiderIPPool }

func makePool(name, subnet string) *poolBuilder {
	return &poolBuilder{SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: IPPoolSpec{Subnet: subnet}}}
}
func (b *poolBuilder) Version(v int64) *poolBuilder     { b.p.Spec.IPVersion = &v; return b }
func (b *poolBuilder) IPs(s ...string) *poolBuilder     { b.p.Spec.IPs = s; return b }
func (b *poolBuilder) Exclude(s ...string) *poolBuilder { b.p.Spec.ExcludeIPs = s; return b }
func (b *poolBuilder) Gateway(s string) *poolBuilder    { b.p.Spec.Gateway = &s; return b }
func (b *poolBuilder) Route(dst, gw string) *poolBuilder {
	b.p.Spec.Routes = append(b.p.Spec.Routes, Route{dst, gw})
	return b
}
func (b *poolBuilder) NodeName(s ...string) *poolBuilder { b.p.Spec.NodeName = s; return b }
func (b *poolBuilder) Namespace(s ...string) *poolBuilder {
	b.p.Spec.NamespaceName = s
	return b
}
func (b *poolBuilder) MultusName(s ...string) *poolBuilder { b.p.Spec.MultusName = s; return b }
func (b *poolBuilder) PodAffinity(s *metav1.LabelSelector) *poolBuilder {
	b.p.Spec.PodAffinity = s
	return b
}
func (b *poolBuilder) Label(k, v string) *poolBuilder {
	if b.p.Labels == nil {
		b.p.Labels = map[string]string{}
	}
	b.p.Labels[k] = v
	return b
}
func (b *poolBuilder) AllocatedRaw(s string) *poolBuilder { b.p.Status.AllocatedIPs = &s; return b }
func (b *poolBuilder) Allocated(ipToPod ...string) *poolBuilder {
	a := PoolIPAllocations{}
	for i := 0; i+1 < len(ipToPod); i += 2 {
		a[ipToPod[i]] = PoolIPAllocation{NamespacedName: ipToPod[i+1], PodUID: "uid-" + ipToPod[i]}
	}
	if err := b.p.Status.SetAllocations(a); err != nil {
		panic(err)
	}
	return b
}
func (b *poolBuilder) Obj() *SpiderIPPool { return b.p.DeepCopy() }

func labels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func TestValidateSpiderIPPool(t *testing.T) {
	v4 := func() *poolBuilder { return makePool("p", "10.6.0.0/16").Version(4) }
	v6 := func() *poolBuilder { return makePool("p6", "fd00:10:6::/64").Version(6) }
	autoAffinity := labels(AutoPoolPodAffinityAppAPIGrp, "apps", AutoPoolPodAffinityAppAPIVer, "v1",
		AutoPoolPodAffinityAppKind, "Deployment", AutoPoolPodAffinityAppNS, "default", AutoPoolPodAffinityAppName, "nginx")

	tests := []struct {
		name     string
		pool     *SpiderIPPool
		disable4 bool
		disable6 bool
		want     []wantErr
	}{
		// Accepted.
		{name: "minimal IPv4 pool", pool: v4().Obj()},
		{name: "ipVersion derived from subnet", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.10").Obj()},
		{name: "full IPv4 pool", pool: v4().IPs("10.6.212.100-10.6.212.200", "10.6.0.5").Exclude("10.6.212.150").
			Gateway("10.6.0.1").Route("10.7.0.0/16", "10.6.0.1").Route("10.8.0.0/16", "10.6.0.2").
			NodeName("master", "worker-1.example.com").Namespace("default", "kube-system").
			MultusName("kube-system/ipvlan-eth0", "macvlan-ens192").PodAffinity(labels("app", "nginx")).Obj()},
		{name: "IPv6 pool with gateway excluded", pool: v6().IPs("fd00:10:6::1-fd00:10:6::100").Exclude("fd00:10:6::1").Gateway("fd00:10:6::1").Route("fd00:20::/64", "fd00:10:6::1").Obj()},
		{name: "gateway outside ips", pool: v4().IPs("10.6.212.100-10.6.212.200").Gateway("10.6.0.1").Obj()},
		{name: "auto-created pool with the app labels", pool: v4().Label(LabelOwnerApplicationName, "nginx").PodAffinity(autoAffinity).Obj()},
		{name: "valid allocatedIPs", pool: v4().IPs("10.6.0.10").Allocated("10.6.0.10", "default/nginx").Obj()},

		// ipVersion and family.
		{name: "ipVersion not 4 or 6", pool: makePool("p", "10.6.0.0/16").Version(5).Obj(), want: []wantErr{notSupported("spec.ipVersion")}},
		{name: "IPv4 disabled", pool: v4().Obj(), disable4: true, want: []wantErr{forbidden("spec.ipVersion", "IPv4 is disabled")}},
		{name: "IPv6 disabled", pool: v6().Obj(), disable6: true, want: []wantErr{forbidden("spec.ipVersion", "IPv6 is disabled")}},
		{name: "IPv6 disabled, derived family", pool: makePool("p", "fd00::/64").Obj(), disable6: true, want: []wantErr{forbidden("spec.ipVersion", "IPv6 is disabled")}},

		// subnet.
		{name: "subnet required", pool: makePool("p", "").Version(4).Obj(), want: []wantErr{required("spec.subnet")}},
		{name: "subnet not a CIDR", pool: makePool("p", "10.6.0.0").Version(4).Obj(), want: []wantErr{invalid("spec.subnet")}},
		// Any valid CIDR is accepted, as upstream does (its multi-interface and SpiderSubnet
		// examples); the checks that build on it use the masked prefix.
		{name: "subnet with host bits", pool: makePool("p", "10.6.0.1/16").Version(4).IPs("10.6.0.10-10.6.0.20").Gateway("10.6.0.1").Obj()},
		{name: "IPv6 subnet with host bits and a long spelling", pool: makePool("p", "2002::ac0f:0/64").IPs("2002::ac0f:10").Route("2003:0::/64", "2002::1").Obj()},
		{name: "ips outside the masked subnet", pool: makePool("p", "10.6.1.0/24").Version(4).IPs("10.6.1.1", "10.6.2.1").Obj(),
			want: []wantErr{invalid("spec.ips[1]", "is not within spec.subnet 10.6.1.0/24")}},
		{name: "host bits do not widen the family check", pool: makePool("p", "10.6.0.1/16").Version(6).Obj(), want: []wantErr{invalid("spec.subnet", "is an IPv4 CIDR")}},
		{name: "subnet family differs from ipVersion", pool: makePool("p", "10.6.0.0/16").Version(6).Obj(), want: []wantErr{invalid("spec.subnet", "is an IPv4 CIDR, but spec.ipVersion is 6")}},

		// ips and excludeIPs.
		{name: "ips entry not an IP", pool: v4().IPs("10.6.0.1", "10.6.0.x").Obj(), want: []wantErr{invalid("spec.ips[1]")}},
		{name: "ips range reversed", pool: v4().IPs("10.6.0.9-10.6.0.1").Obj(), want: []wantErr{invalid("spec.ips[0]", "first address is after last address")}},
		{name: "ips CIDR not allowed", pool: v4().IPs("10.6.0.0/24").Obj(), want: []wantErr{invalid("spec.ips[0]", "CIDR notation is not allowed")}},
		{name: "ips of the other family", pool: v4().IPs("fd00::1").Obj(), want: []wantErr{invalid("spec.ips[0]", "is IPv6, but the family is IPv4")}},
		{name: "ips outside subnet", pool: v4().IPs("10.6.0.1", "10.6.255.250-10.7.0.5").Obj(), want: []wantErr{invalid("spec.ips[1]", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "excludeIPs outside subnet", pool: v4().IPs("10.6.0.1").Exclude("10.9.0.1").Obj(), want: []wantErr{invalid("spec.excludeIPs[0]", "not within spec.subnet")}},
		{name: "excludeIPs not an IP", pool: v4().Exclude("").Obj(), want: []wantErr{invalid("spec.excludeIPs[0]", "empty string")}},

		// gateway.
		{name: "gateway not an IP", pool: v4().Gateway("10.6.0.256").Obj(), want: []wantErr{invalid("spec.gateway")}},
		{name: "gateway empty", pool: v4().Gateway("").Obj(), want: []wantErr{required("spec.gateway")}},
		{name: "gateway outside subnet", pool: v4().Gateway("10.7.0.1").Obj(), want: []wantErr{invalid("spec.gateway", "not within spec.subnet")}},
		{name: "gateway of other family", pool: v4().Gateway("fd00::1").Obj(), want: []wantErr{invalid("spec.gateway", "IPv6 address")}},
		{name: "gateway inside ips", pool: v4().IPs("10.6.0.100", "10.6.0.1-10.6.0.10").Gateway("10.6.0.1").Obj(),
			want: []wantErr{invalid("spec.ips[1]", "contains spec.gateway 10.6.0.1; add the gateway to spec.excludeIPs")}},
		{name: "gateway inside ips but excluded", pool: v4().IPs("10.6.0.1-10.6.0.10").Exclude("10.6.0.1").Gateway("10.6.0.1").Obj()},

		// routes.
		{name: "route dst not a CIDR", pool: v4().Route("10.7.0.0", "10.6.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].dst")}},
		{name: "route dst empty", pool: v4().Route("", "10.6.0.1").Obj(), want: []wantErr{required("spec.routes[0].dst")}},
		{name: "route dst with host bits", pool: v4().Route("10.7.1.0/16", "10.6.0.1").Obj()},
		{name: "route dsts equal once masked", pool: v4().Route("10.7.0.0/16", "10.6.0.1").Route("10.7.1.0/16", "10.6.0.2").Obj(),
			want: []wantErr{duplicate("spec.routes[1].dst")}},
		{name: "default route with host bits", pool: v4().Route("10.7.1.0/0", "10.6.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].dst", "set spec.gateway instead")}},
		{name: "route dst of other family", pool: v4().Route("fd00::/64", "10.6.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].dst", "IPv6 CIDR")}},
		{name: "IPv4 default route", pool: v4().Route("0.0.0.0/0", "10.6.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].dst", "set spec.gateway instead")}},
		{name: "IPv6 default route", pool: v6().Route("::/0", "fd00:10:6::1").Obj(), want: []wantErr{invalid("spec.routes[0].dst", "set spec.gateway instead")}},
		{name: "duplicate route dst", pool: v4().Route("10.7.0.0/16", "10.6.0.1").Route("10.8.0.0/16", "10.6.0.1").Route("10.7.0.0/16", "10.6.0.2").Obj(),
			want: []wantErr{duplicate("spec.routes[2].dst")}},
		{name: "route gw outside subnet", pool: v4().Route("10.7.0.0/16", "10.7.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].gw", "not within spec.subnet")}},
		{name: "route gw empty", pool: v4().Route("10.7.0.0/16", "").Obj(), want: []wantErr{required("spec.routes[0].gw")}},

		// affinities and names.
		{name: "empty podAffinity", pool: v4().PodAffinity(&metav1.LabelSelector{}).Obj(), want: []wantErr{invalid("spec.podAffinity", "empty podAffinity")}},
		{name: "invalid podAffinity label", pool: v4().PodAffinity(labels("bad key!", "v")).Obj(), want: []wantErr{invalid("spec.podAffinity.matchLabels")}},
		{name: "invalid podAffinity operator", pool: v4().PodAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}).Obj(),
			want: []wantErr{invalid("spec.podAffinity.matchExpressions[0].operator")}},
		{name: "auto-created pool with extra label", pool: v4().Label(LabelOwnerApplicationName, "nginx").PodAffinity(labels(AutoPoolPodAffinityAppName, "nginx", "extra", "x")).Obj(),
			want: []wantErr{forbidden("spec.podAffinity.matchLabels[extra]", "app-*")}},
		{name: "auto-created pool with matchExpressions", pool: v4().Label(LabelOwnerApplicationName, "nginx").PodAffinity(&metav1.LabelSelector{
			MatchLabels: autoAffinity.MatchLabels, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpExists}}}).Obj(),
			want: []wantErr{forbidden("spec.podAffinity.matchExpressions")}},
		{name: "invalid nodeAffinity", pool: func() *SpiderIPPool {
			p := v4().Obj()
			p.Spec.NodeAffinity = labels("k", "bad value!")
			return p
		}(), want: []wantErr{invalid("spec.nodeAffinity.matchLabels")}},
		{name: "invalid namespaceAffinity", pool: func() *SpiderIPPool {
			p := v4().Obj()
			p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpIn}}}
			return p
		}(), want: []wantErr{required("spec.namespaceAffinity.matchExpressions[0].values")}},
		{name: "empty nodeAffinity allowed", pool: func() *SpiderIPPool {
			p := v4().Obj()
			p.Spec.NodeAffinity = &metav1.LabelSelector{}
			return p
		}()},
		{name: "invalid nodeName", pool: v4().NodeName("master", "Node_1").Obj(), want: []wantErr{invalid("spec.nodeName[1]", "not a valid node name")}},
		{name: "invalid namespaceName", pool: v4().Namespace("a.b").Obj(), want: []wantErr{invalid("spec.namespaceName[0]", "not a valid namespace name")}},
		{name: "multusName with two slashes", pool: v4().MultusName("a/b/c").Obj(), want: []wantErr{invalid("spec.multusName[0]", "namespace/name")}},
		{name: "multusName with empty name", pool: v4().MultusName("ns/").Obj(), want: []wantErr{invalid("spec.multusName[0]")}},
		{name: "multusName with bad namespace", pool: v4().MultusName("ok", "Bad_NS/x").Obj(), want: []wantErr{invalid("spec.multusName[1]", "namespace:")}},

		// status.
		{name: "allocatedIPs not JSON", pool: v4().AllocatedRaw("{").Obj(), want: []wantErr{invalid("status.allocatedIPs", "JSON object")}},
		{name: "allocatedIPs key not an IP", pool: v4().AllocatedRaw(`{"x":{"pod":"a/b","podUid":"u"}}`).Obj(), want: []wantErr{invalid("status.allocatedIPs[x]", "not an IP address")}},

		// Several problems at once are all reported, in field order.
		{name: "several errors", pool: v4().IPs("bad", "10.9.0.1").Gateway("10.9.0.1").Route("0.0.0.0/0", "10.6.0.1").Obj(), want: []wantErr{
			invalid("spec.ips[0]"), invalid("spec.ips[1]"), invalid("spec.gateway"), invalid("spec.routes[0].dst"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderIPPool(tc.pool, !tc.disable4, !tc.disable6), tc.want)
		})
	}
}

func TestValidateSpiderIPPoolUpdate(t *testing.T) {
	base := func() *poolBuilder {
		return makePool("p", "10.6.0.0/16").Version(4).IPs("10.6.0.10-10.6.0.20").
			Allocated("10.6.0.10", "default/a", "10.6.0.15", "default/b")
	}
	many := makePool("p", "10.6.0.0/16").Version(4).IPs("10.6.1.0-10.6.1.255")
	var allocs []string
	for i := range 12 {
		allocs = append(allocs, fmt.Sprintf("10.6.1.%d", i), fmt.Sprintf("default/pod-%d", i))
	}
	many.Allocated(allocs...)
	manyRemoved := []wantErr{}
	for i := range maxInUseErrors {
		manyRemoved = append(manyRemoved, forbidden("spec.ips", fmt.Sprintf("IP 10.6.1.%d is allocated to Pod default/pod-%d", i, i)))
	}
	manyRemoved = append(manyRemoved, forbidden("spec.ips", "2 more allocated IPs"))

	tests := []struct {
		name     string
		new, old *SpiderIPPool
		disable4 bool
		want     []wantErr
	}{
		{name: "unchanged", new: base().Obj(), old: base().Obj()},
		{name: "IPs added", new: base().IPs("10.6.0.10-10.6.0.30").Obj(), old: base().Obj()},
		{name: "free IP removed", new: base().IPs("10.6.0.10-10.6.0.15").Obj(), old: base().Obj()},
		{name: "free IP excluded", new: base().Exclude("10.6.0.11").Obj(), old: base().Obj()},
		{name: "ipVersion nil on new side is not a change", new: makePool("p", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Obj(), old: base().Obj()},
		{name: "ipVersion changed", new: base().Version(6).Obj(), old: base().Obj(), want: []wantErr{
			forbidden("spec.ipVersion", "is not changeable"), invalid("spec.subnet"),
		}},
		{name: "subnet changed", new: makePool("p", "10.6.0.0/24").Version(4).IPs("10.6.0.10-10.6.0.20").Obj(), old: base().Obj(),
			want: []wantErr{forbidden("spec.subnet", "is not changeable (was 10.6.0.0/16)")}},
		// The webhook turns a re-sent "10.6.0.1/16" into "10.6.0.0/16" while the stored object may
		// still hold the spelling written past it: another spelling of one network is no change.
		{name: "subnet respelt", new: base().Obj(), old: makePool("p", "10.6.0.1/16").Version(4).IPs("10.6.0.10-10.6.0.20").Obj()},
		{name: "subnet with host bits changed", new: makePool("p", "10.7.0.1/16").Version(4).Obj(), old: makePool("p", "10.6.0.1/16").Version(4).Obj(),
			want: []wantErr{forbidden("spec.subnet", "is not changeable (was 10.6.0.1/16)")}},
		{name: "allocated IP removed from ips", new: base().IPs("10.6.0.16-10.6.0.20", "10.6.0.10").Obj(), old: base().Obj(),
			want: []wantErr{forbidden("spec.ips", "IP 10.6.0.15 is allocated to Pod default/b (uid uid-10.6.0.15) and cannot be removed from spec.ips")}},
		{name: "allocated IP added to excludeIPs", new: base().Exclude("10.6.0.10").Obj(), old: base().Obj(),
			want: []wantErr{forbidden("spec.excludeIPs", "IP 10.6.0.10 is allocated to Pod default/a")}},
		{name: "errors are capped", new: makePool("p", "10.6.0.0/16").Version(4).Obj(), old: many.Obj(), want: manyRemoved},
		{name: "stale record outside the old usable set does not block", new: base().IPs("10.6.0.10-10.6.0.15").Obj(),
			old: base().IPs("10.6.0.10-10.6.0.15").Allocated("10.6.0.10", "default/a", "10.6.0.99", "default/stale").Obj()},
		{name: "family disabled after creation still allows updates", new: base().Obj(), old: base().Obj(), disable4: true},
		{name: "old status corrupt", new: base().IPs("10.6.0.10").Obj(), old: base().AllocatedRaw("not json").Obj(),
			want: []wantErr{internal("status.allocatedIPs")}},
		{name: "local errors of the new object", new: base().IPs("10.6.0.10-10.6.0.20", "x").Obj(), old: base().Obj(),
			want: []wantErr{invalid("spec.ips[1]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderIPPoolUpdate(tc.new, tc.old, !tc.disable4, true), tc.want)
		})
	}
}

func TestValidateIPPoolOverlap(t *testing.T) {
	others := []SpiderIPPool{
		*makePool("same-subnet", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Exclude("10.6.0.15").Obj(),
		*makePool("narrow", "10.7.1.0/24").Obj(),
		*makePool("v6", "fd00::/64").IPs("fd00::1-fd00::ff").Obj(),
		*makePool("broken", "not-a-cidr").Obj(),
	}
	tests := []struct {
		name string
		pool *SpiderIPPool
		want []wantErr
	}{
		{name: "disjoint subnet", pool: makePool("p", "10.8.0.0/16").IPs("10.8.0.1").Obj()},
		{name: "same subnet, disjoint IPs", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.21-10.6.0.30").Obj()},
		{name: "same subnet, shared IPs", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.18-10.6.0.25").Obj(),
			want: []wantErr{forbidden("spec.ips", `IPs 10.6.0.18-10.6.0.20 are also usable in SpiderIPPool "same-subnet"`)}},
		{name: "same subnet, shared IP excluded by the other pool", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.15").Obj()},
		{name: "same subnet, shared IP excluded here", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.20-10.6.0.21").Exclude("10.6.0.20").Obj()},
		{name: "subnet contains another pool's subnet", pool: makePool("p", "10.7.0.0/16").Obj(),
			want: []wantErr{invalid("spec.subnet", `overlaps with spec.subnet 10.7.1.0/24 of SpiderIPPool "narrow"`)}},
		{name: "subnet inside another pool's subnet", pool: makePool("p", "10.6.3.0/24").Obj(),
			want: []wantErr{invalid("spec.subnet", `SpiderIPPool "same-subnet"`)}},
		{name: "other family is not compared", pool: makePool("p", "fd00::/48").Obj(), want: []wantErr{invalid("spec.subnet", `"v6"`)}},
		{name: "itself is skipped", pool: makePool("same-subnet", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Obj()},
		{name: "invalid pool reports nothing here", pool: makePool("p", "10.6.0.0/16").IPs("x").Obj()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateIPPoolOverlap(tc.pool, others), tc.want)
		})
	}
}

// subnetBuilder mirrors poolBuilder for SpiderSubnet.
type subnetBuilder struct{ s SpiderSubnet }

func makeSubnet(name, subnet string) *subnetBuilder {
	return &subnetBuilder{SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: SubnetSpec{Subnet: subnet}}}
}
func (b *subnetBuilder) Version(v int64) *subnetBuilder     { b.s.Spec.IPVersion = &v; return b }
func (b *subnetBuilder) IPs(s ...string) *subnetBuilder     { b.s.Spec.IPs = s; return b }
func (b *subnetBuilder) Exclude(s ...string) *subnetBuilder { b.s.Spec.ExcludeIPs = s; return b }
func (b *subnetBuilder) Gateway(s string) *subnetBuilder    { b.s.Spec.Gateway = &s; return b }
func (b *subnetBuilder) Route(dst, gw string) *subnetBuilder {
	b.s.Spec.Routes = append(b.s.Spec.Routes, Route{dst, gw})
	return b
}
func (b *subnetBuilder) Controlled(poolToIPs map[string][]string) *subnetBuilder {
	p := PoolIPPreAllocations{}
	for k, v := range poolToIPs {
		p[k] = PoolIPPreAllocation{IPs: v}
	}
	if err := b.s.Status.SetControlledPools(p); err != nil {
		panic(err)
	}
	return b
}
func (b *subnetBuilder) ControlledRaw(s string) *subnetBuilder {
	b.s.Status.ControlledIPPools = &s
	return b
}
func (b *subnetBuilder) Obj() *SpiderSubnet { return b.s.DeepCopy() }

func TestValidatePoolInSubnet(t *testing.T) {
	subnet := makeSubnet("s", "10.6.0.0/16").IPs("10.6.0.1-10.6.0.100").Exclude("10.6.0.50").Obj()
	tests := []struct {
		name string
		pool *SpiderIPPool
		want []wantErr
	}{
		{name: "inside", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Obj()},
		{name: "only excluded part outside", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.40-10.6.0.60").Exclude("10.6.0.50").Obj()},
		{name: "outside the subnet's IPs", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.90-10.6.0.110").Obj(),
			want: []wantErr{forbidden("spec.ips", `IPs 10.6.0.101-10.6.0.110 are not usable IPs of SpiderSubnet "s"`)}},
		{name: "on an IP the subnet excludes", pool: makePool("p", "10.6.0.0/16").IPs("10.6.0.50").Obj(),
			want: []wantErr{forbidden("spec.ips", "10.6.0.50")}},
		{name: "different subnet is not controlled", pool: makePool("p", "10.7.0.0/16").IPs("10.7.0.1").Obj()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidatePoolInSubnet(tc.pool, subnet), tc.want)
		})
	}
}

func TestValidateSpiderSubnet(t *testing.T) {
	v4 := func() *subnetBuilder { return makeSubnet("s", "10.6.0.0/16").Version(4) }
	tests := []struct {
		name     string
		subnet   *SpiderSubnet
		disable6 bool
		want     []wantErr
	}{
		{name: "full subnet", subnet: v4().IPs("10.6.0.2-10.6.255.254").Exclude("10.6.0.100").Gateway("10.6.0.1").Route("10.7.0.0/16", "10.6.0.1").Obj()},
		{name: "derived IPv6", subnet: makeSubnet("s", "fd00::/64").IPs("fd00::10-fd00::20").Obj()},
		{name: "controlled pools decode", subnet: v4().IPs("10.6.0.2-10.6.0.9").Controlled(map[string][]string{"p": {"10.6.0.2-10.6.0.3"}}).Obj()},
		{name: "ipVersion not supported", subnet: v4().Version(7).Obj(), want: []wantErr{notSupported("spec.ipVersion")}},
		{name: "IPv6 disabled", subnet: makeSubnet("s", "fd00::/64").Obj(), disable6: true, want: []wantErr{forbidden("spec.ipVersion", "IPv6 is disabled")}},
		{name: "subnet with host bits", subnet: makeSubnet("s", "10.6.0.1/16").IPs("10.6.0.2-10.6.0.9").Obj()},
		{name: "IPv6 subnet of upstream's example", subnet: makeSubnet("s", "2002::ac0f:0/64").IPs("2002::ac0f:2-2002::ac0f:9").Gateway("2002::ac0f:1").Obj()},
		{name: "subnet not a CIDR", subnet: makeSubnet("s", "2002::ac0f:0").Obj(), want: []wantErr{invalid("spec.subnet")}},
		{name: "ips outside", subnet: v4().IPs("10.7.0.1").Obj(), want: []wantErr{invalid("spec.ips[0]", "not within spec.subnet")}},
		{name: "excludeIPs invalid", subnet: v4().Exclude("10.6.0.1-").Obj(), want: []wantErr{invalid("spec.excludeIPs[0]")}},
		{name: "gateway in ips", subnet: v4().IPs("10.6.0.1-10.6.0.9").Gateway("10.6.0.1").Obj(), want: []wantErr{invalid("spec.ips[0]", "contains spec.gateway")}},
		{name: "gateway outside", subnet: v4().Gateway("10.5.0.1").Obj(), want: []wantErr{invalid("spec.gateway")}},
		{name: "default route", subnet: v4().Route("0.0.0.0/0", "10.6.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].dst")}},
		{name: "duplicate route", subnet: v4().Route("10.7.0.0/16", "10.6.0.1").Route("10.7.0.0/16", "10.6.0.1").Obj(), want: []wantErr{duplicate("spec.routes[1].dst")}},
		{name: "route gw outside", subnet: v4().Route("10.7.0.0/16", "10.8.0.1").Obj(), want: []wantErr{invalid("spec.routes[0].gw")}},
		{name: "controlledIPPools not JSON", subnet: v4().ControlledRaw("[").Obj(), want: []wantErr{invalid("status.controlledIPPools")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderSubnet(tc.subnet, true, !tc.disable6), tc.want)
		})
	}
}

func TestValidateSpiderSubnetUpdate(t *testing.T) {
	base := func() *subnetBuilder {
		return makeSubnet("s", "10.6.0.0/16").Version(4).IPs("10.6.0.1-10.6.0.100").
			Controlled(map[string][]string{"pool-a": {"10.6.0.10-10.6.0.20"}, "pool-b": {"10.6.0.90-10.6.0.100"}})
	}
	tests := []struct {
		name     string
		new, old *SpiderSubnet
		want     []wantErr
	}{
		{name: "unchanged", new: base().Obj(), old: base().Obj()},
		{name: "unused IPs removed", new: base().IPs("10.6.0.10-10.6.0.20", "10.6.0.90-10.6.0.100").Obj(), old: base().Obj()},
		{name: "subnet changed", new: makeSubnet("s", "10.6.0.0/24").Version(4).Obj(), old: base().Obj(), want: []wantErr{forbidden("spec.subnet", "is not changeable")}},
		{name: "subnet respelt", new: makeSubnet("s", "2002::/64").Obj(), old: makeSubnet("s", "2002::ac0f:0/64").Obj()},
		{name: "ipVersion changed", new: base().Version(6).Obj(), old: base().Obj(), want: []wantErr{forbidden("spec.ipVersion", "is not changeable"), invalid("spec.subnet")}},
		{name: "IPs of a controlled pool removed", new: base().IPs("10.6.0.1-10.6.0.95").Obj(), old: base().Obj(),
			want: []wantErr{forbidden("spec.ips", `IPs 10.6.0.96-10.6.0.100 are used by SpiderIPPool "pool-b" and cannot be removed`)}},
		{name: "IPs of a controlled pool excluded", new: base().Exclude("10.6.0.12", "10.6.0.95").Obj(), old: base().Obj(), want: []wantErr{
			forbidden("spec.excludeIPs", `IPs 10.6.0.12 are used by SpiderIPPool "pool-a"`),
			forbidden("spec.excludeIPs", `IPs 10.6.0.95 are used by SpiderIPPool "pool-b"`),
		}},
		{name: "old status corrupt", new: base().Obj(), old: base().ControlledRaw("{").Obj(), want: []wantErr{internal("status.controlledIPPools")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderSubnetUpdate(tc.new, tc.old, true, true), tc.want)
		})
	}
}

func TestValidateSubnetOverlap(t *testing.T) {
	others := []SpiderSubnet{*makeSubnet("a", "10.6.0.0/16").Obj(), *makeSubnet("b", "fd00::/64").Obj(), *makeSubnet("broken", "x").Obj()}
	tests := []struct {
		name   string
		subnet *SpiderSubnet
		want   []wantErr
	}{
		{name: "disjoint", subnet: makeSubnet("s", "10.7.0.0/16").Obj()},
		{name: "equal subnets overlap", subnet: makeSubnet("s", "10.6.0.0/16").Obj(), want: []wantErr{invalid("spec.subnet", `overlaps with spec.subnet 10.6.0.0/16 of SpiderSubnet "a"`)}},
		{name: "contained", subnet: makeSubnet("s", "10.6.8.0/24").Obj(), want: []wantErr{invalid("spec.subnet", `"a"`)}},
		{name: "IPv6 overlap", subnet: makeSubnet("s", "fd00::/56").Obj(), want: []wantErr{invalid("spec.subnet", `"b"`)}},
		{name: "itself skipped", subnet: makeSubnet("a", "10.6.0.0/16").Obj()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSubnetOverlap(tc.subnet, others), tc.want)
		})
	}
}

func TestValidateSubnetPools(t *testing.T) {
	pools := []SpiderIPPool{
		*makePool("in", "10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").Obj(),
		*makePool("other", "10.7.1.0/24").Obj(),
	}
	tests := []struct {
		name   string
		subnet *SpiderSubnet
		want   []wantErr
	}{
		{name: "holds the pool's IPs", subnet: makeSubnet("s", "10.6.0.0/16").IPs("10.6.0.1-10.6.0.100").Obj()},
		{name: "misses some of the pool's IPs", subnet: makeSubnet("s", "10.6.0.0/16").IPs("10.6.0.1-10.6.0.15").Obj(),
			want: []wantErr{invalid("spec.ips", `SpiderIPPool "in" uses IPs 10.6.0.16-10.6.0.20`)}},
		{name: "overlaps another pool's different subnet", subnet: makeSubnet("s", "10.7.0.0/16").Obj(),
			want: []wantErr{invalid("spec.subnet", `SpiderIPPool "other"`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSubnetPools(tc.subnet, pools), tc.want)
		})
	}
}

func TestValidateSpiderReservedIP(t *testing.T) {
	rip := func(v *int64, ips ...string) *SpiderReservedIP {
		return &SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: ReservedIPSpec{IPVersion: v, IPs: ips}}
	}
	v := func(n int64) *int64 { return &n }
	tests := []struct {
		name     string
		rip      *SpiderReservedIP
		disable4 bool
		want     []wantErr
	}{
		{name: "IPv4 entries", rip: rip(v(4), "10.6.0.1", "10.6.0.10-10.6.0.20")},
		{name: "IPv6 entries", rip: rip(v(6), "fd00::1-fd00::9")},
		{name: "version derived from first entry", rip: rip(nil, "10.6.0.1")},
		{name: "version derived, later entry of other family", rip: rip(nil, "10.6.0.1", "fd00::1"), want: []wantErr{invalid("spec.ips[1]", "is IPv6, but the family is IPv4")}},
		{name: "entry not an IP", rip: rip(v(4), "10.6.0.1", "10.6.0.0/24"), want: []wantErr{invalid("spec.ips[1]", "CIDR notation")}},
		{name: "entry of other family", rip: rip(v(6), "10.6.0.1"), want: []wantErr{invalid("spec.ips[0]")}},
		{name: "ipVersion unsupported", rip: rip(v(5), "10.6.0.1"), want: []wantErr{notSupported("spec.ipVersion")}},
		{name: "nothing to derive ipVersion from", rip: rip(nil), want: []wantErr{required("spec.ipVersion")}},
		{name: "IPv4 disabled", rip: rip(v(4), "10.6.0.1"), disable4: true, want: []wantErr{forbidden("spec.ipVersion", "IPv4 is disabled")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderReservedIP(tc.rip, !tc.disable4, true), tc.want)
		})
	}

	t.Run("update keeps ipVersion", func(t *testing.T) {
		checkErrs(t, ValidateSpiderReservedIPUpdate(rip(v(4), "10.6.0.2"), rip(v(4), "10.6.0.1"), true, true), nil)
		checkErrs(t, ValidateSpiderReservedIPUpdate(rip(v(6), "fd00::1"), rip(v(4), "10.6.0.1"), true, true),
			[]wantErr{forbidden("spec.ipVersion", "is not changeable (was 4)")})
		checkErrs(t, ValidateSpiderReservedIPUpdate(rip(v(4), "10.6.0.2"), rip(v(4), "10.6.0.1"), false, true), nil)
	})
}

func TestValidateSpiderEndpoint(t *testing.T) {
	s := func(v string) *string { return &v }
	good := func() *SpiderEndpoint {
		return &SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "nginx-4653bc4f24-rswak", Namespace: "default"},
			Status: WorkloadEndpointStatus{
				Current: PodIPAllocation{UID: "5d1c", Node: "worker01", IPs: []IPAllocationDetail{
					{NIC: "net1", IPv4: s("10.6.212.145/16"), IPv4Pool: s("10-6-v4"), IPv4Gateway: s("10.6.0.1"), Routes: []Route{{"10.7.0.0/16", "10.6.0.1"}}},
					{NIC: "net2", IPv6: s("fd00::5/64"), MAC: s("0a:1b:2c:3d:4e:5f")},
				}},
				OwnerControllerType: "Deployment", OwnerControllerName: "nginx",
			},
		}
	}
	with := func(f func(*SpiderEndpoint)) *SpiderEndpoint { e := good(); f(e); return e }
	tests := []struct {
		name string
		ep   *SpiderEndpoint
		want []wantErr
	}{
		{name: "guide endpoint", ep: good()},
		{name: "uid missing", ep: with(func(e *SpiderEndpoint) { e.Status.Current.UID = "" }), want: []wantErr{required("status.current.uid")}},
		{name: "node missing", ep: with(func(e *SpiderEndpoint) { e.Status.Current.Node = "" }), want: []wantErr{required("status.current.node")}},
		{name: "owner missing", ep: with(func(e *SpiderEndpoint) { e.Status.OwnerControllerType, e.Status.OwnerControllerName = "", "" }),
			want: []wantErr{required("status.ownerControllerType"), required("status.ownerControllerName")}},
		{name: "interface missing", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].NIC = "" }), want: []wantErr{required("status.current.ips[0].interface")}},
		{name: "interface duplicated", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[1].NIC = "net1" }), want: []wantErr{duplicate("status.current.ips[1].interface")}},
		{name: "ipv4 without prefix", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].IPv4 = s("10.6.212.145") }), want: []wantErr{invalid("status.current.ips[0].ipv4")}},
		{name: "ipv4 holds IPv6", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].IPv4 = s("fd00::1/64") }), want: []wantErr{invalid("status.current.ips[0].ipv4", "IPv4")}},
		{name: "ipv6 prefix too long", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[1].IPv6 = s("fd00::5/129") }), want: []wantErr{invalid("status.current.ips[1].ipv6", "0..128")}},
		{name: "gateway of other family", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].IPv4Gateway = s("fd00::1") }), want: []wantErr{invalid("status.current.ips[0].ipv4Gateway")}},
		{name: "vlan out of range", ep: with(func(e *SpiderEndpoint) { v := int64(4095); e.Status.Current.IPs[0].Vlan = &v }), want: []wantErr{invalid("status.current.ips[0].vlan")}},
		{name: "vlan in range", ep: with(func(e *SpiderEndpoint) { v := int64(4094); e.Status.Current.IPs[0].Vlan = &v })},
		{name: "mac invalid", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[1].MAC = s("zz") }), want: []wantErr{invalid("status.current.ips[1].mac")}},
		{name: "route dst invalid", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].Routes[0].Dst = "x" }), want: []wantErr{invalid("status.current.ips[0].routes[0].dst")}},
		// The agent writes the routes it parsed, so another spelling there is a bug, not a choice.
		{name: "route dst not canonical", ep: with(func(e *SpiderEndpoint) { e.Status.Current.IPs[0].Routes[0].Dst = "10.7.1.0/16" }),
			want: []wantErr{invalid("status.current.ips[0].routes[0].dst", `use "10.7.0.0/16"`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderEndpoint(tc.ep), tc.want)
		})
	}
}

func TestValidateCoordinatorSpec(t *testing.T) {
	s := func(v string) *string { return &v }
	n := func(v int) *int { return &v }
	tests := []struct {
		name string
		spec CoordinatorSpec
		want []wantErr
	}{
		{name: "empty spec", spec: CoordinatorSpec{}},
		{name: "everything set", spec: CoordinatorSpec{Mode: s("underlay"), PodCIDRType: s("cilium"), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10", "fd00::/64"},
			PolicyRoutes: []Route{{"10.7.0.0/16", "10.6.0.1"}, {"fd00:1::/64", "fd00::1"}}, PodMACPrefix: s("0a:1b"), PodDefaultRouteNIC: s("net1"),
			HostRuleTable: n(500), PodRPFilter: n(-1), TxQueueLen: n(1000), VethLinkAddress: s("169.254.100.1"), VethMTU: n(1500)}},
		{name: "mode unsupported", spec: CoordinatorSpec{Mode: s("bridge")}, want: []wantErr{notSupported("spec.mode")}},
		{name: "podCIDRType unsupported", spec: CoordinatorSpec{PodCIDRType: s("flannel")}, want: []wantErr{notSupported("spec.podCIDRType")}},
		{name: "hijackCIDR invalid", spec: CoordinatorSpec{HijackCIDR: []string{"169.254.0.0/16", "169.254.0.0/33"}}, want: []wantErr{invalid("spec.hijackCIDR[1]")}},
		{name: "hijackCIDR not an IP", spec: CoordinatorSpec{HijackCIDR: []string{"nodelocaldns"}}, want: []wantErr{invalid("spec.hijackCIDR[0]", "want a CIDR or an IP address")}},
		{name: "hijackCIDR with host bits", spec: CoordinatorSpec{HijackCIDR: []string{"169.254.1.0/16", "fd00:0::1/64"}}},
		{name: "policyRoutes dst with host bits", spec: CoordinatorSpec{PolicyRoutes: []Route{{"10.7.1.0/16", "10.6.0.1"}}}},
		{name: "policyRoutes dst invalid", spec: CoordinatorSpec{PolicyRoutes: []Route{{"10.7.0.0/40", "10.6.0.1"}}}, want: []wantErr{invalid("spec.policyRoutes[0].dst")}},
		{name: "policyRoutes gw invalid", spec: CoordinatorSpec{PolicyRoutes: []Route{{"10.7.0.0/16", "gw"}}}, want: []wantErr{invalid("spec.policyRoutes[0].gw")}},
		{name: "policyRoutes families differ", spec: CoordinatorSpec{PolicyRoutes: []Route{{"10.7.0.0/16", "fd00::1"}}}, want: []wantErr{invalid("spec.policyRoutes[0].gw", "same IP family")}},
		{name: "podMACPrefix not hex", spec: CoordinatorSpec{PodMACPrefix: s("zz:00")}, want: []wantErr{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix three bytes", spec: CoordinatorSpec{PodMACPrefix: s("0a:1b:2c")}, want: []wantErr{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix multicast by pattern", spec: CoordinatorSpec{PodMACPrefix: s("01:00")}, want: []wantErr{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix multicast past the pattern", spec: CoordinatorSpec{PodMACPrefix: s("0b:00")}, want: []wantErr{invalid("spec.podMACPrefix", "unicast")}},
		{name: "podMACPrefix with dash", spec: CoordinatorSpec{PodMACPrefix: s("0a-1b")}, want: []wantErr{invalid("spec.podMACPrefix", `"xx:xx"`)}},
		{name: "podMACPrefix empty means unset", spec: CoordinatorSpec{PodMACPrefix: s("")}},
		{name: "podDefaultRouteNIC invalid", spec: CoordinatorSpec{PodDefaultRouteNIC: s("a-very-long-interface")}, want: []wantErr{tooLong("spec.podDefaultRouteNIC")}},
		{name: "hostRuleTable zero", spec: CoordinatorSpec{HostRuleTable: n(0)}, want: []wantErr{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable main", spec: CoordinatorSpec{HostRuleTable: n(254)}, want: []wantErr{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable local", spec: CoordinatorSpec{HostRuleTable: n(255)}, want: []wantErr{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable default", spec: CoordinatorSpec{HostRuleTable: n(253)}, want: []wantErr{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable beyond 32 bits", spec: CoordinatorSpec{HostRuleTable: n(1 << 33)}, want: []wantErr{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable 252 and 256 are fine", spec: CoordinatorSpec{HostRuleTable: n(252)}},
		{name: "podRPFilter 3", spec: CoordinatorSpec{PodRPFilter: n(3)}, want: []wantErr{notSupported("spec.podRPFilter")}},
		{name: "podRPFilter 2", spec: CoordinatorSpec{PodRPFilter: n(2)}},
		{name: "txQueueLen negative", spec: CoordinatorSpec{TxQueueLen: n(-1)}, want: []wantErr{invalid("spec.txQueueLen")}},
		{name: "vethLinkAddress IPv6", spec: CoordinatorSpec{VethLinkAddress: s("fe80::1")}, want: []wantErr{invalid("spec.vethLinkAddress", "IPv4")}},
		{name: "vethLinkAddress not an IP", spec: CoordinatorSpec{VethLinkAddress: s("link")}, want: []wantErr{invalid("spec.vethLinkAddress")}},
		{name: "vethLinkAddress empty disables", spec: CoordinatorSpec{VethLinkAddress: s("")}},
		{name: "vethMTU zero", spec: CoordinatorSpec{VethMTU: n(0)}, want: []wantErr{invalid("spec.vethMTU")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateCoordinatorSpec(&tc.spec, field.NewPath("spec")), tc.want)
		})
	}

	t.Run("SpiderCoordinator requires podCIDRType", func(t *testing.T) {
		checkErrs(t, ValidateSpiderCoordinator(&SpiderCoordinator{Spec: CoordinatorSpec{Mode: s("auto")}}), []wantErr{required("spec.podCIDRType")})
		checkErrs(t, ValidateSpiderCoordinator(&SpiderCoordinator{Spec: CoordinatorSpec{PodCIDRType: s("auto")}}), nil)
	})
	t.Run("nil spec", func(t *testing.T) {
		checkErrs(t, ValidateCoordinatorSpec(nil, field.NewPath("spec", "coordinator")), nil)
	})
}

// smc builds a SpiderMultusConfig of cniType ("" leaves it nil) and lets mutate fill the rest.
func smc(cniType string, mutate func(*SpiderMultusConfig)) *SpiderMultusConfig {
	m := &SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: "default"}}
	if cniType != "" {
		m.Spec.CniType = &cniType
	}
	if mutate != nil {
		mutate(m)
	}
	return m
}

func TestValidateSpiderMultusConfig(t *testing.T) {
	s := func(v string) *string { return &v }
	i32 := func(v int32) *int32 { return &v }
	n := func(v int) *int { return &v }
	u := func(v uint) *uint { return &v }
	yes := new(true)
	macvlan := func(f func(*SpiderMacvlanCniConfig)) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			m.Spec.MacvlanConfig = &SpiderMacvlanCniConfig{Master: []string{"ens192"}}
			if f != nil {
				f(m.Spec.MacvlanConfig)
			}
		}
	}
	ann := func(kv ...string) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			m.Annotations = map[string]string{}
			for i := 0; i+1 < len(kv); i += 2 {
				m.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	both := func(fs ...func(*SpiderMultusConfig)) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			for _, f := range fs {
				f(m)
			}
		}
	}
	ovs := func(f func(*SpiderOvsCniConfig)) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			m.Spec.OvsConfig = &SpiderOvsCniConfig{BrName: "br1"}
			if f != nil {
				f(m.Spec.OvsConfig)
			}
		}
	}
	sriov := func(f func(*SpiderSRIOVCniConfig)) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			m.Spec.SriovConfig = &SpiderSRIOVCniConfig{ResourceName: s("spidernet.io/mellanoxrdma")}
			if f != nil {
				f(m.Spec.SriovConfig)
			}
		}
	}
	vlan := func(f func(*SpiderVlanCniConfig)) func(*SpiderMultusConfig) {
		return func(m *SpiderMultusConfig) {
			m.Spec.VlanConfig = &SpiderVlanCniConfig{Master: []string{"eth0"}, VlanID: i32(100)}
			if f != nil {
				f(m.Spec.VlanConfig)
			}
		}
	}

	tests := []struct {
		name string
		smc  *SpiderMultusConfig
		want []wantErr
	}{
		// Accepted.
		{name: "macvlan", smc: smc("macvlan", macvlan(nil))},
		{name: "macvlan with vlan and bond", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) {
			c.Master, c.VlanID, c.MTU = []string{"ens192", "ens224"}, i32(100), i32(9000)
			c.Bond = &BondConfig{Name: "bond0", Mode: 1, Options: s("miimon=100")}
			c.SpiderpoolConfigPools = &SpiderpoolPools{IPv4IPPool: []string{"10-6-v4", "rdmarail1-*"}, IPv6IPPool: []string{"v6-pool-[ab]"}}
		}))},
		{name: "ipvlan", smc: smc("ipvlan", func(m *SpiderMultusConfig) { m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}} })},
		{name: "vlan manual", smc: smc("vlan", vlan(nil))},
		{name: "vlan auto", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.VlanMode, c.VlanID = s("auto"), nil }))},
		{name: "sriov with matchMasterSubnet", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) {
			c.VlanID, c.MinTxRateMbps, c.MaxTxRateMbps, c.RdmaIsolation = i32(100), n(10), n(100), yes
			c.SpiderpoolConfigPools = &SpiderpoolPools{MatchMasterSubnet: yes}
		}))},
		{name: "ib-sriov", smc: smc("ib-sriov", func(m *SpiderMultusConfig) {
			m.Spec.IbSriovConfig = &SpiderIBSriovCniConfig{ResourceName: s("spidernet.io/ib"), LinkState: s("auto")}
		})},
		{name: "ipoib", smc: smc("ipoib", func(m *SpiderMultusConfig) { m.Spec.IpoibConfig = &SpiderIpoibCniConfig{Master: "ib0"} })},
		{name: "ovs with trunk", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) {
			c.VlanTag, c.Trunk = i32(10), []*Trunk{{MinID: u(10), MaxID: u(20)}, {ID: u(42)}}
		}))},
		{name: "custom with CNI JSON", smc: smc("custom", func(m *SpiderMultusConfig) {
			m.Spec.CustomCNIConfig = s(`{"cniVersion":"0.3.1","name":"x","plugins":[{"type":"bridge"}]}`)
		})},
		{name: "custom empty", smc: smc("custom", func(m *SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("") })},
		{name: "nil cniType is custom", smc: smc("", nil)},
		{name: "annotations accepted", smc: smc("macvlan", both(macvlan(nil), ann(AnnoMultusConfigName, "my-nad", AnnoMultusConfigCNIVersion, "1.0.0")))},
		{name: "CNI version 1.1.0 accepted", smc: smc("macvlan", both(macvlan(nil), ann(AnnoMultusConfigCNIVersion, "1.1.0")))},
		{name: "resource injection allowed for macvlan", smc: smc("macvlan", both(macvlan(nil), ann(AnnoRDMAResourceInject, "rdma")))},
		{name: "chain plugins", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) {
			m.Spec.ChainCNIJsonData = []string{`{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}`}
		}))},

		// Structure.
		{name: "cniType unsupported", smc: smc("bridge", nil), want: []wantErr{notSupported("spec.cniType")}},
		{name: "macvlan sub-object missing", smc: smc("macvlan", nil), want: []wantErr{required("spec.macvlan")}},
		{name: "ipvlan sub-object missing", smc: smc("ipvlan", nil), want: []wantErr{required("spec.ipvlan")}},
		{name: "vlan sub-object missing", smc: smc("vlan", nil), want: []wantErr{required("spec.vlan")}},
		{name: "sriov sub-object missing", smc: smc("sriov", nil), want: []wantErr{required("spec.sriov")}},
		{name: "ib-sriov sub-object missing", smc: smc("ib-sriov", nil), want: []wantErr{required("spec.ibsriov")}},
		{name: "ipoib sub-object missing", smc: smc("ipoib", nil), want: []wantErr{required("spec.ipoib")}},
		{name: "ovs sub-object missing", smc: smc("ovs", nil), want: []wantErr{required("spec.ovs")}},
		{name: "other sub-object present", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}}
		})), want: []wantErr{forbidden("spec.ipvlan", "cniType macvlan only supports spec.macvlan; remove spec.ipvlan")}},
		{name: "customCNI with macvlan", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) { m.Spec.CustomCNIConfig = s(`{"type":"x"}`) })),
			want: []wantErr{forbidden("spec.customCNI", "only supports spec.macvlan")}},
		// kubectl apply of an ipvlan object over spiderpool-init's custom placeholder keeps customCNI "".
		{name: "empty customCNI with ipvlan", smc: smc("ipvlan", func(m *SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}}
			m.Spec.CustomCNIConfig = s("")
		})},
		{name: "sub-object with default custom", smc: smc("", macvlan(nil)), want: []wantErr{forbidden("spec.macvlan", "cniType custom only supports spec.customCNI")}},

		// macvlan / ipvlan / vlan rules.
		{name: "master empty", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.Master = nil })), want: []wantErr{required("spec.macvlan.master")}},
		{name: "master entry invalid", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.Master = []string{"ens192", "bad/name"} })),
			want: []wantErr{invalid("spec.macvlan.master[1]"), required("spec.macvlan.bond")}},
		{name: "two masters without bond", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.Master = []string{"ens192", "ens224"} })),
			want: []wantErr{required("spec.macvlan.bond")}},
		{name: "two masters with nameless bond", smc: smc("ipvlan", func(m *SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0", "eth1"}, Bond: &BondConfig{Mode: 1}}
		}), want: []wantErr{required("spec.ipvlan.bond.name")}},
		{name: "bond mode out of range", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.Bond = &BondConfig{Name: "bond0", Mode: 7} })),
			want: []wantErr{invalid("spec.macvlan.bond.mode")}},
		{name: "vlanID out of range", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.VlanID = i32(4095) })), want: []wantErr{invalid("spec.macvlan.vlanID")}},
		{name: "ipvlan vlanID negative", smc: smc("ipvlan", func(m *SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}, VlanID: i32(-1)}
		}), want: []wantErr{invalid("spec.ipvlan.vlanID")}},
		{name: "mtu negative", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.MTU = i32(-1) })), want: []wantErr{invalid("spec.macvlan.mtu")}},
		{name: "matchMasterSubnet on ipvlan", smc: smc("ipvlan", func(m *SpiderMultusConfig) {
			m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}, SpiderpoolConfigPools: &SpiderpoolPools{MatchMasterSubnet: yes}}
		}), want: []wantErr{forbidden("spec.ipvlan.ippools.matchMasterSubnet", "only supported by cniType sriov")}},
		{name: "matchMasterSubnet on macvlan", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) { c.SpiderpoolConfigPools = &SpiderpoolPools{MatchMasterSubnet: yes} })),
			want: []wantErr{forbidden("spec.macvlan.ippools.matchMasterSubnet")}},
		{name: "matchMasterSubnet on vlan", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.SpiderpoolConfigPools = &SpiderpoolPools{MatchMasterSubnet: yes} })),
			want: []wantErr{forbidden("spec.vlan.ippools.matchMasterSubnet")}},
		{name: "pool name invalid", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &SpiderpoolPools{IPv4IPPool: []string{"Pool_A"}}
		})),
			want: []wantErr{invalid("spec.macvlan.ippools.ipv4[0]", "not a valid SpiderIPPool name")}},
		{name: "pool pattern malformed", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &SpiderpoolPools{IPv6IPPool: []string{"ok", "v6-[a"}}
		})),
			want: []wantErr{invalid("spec.macvlan.ippools.ipv6[1]", "pattern")}},
		{name: "pool pattern with bad character", smc: smc("macvlan", macvlan(func(c *SpiderMacvlanCniConfig) {
			c.SpiderpoolConfigPools = &SpiderpoolPools{IPv4IPPool: []string{"A*"}}
		})),
			want: []wantErr{invalid("spec.macvlan.ippools.ipv4[0]", `'A'`)}},
		{name: "vlan manual without vlanID", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.VlanID = nil })), want: []wantErr{required("spec.vlan.vlanID")}},
		{name: "vlan auto with vlanID", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.VlanMode = s("auto") })), want: []wantErr{forbidden("spec.vlan.vlanID")}},
		{name: "vlan mode unsupported", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.VlanMode = s("trunk") })), want: []wantErr{notSupported("spec.vlan.vlanMode")}},
		{name: "vlan vlanID out of range", smc: smc("vlan", vlan(func(c *SpiderVlanCniConfig) { c.VlanID = i32(5000) })), want: []wantErr{invalid("spec.vlan.vlanID")}},

		// sriov, ib-sriov, ipoib.
		{name: "sriov resourceName missing", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.ResourceName = nil })), want: []wantErr{required("spec.sriov.resourceName")}},
		{name: "sriov resourceName empty", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.ResourceName = s("") })), want: []wantErr{required("spec.sriov.resourceName")}},
		{name: "sriov min above max", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.MinTxRateMbps, c.MaxTxRateMbps = n(200), n(100) })),
			want: []wantErr{invalid("spec.sriov.minTxRateMbps", "maxTxRateMbps (100)")}},
		{name: "sriov negative rate", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.MaxTxRateMbps = n(-1) })), want: []wantErr{invalid("spec.sriov.maxTxRateMbps")}},
		{name: "sriov mtu negative", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.MTU = i32(-5) })), want: []wantErr{invalid("spec.sriov.mtu")}},
		{name: "sriov vlanID out of range", smc: smc("sriov", sriov(func(c *SpiderSRIOVCniConfig) { c.VlanID = i32(4095) })), want: []wantErr{invalid("spec.sriov.vlanID")}},
		{name: "ib-sriov resourceName missing", smc: smc("ib-sriov", func(m *SpiderMultusConfig) { m.Spec.IbSriovConfig = &SpiderIBSriovCniConfig{} }),
			want: []wantErr{required("spec.ibsriov.resourceName")}},
		{name: "ib-sriov linkState unsupported", smc: smc("ib-sriov", func(m *SpiderMultusConfig) {
			m.Spec.IbSriovConfig = &SpiderIBSriovCniConfig{ResourceName: s("r"), LinkState: s("up")}
		}), want: []wantErr{notSupported("spec.ibsriov.linkState")}},
		{name: "ipoib master missing", smc: smc("ipoib", func(m *SpiderMultusConfig) { m.Spec.IpoibConfig = &SpiderIpoibCniConfig{} }),
			want: []wantErr{required("spec.ipoib.master")}},

		// ovs.
		{name: "ovs bridge missing", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) { c.BrName = "" })), want: []wantErr{required("spec.ovs.bridge")}},
		{name: "ovs vlan out of range", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) { c.VlanTag = i32(4095) })), want: []wantErr{invalid("spec.ovs.vlan")}},
		{name: "ovs trunk min above max", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) { c.Trunk = []*Trunk{{ID: u(1)}, {MinID: u(30), MaxID: u(20)}} })),
			want: []wantErr{invalid("spec.ovs.trunk[1].minID", "maxID (20)")}},
		{name: "ovs trunk id out of range", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) { c.Trunk = []*Trunk{{ID: u(4095)}} })), want: []wantErr{invalid("spec.ovs.trunk[0].id")}},
		{name: "ovs trunk null entry", smc: smc("ovs", ovs(func(c *SpiderOvsCniConfig) { c.Trunk = []*Trunk{nil} })), want: []wantErr{required("spec.ovs.trunk[0]")}},
		{name: "ovs rejects RDMA injection", smc: smc("ovs", both(ovs(nil), ann(AnnoRDMAResourceInject, "g"))),
			want: []wantErr{forbidden("metadata.annotations[cni.spidernet.io/rdma-resource-inject]", "cniType ovs does not support")}},

		// custom.
		{name: "custom rejects network injection", smc: smc("custom", ann(AnnoNetworkResourceInject, "g")),
			want: []wantErr{forbidden("metadata.annotations[cni.spidernet.io/network-resource-inject]", "cniType custom")}},
		{name: "customCNI not JSON", smc: smc("custom", func(m *SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("{") }), want: []wantErr{invalid("spec.customCNI", "JSON object")}},
		{name: "customCNI JSON but not an object", smc: smc("custom", func(m *SpiderMultusConfig) { m.Spec.CustomCNIConfig = s("[1]") }), want: []wantErr{invalid("spec.customCNI")}},

		// Shared parts.
		{name: "chain entry not JSON", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) { m.Spec.ChainCNIJsonData = []string{`{"type":"tuning"}`, "tuning"} })),
			want: []wantErr{invalid("spec.chainCNIJsonData[1]", "JSON object")}},
		{name: "chain entry without type", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) { m.Spec.ChainCNIJsonData = []string{`{"mtu":1400}`} })),
			want: []wantErr{invalid("spec.chainCNIJsonData[0]", `"type"`)}},
		{name: "cr-name invalid", smc: smc("macvlan", both(macvlan(nil), ann(AnnoMultusConfigName, "My_NAD"))),
			want: []wantErr{invalid("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "cni-version unsupported", smc: smc("macvlan", both(macvlan(nil), ann(AnnoMultusConfigCNIVersion, "0.2.0"))),
			want: []wantErr{notSupported("metadata.annotations[multus.spidernet.io/cni-version]")}},
		{name: "coordinator validated", smc: smc("macvlan", both(macvlan(nil), func(m *SpiderMultusConfig) {
			m.Spec.CoordinatorConfig = &CoordinatorSpec{PodRPFilter: n(5), PodMACPrefix: s("0b:00")}
		})), want: []wantErr{invalid("spec.coordinator.podMACPrefix"), notSupported("spec.coordinator.podRPFilter")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderMultusConfig(tc.smc), tc.want)
		})
	}
}

func TestValidateSpiderMultusConfigUpdate(t *testing.T) {
	withName := func(name string, anno ...string) *SpiderMultusConfig {
		m := smc("ipvlan", func(m *SpiderMultusConfig) { m.Spec.IPVlanConfig = &SpiderIPvlanCniConfig{Master: []string{"eth0"}} })
		m.Name = name
		if len(anno) > 0 {
			m.Annotations = map[string]string{AnnoMultusConfigName: anno[0]}
		}
		return m
	}
	tests := []struct {
		name     string
		new, old *SpiderMultusConfig
		want     []wantErr
	}{
		{name: "unchanged", new: withName("a", "nad"), old: withName("a", "nad")},
		{name: "no annotation", new: withName("a"), old: withName("a")},
		{name: "annotation added with the same name", new: withName("a", "a"), old: withName("a")},
		{name: "cr-name changed", new: withName("a", "nad2"), old: withName("a", "nad"),
			want: []wantErr{forbidden("metadata.annotations[multus.spidernet.io/cr-name]", `renamed from "nad" to "nad2"`)}},
		{name: "cr-name added", new: withName("a", "nad"), old: withName("a"), want: []wantErr{forbidden("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "cr-name removed", new: withName("a"), old: withName("a", "nad"), want: []wantErr{forbidden("metadata.annotations[multus.spidernet.io/cr-name]")}},
		{name: "new object validated too", new: withName("a", "Bad_Name"), old: withName("a", "Bad_Name"),
			want: []wantErr{invalid("metadata.annotations[multus.spidernet.io/cr-name]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateSpiderMultusConfigUpdate(tc.new, tc.old), tc.want)
		})
	}
}

// The manifests of the user guides (SPEC.md section 12), verbatim: each must be accepted after the
// mutating defaults, and the pools of one guide must not conflict with each other.
const (
	alibabaGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-eth0
  namespace: kube-system
spec:
  cniType: ipvlan
  enableCoordinator: true
  ipvlan:
    master:
    - eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-eth1
  namespace: kube-system
spec:
  cniType: ipvlan
  enableCoordinator: true
  ipvlan:
    master:
    - eth1
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-172
spec:
  default: true
  ips:
  - 172.31.199.185-172.31.199.189
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  nodeName:
  - master
  multusName:
  - kube-system/ipvlan-eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-192
spec:
  default: true
  ips:
  - 192.168.0.156-192.168.0.160
  subnet: 192.168.0.0/24
  gateway: 192.168.0.253
  nodeName:
  - master
  multusName:
  - kube-system/ipvlan-eth1
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker-172
spec:
  default: true
  ips:
  - 172.31.199.190-172.31.199.194
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  nodeName:
  - worker
  multusName:
  - kube-system/ipvlan-eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker-192
spec:
  default: true
  ips:
  - 192.168.0.161-192.168.0.165
  subnet: 192.168.0.0/24
  gateway: 192.168.0.253
  nodeName:
  - worker
  multusName:
  - kube-system/ipvlan-eth1
`
	awsGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens5
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens5
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens6
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens6
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens5
spec:
  subnet: 172.31.16.0/20
  ips:
    - 172.31.16.4-172.31.16.8
  gateway: 172.31.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens6
spec:
  subnet: 210.22.16.0/24
  ips:
    - 210.22.16.11-210.22.16.15
  gateway: 210.22.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens6"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens5
spec:
  subnet: 180.17.16.0/24
  ips:
    - 180.17.16.11-180.17.16.15
  gateway: 180.17.16.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens6
spec:
  subnet: 210.22.32.0/24
  ips:
    - 210.22.32.11-210.22.32.15
  gateway: 210.22.32.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens6"]
`
	calicoGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  disable: false
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  subnet: 10.6.0.0/16
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-ens192
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master:
    - ens192
    ippools:
      ipv4:
      - 10-6-v4
    vlanID: 0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  finalizers:
  - spiderpool.spidernet.io
  name: default
spec:
  detectGateway: false
  detectIPConflict: false
  hijackCIDR:
  - 169.254.0.0/16
  podRPFilter: 0
  hostRPFilter: 0
  hostRuleTable: 500
  mode: auto
  podCIDRType: calico
  podDefaultRouteNIC: ""
  podMACPrefix: ""
  tunePodRoutes: true
status:
  overlayPodCIDR:
  - 10.244.64.0/18
  phase: Synced
  serviceCIDR:
  - 10.233.0.0/18
`
)

type guideObjects struct {
	pools        []SpiderIPPool
	smcs         []SpiderMultusConfig
	coordinators []SpiderCoordinator
}

// decodeGuide splits a multi-document manifest and decodes each document by kind, rejecting unknown
// fields so that a field the types lack fails the test instead of vanishing.
func decodeGuide(t *testing.T, manifest string) guideObjects {
	t.Helper()
	var out guideObjects
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		strict := func(v any) {
			d := json.NewDecoder(strings.NewReader(string(raw)))
			d.DisallowUnknownFields()
			if err := d.Decode(v); err != nil {
				t.Fatalf("decode %s: %v", meta.Kind, err)
			}
		}
		switch meta.Kind {
		case "SpiderIPPool":
			var p SpiderIPPool
			strict(&p)
			out.pools = append(out.pools, p)
		case "SpiderMultusConfig":
			var m SpiderMultusConfig
			strict(&m)
			out.smcs = append(out.smcs, m)
		case "SpiderCoordinator":
			var c SpiderCoordinator
			strict(&c)
			out.coordinators = append(out.coordinators, c)
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
	}
	return out
}

func TestGuideManifests(t *testing.T) {
	for _, g := range []struct {
		name                      string
		manifest                  string
		pools, smcs, coordinators int
	}{
		{"alibaba", alibabaGuide, 4, 2, 0},
		{"aws", awsGuide, 4, 2, 0},
		{"calico-overlay", calicoGuide, 1, 1, 1},
	} {
		t.Run(g.name, func(t *testing.T) {
			objs := decodeGuide(t, g.manifest)
			if len(objs.pools) != g.pools || len(objs.smcs) != g.smcs || len(objs.coordinators) != g.coordinators {
				t.Fatalf("decoded %d pools, %d SMCs, %d coordinators", len(objs.pools), len(objs.smcs), len(objs.coordinators))
			}
			for i := range objs.pools {
				p := &objs.pools[i]
				// Raw manifests are valid too, not only defaulted ones.
				checkErrs(t, ValidateSpiderIPPool(p, true, false), nil)
				DefaultSpiderIPPool(p)
				checkErrs(t, ValidateSpiderIPPool(p, true, false), nil)
				if p.Spec.IPVersion == nil || *p.Spec.IPVersion != 4 {
					t.Errorf("pool %s: ipVersion not derived", p.Name)
				}
			}
			// Admitted in manifest order: each pool against the ones before it.
			for i := range objs.pools {
				checkErrs(t, ValidateIPPoolOverlap(&objs.pools[i], objs.pools[:i]), nil)
			}
			for i := range objs.smcs {
				m := &objs.smcs[i]
				checkErrs(t, ValidateSpiderMultusConfig(m), nil)
				DefaultSpiderMultusConfig(m)
				checkErrs(t, ValidateSpiderMultusConfig(m), nil)
			}
			for i := range objs.coordinators {
				c := &objs.coordinators[i]
				checkErrs(t, ValidateSpiderCoordinator(c), nil)
				DefaultSpiderCoordinator(c)
				checkErrs(t, ValidateSpiderCoordinator(c), nil)
			}
		})
	}
}

// FuzzValidateSpiderIPPool builds pools from arbitrary strings. Validation must never panic, and a
// pool it accepts must really have every ips, excludeIPs and gateway address inside its subnet;
// defaulting an accepted pool must keep it accepted and hold the same addresses.
func FuzzValidateSpiderIPPool(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.212.100-10.6.212.200,10.6.0.5", "10.6.0.5", "10.6.0.1", "10.7.0.0/16", "10.6.0.1", int64(0))
	f.Add("172.31.192.0/20", "172.31.199.185-172.31.199.189", "", "172.31.207.253", "", "", int64(4))
	f.Add("fd00::/64", "fd00::1-fd00::ff", "fd00::1", "fd00::1", "fd01::/64", "fd00::2", int64(6))
	f.Add("10.6.1.0/16", "10.7.0.1", "x", "", "0.0.0.0/0", "1.1.1.1", int64(5))
	f.Add("::/0", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "::1", "::/0", "::", int64(6))
	f.Add("10.6.0.0/16", "10.6.0.2-10.6.0.1,::ffff:10.6.0.1,10.6.0.1%eth0", " 10.6.0.1", "10.6.0.1 ", "10.6.0.0/16", "10.6.0.0", int64(4))
	f.Fuzz(func(t *testing.T, subnet, ips, excludeIPs, gateway, routeDst, routeGw string, version int64) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		b := makePool("fuzz", subnet).IPs(split(ips)...).Exclude(split(excludeIPs)...)
		if version != 0 {
			b.Version(version)
		}
		if gateway != "" {
			b.Gateway(gateway)
		}
		if routeDst != "" || routeGw != "" {
			b.Route(routeDst, routeGw)
		}
		pool := b.Obj()
		if errs := ValidateSpiderIPPool(pool, true, true); len(errs) != 0 {
			_ = ValidateIPPoolOverlap(pool, []SpiderIPPool{*pool}) // must not panic either
			return
		}

		prefix, err := ip.ParsePrefixLenient(pool.Spec.Subnet)
		if err != nil {
			t.Fatalf("accepted subnet %q does not parse: %v", pool.Spec.Subnet, err)
		}
		inside := func(what string, entries []string) ip.Set {
			for _, e := range entries {
				r, err := ip.ParseRange(e)
				if err != nil {
					t.Fatalf("accepted %s entry %q does not parse: %v", what, e, err)
				}
				if !prefix.Contains(r.First) || !prefix.Contains(r.Last) {
					t.Fatalf("accepted %s entry %q is outside subnet %s", what, e, prefix)
				}
			}
			set, err := ip.ParseSet(entries, ip.Version(prefix.Addr()))
			if err != nil {
				t.Fatalf("accepted %s %q do not form a set: %v", what, entries, err)
			}
			return set
		}
		inSet, exSet := inside("ips", pool.Spec.IPs), inside("excludeIPs", pool.Spec.ExcludeIPs)
		if pool.Spec.Gateway != nil {
			gw, err := ip.ParseAddr(*pool.Spec.Gateway)
			if err != nil || !prefix.Contains(gw) {
				t.Fatalf("accepted gateway %q is not an address inside %s", *pool.Spec.Gateway, prefix)
			}
			if inSet.Contains(gw) && !exSet.Contains(gw) {
				t.Fatalf("accepted gateway %s is a usable IP", gw)
			}
		}

		DefaultSpiderIPPool(pool)
		if errs := ValidateSpiderIPPool(pool, true, true); len(errs) != 0 {
			t.Fatalf("defaulting broke an accepted pool: %v", errs)
		}
		if want := ip.FormatPrefix(prefix); pool.Spec.Subnet != want {
			t.Fatalf("defaulting stored subnet %q, want the canonical %q", pool.Spec.Subnet, want)
		}
		for i, r := range pool.Spec.Routes {
			if p, err := r.DstPrefix(); err != nil || ip.FormatPrefix(p) != r.Dst {
				t.Fatalf("defaulting stored routes[%d].dst %q, not canonical", i, r.Dst)
			}
		}
		if got := inside("ips", pool.Spec.IPs); !got.Equal(inSet) {
			t.Fatalf("defaulting changed ips from %s to %s", inSet, got)
		}
		if got := inside("excludeIPs", pool.Spec.ExcludeIPs); !got.Equal(exSet) {
			t.Fatalf("defaulting changed excludeIPs from %s to %s", exSet, got)
		}
	})
}
