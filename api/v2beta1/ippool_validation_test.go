package v2beta1_test

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestValidateSpiderIPPool(t *testing.T) {
	v4 := func(opts ...build.Option) *v2beta1.SpiderIPPool {
		return build.Pool("p", "10.6.0.0/16", append([]build.Option{build.Version(4)}, opts...)...)
	}
	v6 := func(opts ...build.Option) *v2beta1.SpiderIPPool {
		return build.Pool("p6", "fd00:10:6::/64", append([]build.Option{build.Version(6)}, opts...)...)
	}
	autoAffinity := build.AutoPoolAffinity("Deployment", "default", "nginx")

	tests := []struct {
		name     string
		pool     *v2beta1.SpiderIPPool
		disable4 bool
		disable6 bool
		want     field.ErrorList
	}{
		// Accepted.
		{name: "minimal IPv4 pool", pool: v4()},
		{name: "ipVersion derived from subnet", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10"))},
		{name: "full IPv4 pool", pool: v4(build.IPs("10.6.212.100-10.6.212.200", "10.6.0.5"), build.ExcludeIPs("10.6.212.150"),
			build.Gateway("10.6.0.1"), build.Route("10.7.0.0/16", "10.6.0.1"), build.Route("10.8.0.0/16", "10.6.0.2"),
			build.NodeName("master", "worker-1.example.com"), build.NamespaceName("default", "kube-system"),
			build.MultusName("kube-system/ipvlan-eth0", "macvlan-ens192"), build.PodAffinity(build.Selector("app", "nginx")))},
		{name: "IPv6 pool with gateway excluded", pool: v6(build.IPs("fd00:10:6::1-fd00:10:6::100"), build.ExcludeIPs("fd00:10:6::1"),
			build.Gateway("fd00:10:6::1"), build.Route("fd00:20::/64", "fd00:10:6::1"))},
		{name: "gateway outside ips", pool: v4(build.IPs("10.6.212.100-10.6.212.200"), build.Gateway("10.6.0.1"))},
		{name: "auto-created pool with the app labels", pool: v4(build.Label(v2beta1.LabelOwnerApplicationName, "nginx"), build.PodAffinity(autoAffinity))},
		{name: "valid allocatedIPs", pool: v4(build.IPs("10.6.0.10"), build.Allocated("10.6.0.10", "default/nginx", "uid-10.6.0.10"))},

		// ipVersion and family.
		{name: "ipVersion not 4 or 6", pool: build.Pool("p", "10.6.0.0/16", build.Version(5)), want: field.ErrorList{notSupported("spec.ipVersion")}},
		{name: "IPv4 disabled", pool: v4(), disable4: true, want: field.ErrorList{forbidden("spec.ipVersion", "IPv4 is disabled")}},
		{name: "IPv6 disabled", pool: v6(), disable6: true, want: field.ErrorList{forbidden("spec.ipVersion", "IPv6 is disabled")}},
		{name: "IPv6 disabled, derived family", pool: build.Pool("p", "fd00::/64", build.NoVersion()), disable6: true,
			want: field.ErrorList{forbidden("spec.ipVersion", "IPv6 is disabled")}},

		// subnet.
		{name: "subnet required", pool: build.Pool("p", "", build.Version(4)), want: field.ErrorList{required("spec.subnet")}},
		{name: "subnet not a CIDR", pool: build.Pool("p", "10.6.0.0", build.Version(4)), want: field.ErrorList{invalid("spec.subnet")}},
		// Any valid CIDR is accepted, as upstream does (its multi-interface and SpiderSubnet
		// examples); the checks that build on it use the masked prefix.
		{name: "subnet with host bits", pool: build.Pool("p", "10.6.0.1/16", build.Version(4), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"))},
		{name: "IPv6 subnet with host bits and a long spelling", pool: build.Pool("p", "2002::ac0f:0/64", build.NoVersion(),
			build.IPs("2002::ac0f:10"), build.Route("2003:0::/64", "2002::1"))},
		{name: "ips outside the masked subnet", pool: build.Pool("p", "10.6.1.0/24", build.Version(4), build.IPs("10.6.1.1", "10.6.2.1")),
			want: field.ErrorList{invalid("spec.ips[1]", "is not within spec.subnet 10.6.1.0/24")}},
		{name: "host bits do not widen the family check", pool: build.Pool("p", "10.6.0.1/16", build.Version(6)),
			want: field.ErrorList{invalid("spec.subnet", "is an IPv4 CIDR, but spec.ipVersion is 6")}},
		{name: "subnet family differs from ipVersion", pool: build.Pool("p", "10.6.0.0/16", build.Version(6)),
			want: field.ErrorList{invalid("spec.subnet", "is an IPv4 CIDR, but spec.ipVersion is 6")}},

		// ips and excludeIPs.
		{name: "ips entry not an IP", pool: v4(build.IPs("10.6.0.1", "10.6.0.x")), want: field.ErrorList{invalid("spec.ips[1]")}},
		{name: "ips range reversed", pool: v4(build.IPs("10.6.0.9-10.6.0.1")),
			want: field.ErrorList{invalid("spec.ips[0]", `first address is after last address; want an IP address or a range "first-last"`)}},
		{name: "ips CIDR not allowed", pool: v4(build.IPs("10.6.0.0/24")),
			want: field.ErrorList{invalid("spec.ips[0]", `CIDR notation is not allowed here; want an IP address or a range "first-last"`)}},
		{name: "ips of the other family", pool: v4(build.IPs("fd00::1")), want: field.ErrorList{invalid("spec.ips[0]", "is IPv6, but the family is IPv4")}},
		{name: "ips outside subnet", pool: v4(build.IPs("10.6.0.1", "10.6.255.250-10.7.0.5")),
			want: field.ErrorList{invalid("spec.ips[1]", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "excludeIPs outside subnet", pool: v4(build.IPs("10.6.0.1"), build.ExcludeIPs("10.9.0.1")),
			want: field.ErrorList{invalid("spec.excludeIPs[0]", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "excludeIPs not an IP", pool: v4(build.ExcludeIPs("")),
			want: field.ErrorList{invalid("spec.excludeIPs[0]", `empty string; want an IP address or a range "first-last"`)}},

		// gateway.
		{name: "gateway not an IP", pool: v4(build.Gateway("10.6.0.256")), want: field.ErrorList{invalid("spec.gateway")}},
		{name: "gateway empty", pool: v4(build.Gateway("")), want: field.ErrorList{required("spec.gateway")}},
		{name: "gateway outside subnet", pool: v4(build.Gateway("10.7.0.1")),
			want: field.ErrorList{invalid("spec.gateway", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "gateway of other family", pool: v4(build.Gateway("fd00::1")),
			want: field.ErrorList{invalid("spec.gateway", "is an IPv6 address, but the family is IPv4")}},
		{name: "gateway inside ips", pool: v4(build.IPs("10.6.0.100", "10.6.0.1-10.6.0.10"), build.Gateway("10.6.0.1")),
			want: field.ErrorList{invalid("spec.ips[1]", "contains spec.gateway 10.6.0.1; add the gateway to spec.excludeIPs or remove it from spec.ips")}},
		{name: "gateway inside ips but excluded", pool: v4(build.IPs("10.6.0.1-10.6.0.10"), build.ExcludeIPs("10.6.0.1"), build.Gateway("10.6.0.1"))},

		// routes.
		{name: "route dst not a CIDR", pool: v4(build.Route("10.7.0.0", "10.6.0.1")), want: field.ErrorList{invalid("spec.routes[0].dst")}},
		{name: "route dst empty", pool: v4(build.Route("", "10.6.0.1")), want: field.ErrorList{required("spec.routes[0].dst")}},
		{name: "route dst with host bits", pool: v4(build.Route("10.7.1.0/16", "10.6.0.1"))},
		{name: "route dsts equal once masked", pool: v4(build.Route("10.7.0.0/16", "10.6.0.1"), build.Route("10.7.1.0/16", "10.6.0.2")),
			want: field.ErrorList{duplicate("spec.routes[1].dst")}},
		{name: "default route with host bits", pool: v4(build.Route("10.7.1.0/0", "10.6.0.1")),
			want: field.ErrorList{invalid("spec.routes[0].dst", "the default route is not allowed here; set spec.gateway instead")}},
		{name: "route dst of other family", pool: v4(build.Route("fd00::/64", "10.6.0.1")),
			want: field.ErrorList{invalid("spec.routes[0].dst", "is an IPv6 CIDR, but the family is IPv4")}},
		{name: "IPv4 default route", pool: v4(build.Route("0.0.0.0/0", "10.6.0.1")),
			want: field.ErrorList{invalid("spec.routes[0].dst", "the default route is not allowed here; set spec.gateway instead")}},
		{name: "IPv6 default route", pool: v6(build.Route("::/0", "fd00:10:6::1")),
			want: field.ErrorList{invalid("spec.routes[0].dst", "the default route is not allowed here; set spec.gateway instead")}},
		{name: "duplicate route dst", pool: v4(build.Route("10.7.0.0/16", "10.6.0.1"), build.Route("10.8.0.0/16", "10.6.0.1"),
			build.Route("10.7.0.0/16", "10.6.0.2")),
			want: field.ErrorList{duplicate("spec.routes[2].dst")}},
		{name: "route gw outside subnet", pool: v4(build.Route("10.7.0.0/16", "10.7.0.1")),
			want: field.ErrorList{invalid("spec.routes[0].gw", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "route gw empty", pool: v4(build.Route("10.7.0.0/16", "")), want: field.ErrorList{required("spec.routes[0].gw")}},

		// affinities and names.
		{name: "empty podAffinity", pool: v4(build.PodAffinity(&metav1.LabelSelector{})),
			want: field.ErrorList{invalid("spec.podAffinity", "an empty podAffinity matches every Pod; remove it or add matchLabels/matchExpressions")}},
		{name: "invalid podAffinity label", pool: v4(build.PodAffinity(build.Selector("bad key!", "v"))),
			want: field.ErrorList{invalid("spec.podAffinity.matchLabels")}},
		{name: "invalid podAffinity operator",
			pool: v4(build.PodAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}})),
			want: field.ErrorList{invalid("spec.podAffinity.matchExpressions[0].operator")}},
		{name: "auto-created pool with extra label", pool: v4(build.Label(v2beta1.LabelOwnerApplicationName, "nginx"),
			build.PodAffinity(build.Selector(v2beta1.AutoPoolPodAffinityAppName, "nginx", "extra", "x"))),
			want: field.ErrorList{forbidden("spec.podAffinity.matchLabels[extra]",
				"an auto-created SpiderIPPool may only carry the ipam.spidernet.io/app-* matchLabels")}},
		{name: "auto-created pool with matchExpressions", pool: v4(build.Label(v2beta1.LabelOwnerApplicationName, "nginx"), build.PodAffinity(&metav1.LabelSelector{
			MatchLabels: autoAffinity.MatchLabels, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpExists}}})),
			want: field.ErrorList{forbidden("spec.podAffinity.matchExpressions")}},
		{name: "invalid nodeAffinity", pool: v4(build.NodeAffinity(build.Selector("k", "bad value!"))),
			want: field.ErrorList{invalid("spec.nodeAffinity.matchLabels")}},
		{name: "invalid namespaceAffinity", pool: v4(build.NamespaceAffinity(&metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpIn}}})),
			want: field.ErrorList{required("spec.namespaceAffinity.matchExpressions[0].values")}},
		{name: "empty nodeAffinity allowed", pool: v4(build.NodeAffinity(&metav1.LabelSelector{}))},
		{name: "invalid nodeName", pool: v4(build.NodeName("master", "Node_1")),
			want: field.ErrorList{invalid("spec.nodeName[1]", "not a valid node name: "+subdomainMsg)}},
		{name: "invalid namespaceName", pool: v4(build.NamespaceName("a.b")),
			want: field.ErrorList{invalid("spec.namespaceName[0]", "not a valid namespace name: must not contain dots")}},
		{name: "multusName with two slashes", pool: v4(build.MultusName("a/b/c")),
			want: field.ErrorList{invalid("spec.multusName[0]", `want "name" or "namespace/name" of a NetworkAttachmentDefinition; name: `+subdomainMsg)}},
		{name: "multusName with empty name", pool: v4(build.MultusName("ns/")), want: field.ErrorList{invalid("spec.multusName[0]")}},
		{name: "multusName with bad namespace", pool: v4(build.MultusName("ok", "Bad_NS/x")),
			want: field.ErrorList{invalid("spec.multusName[1]", `want "name" or "namespace/name" of a NetworkAttachmentDefinition; namespace: `+labelMsg)}},

		// status.
		{name: "allocatedIPs not JSON", pool: v4(build.AllocatedRaw("{")),
			want: field.ErrorList{invalid("status.allocatedIPs",
				`must be a JSON object {"<ip>":{"pod":"<namespace>/<name>","podUid":"<uid>"}}: decode status.allocatedIPs: unexpected end of JSON input`)}},
		{name: "allocatedIPs key not an IP", pool: v4(build.AllocatedRaw(`{"x":{"pod":"a/b","podUid":"u"}}`)),
			want: field.ErrorList{invalid("status.allocatedIPs[x]", "key is not an IP address: invalid IP address: unable to parse IP")}},

		// Several problems at once are all reported, in field order.
		{name: "several errors", pool: v4(build.IPs("bad", "10.9.0.1"), build.Gateway("10.9.0.1"), build.Route("0.0.0.0/0", "10.6.0.1")),
			want: field.ErrorList{
				invalid("spec.ips[0]"), invalid("spec.ips[1]"), invalid("spec.gateway"), invalid("spec.routes[0].dst"),
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderIPPool(tc.pool, !tc.disable4, !tc.disable6), tc.want)
		})
	}
}

func TestValidateSpiderIPPoolUpdate(t *testing.T) {
	// base holds 10.6.0.10 and 10.6.0.15 for pods default/a and default/b; opts change the rest.
	base := func(opts ...build.Option) *v2beta1.SpiderIPPool {
		return build.Pool("p", "10.6.0.0/16", append([]build.Option{build.Version(4), build.IPs("10.6.0.10-10.6.0.20"),
			build.Allocated("10.6.0.10", "default/a", "uid-10.6.0.10"), build.Allocated("10.6.0.15", "default/b", "uid-10.6.0.15")}, opts...)...)
	}
	manyOpts := []build.Option{build.Version(4), build.IPs("10.6.1.0-10.6.1.255")}
	for i := range 12 {
		manyOpts = append(manyOpts, build.Allocated(fmt.Sprintf("10.6.1.%d", i), fmt.Sprintf("default/pod-%d", i), fmt.Sprintf("uid-10.6.1.%d", i)))
	}
	many := build.Pool("p", "10.6.0.0/16", manyOpts...)
	manyRemoved := field.ErrorList{}
	for i := range v2beta1.MaxInUseErrors {
		manyRemoved = append(manyRemoved, forbidden("spec.ips", fmt.Sprintf(
			"IP 10.6.1.%d is allocated to Pod default/pod-%d (uid uid-10.6.1.%d) and cannot be removed from spec.ips; the usable IPs are spec.ips minus spec.excludeIPs", i, i, i)))
	}
	manyRemoved = append(manyRemoved, forbidden("spec.ips", "2 more allocated IPs would be removed"))

	tests := []struct {
		name     string
		new, old *v2beta1.SpiderIPPool
		disable4 bool
		want     field.ErrorList
	}{
		{name: "unchanged", new: base(), old: base()},
		{name: "IPs added", new: base(build.IPs("10.6.0.10-10.6.0.30")), old: base()},
		{name: "free IP removed", new: base(build.IPs("10.6.0.10-10.6.0.15")), old: base()},
		{name: "free IP excluded", new: base(build.ExcludeIPs("10.6.0.11")), old: base()},
		{name: "ipVersion nil on new side is not a change", new: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20")), old: base()},
		{name: "ipVersion changed", new: base(build.Version(6)), old: base(), want: field.ErrorList{
			forbidden("spec.ipVersion", "is not changeable (was 4)"), invalid("spec.subnet"),
		}},
		{name: "subnet changed", new: build.Pool("p", "10.6.0.0/24", build.Version(4), build.IPs("10.6.0.10-10.6.0.20")), old: base(),
			want: field.ErrorList{forbidden("spec.subnet", "is not changeable (was 10.6.0.0/16)")}},
		// The webhook turns a re-sent "10.6.0.1/16" into "10.6.0.0/16" while the stored object may
		// still hold the spelling written past it: another spelling of one network is no change.
		{name: "subnet respelt", new: base(), old: build.Pool("p", "10.6.0.1/16", build.Version(4), build.IPs("10.6.0.10-10.6.0.20"))},
		{name: "subnet with host bits changed", new: build.Pool("p", "10.7.0.1/16", build.Version(4)), old: build.Pool("p", "10.6.0.1/16", build.Version(4)),
			want: field.ErrorList{forbidden("spec.subnet", "is not changeable (was 10.6.0.1/16)")}},
		{name: "allocated IP removed from ips", new: base(build.IPs("10.6.0.16-10.6.0.20", "10.6.0.10")), old: base(),
			want: field.ErrorList{forbidden("spec.ips",
				"IP 10.6.0.15 is allocated to Pod default/b (uid uid-10.6.0.15) and cannot be removed from spec.ips; the usable IPs are spec.ips minus spec.excludeIPs")}},
		{name: "allocated IP added to excludeIPs", new: base(build.ExcludeIPs("10.6.0.10")), old: base(),
			want: field.ErrorList{forbidden("spec.excludeIPs",
				"IP 10.6.0.10 is allocated to Pod default/a (uid uid-10.6.0.10) and cannot be added to spec.excludeIPs; the usable IPs are spec.ips minus spec.excludeIPs")}},
		{name: "errors are capped", new: build.Pool("p", "10.6.0.0/16", build.Version(4)), old: many, want: manyRemoved},
		{name: "stale record outside the old usable set does not block", new: base(build.IPs("10.6.0.10-10.6.0.15")),
			old: build.Pool("p", "10.6.0.0/16", build.Version(4), build.IPs("10.6.0.10-10.6.0.15"),
				build.Allocated("10.6.0.10", "default/a", "uid-10.6.0.10"), build.Allocated("10.6.0.99", "default/stale", "uid-10.6.0.99"))},
		{name: "family disabled after creation still allows updates", new: base(), old: base(), disable4: true},
		{name: "old status corrupt", new: base(build.IPs("10.6.0.10")), old: base(build.AllocatedRaw("not json")),
			want: field.ErrorList{internal("status.allocatedIPs")}},
		{name: "local errors of the new object", new: base(build.IPs("10.6.0.10-10.6.0.20", "x")), old: base(),
			want: field.ErrorList{invalid("spec.ips[1]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderIPPoolUpdate(tc.new, tc.old, !tc.disable4, true), tc.want)
		})
	}
}

func TestValidateIPPoolOverlap(t *testing.T) {
	others := []v2beta1.SpiderIPPool{
		*build.Pool("same-subnet", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20"), build.ExcludeIPs("10.6.0.15")),
		*build.Pool("narrow", "10.7.1.0/24", build.NoVersion()),
		*build.Pool("v6", "fd00::/64", build.NoVersion(), build.IPs("fd00::1-fd00::ff")),
		*build.Pool("broken", "not-a-cidr", build.NoVersion()),
	}
	tests := []struct {
		name string
		pool *v2beta1.SpiderIPPool
		want field.ErrorList
	}{
		{name: "disjoint subnet", pool: build.Pool("p", "10.8.0.0/16", build.NoVersion(), build.IPs("10.8.0.1"))},
		{name: "same subnet, disjoint IPs", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.21-10.6.0.30"))},
		{name: "same subnet, shared IPs", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.18-10.6.0.25")),
			want: field.ErrorList{forbidden("spec.ips",
				`IPs 10.6.0.18-10.6.0.20 are also usable in SpiderIPPool "same-subnet" of the same subnet; pools of one subnet must not share IPs (usable IPs are spec.ips minus spec.excludeIPs)`)}},
		{name: "same subnet, shared IP excluded by the other pool", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.15"))},
		{name: "same subnet, shared IP excluded here", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.20-10.6.0.21"),
			build.ExcludeIPs("10.6.0.20"))},
		{name: "subnet contains another pool's subnet", pool: build.Pool("p", "10.7.0.0/16", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet",
				`overlaps with spec.subnet 10.7.1.0/24 of SpiderIPPool "narrow"; pools must use the same subnet or disjoint ones`)}},
		{name: "subnet inside another pool's subnet", pool: build.Pool("p", "10.6.3.0/24", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet",
				`overlaps with spec.subnet 10.6.0.0/16 of SpiderIPPool "same-subnet"; pools must use the same subnet or disjoint ones`)}},
		{name: "other family is not compared", pool: build.Pool("p", "fd00::/48", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet",
				`overlaps with spec.subnet fd00::/64 of SpiderIPPool "v6"; pools must use the same subnet or disjoint ones`)}},
		{name: "itself is skipped", pool: build.Pool("same-subnet", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20"))},
		{name: "invalid pool reports nothing here", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("x"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateIPPoolOverlap(tc.pool, others), tc.want)
		})
	}
}

func TestValidatePoolInSubnet(t *testing.T) {
	subnet := build.Subnet("s", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.1-10.6.0.100"), build.ExcludeIPs("10.6.0.50"))
	tests := []struct {
		name string
		pool *v2beta1.SpiderIPPool
		want field.ErrorList
	}{
		{name: "inside", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20"))},
		{name: "only excluded part outside", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.40-10.6.0.60"),
			build.ExcludeIPs("10.6.0.50"))},
		{name: "outside the subnet's IPs", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.90-10.6.0.110")),
			want: field.ErrorList{forbidden("spec.ips",
				`IPs 10.6.0.101-10.6.0.110 are not usable IPs of SpiderSubnet "s", which controls subnet 10.6.0.0/16; add them to the SpiderSubnet first`)}},
		{name: "on an IP the subnet excludes", pool: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.50")),
			want: field.ErrorList{forbidden("spec.ips",
				`IPs 10.6.0.50 are not usable IPs of SpiderSubnet "s", which controls subnet 10.6.0.0/16; add them to the SpiderSubnet first`)}},
		{name: "different subnet is not controlled", pool: build.Pool("p", "10.7.0.0/16", build.NoVersion(), build.IPs("10.7.0.1"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidatePoolInSubnet(tc.pool, subnet), tc.want)
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
		opts := []build.Option{build.NoVersion(), build.IPs(split(ips)...), build.ExcludeIPs(split(excludeIPs)...)}
		if version != 0 {
			opts = append(opts, build.Version(version))
		}
		if gateway != "" {
			opts = append(opts, build.Gateway(gateway))
		}
		if routeDst != "" || routeGw != "" {
			opts = append(opts, build.Route(routeDst, routeGw))
		}
		pool := build.Pool("fuzz", subnet, opts...)
		if errs := v2beta1.ValidateSpiderIPPool(pool, true, true); len(errs) != 0 {
			_ = v2beta1.ValidateIPPoolOverlap(pool, []v2beta1.SpiderIPPool{*pool}) // must not panic either
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

		v2beta1.DefaultSpiderIPPool(pool)
		if errs := v2beta1.ValidateSpiderIPPool(pool, true, true); len(errs) != 0 {
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
