package v2beta1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestValidateSpiderSubnet(t *testing.T) {
	v4 := func(opts ...build.Option) *v2beta1.SpiderSubnet {
		return build.Subnet("s", "10.6.0.0/16", append([]build.Option{build.Version(4)}, opts...)...)
	}
	tests := []struct {
		name     string
		subnet   *v2beta1.SpiderSubnet
		disable6 bool
		want     field.ErrorList
	}{
		{name: "full subnet", subnet: v4(build.IPs("10.6.0.2-10.6.255.254"), build.ExcludeIPs("10.6.0.100"), build.Gateway("10.6.0.1"),
			build.Route("10.7.0.0/16", "10.6.0.1"))},
		{name: "derived IPv6", subnet: build.Subnet("s", "fd00::/64", build.NoVersion(), build.IPs("fd00::10-fd00::20"))},
		{name: "controlled pools decode", subnet: v4(build.IPs("10.6.0.2-10.6.0.9"), build.Controlled("p", "10.6.0.2-10.6.0.3"))},
		{name: "ipVersion not supported", subnet: v4(build.Version(7)), want: field.ErrorList{notSupported("spec.ipVersion")}},
		{name: "IPv6 disabled", subnet: build.Subnet("s", "fd00::/64", build.NoVersion()), disable6: true,
			want: field.ErrorList{forbidden("spec.ipVersion", "IPv6 is disabled")}},
		{name: "subnet with host bits", subnet: build.Subnet("s", "10.6.0.1/16", build.NoVersion(), build.IPs("10.6.0.2-10.6.0.9"))},
		{name: "IPv6 subnet of upstream's example", subnet: build.Subnet("s", "2002::ac0f:0/64", build.NoVersion(),
			build.IPs("2002::ac0f:2-2002::ac0f:9"), build.Gateway("2002::ac0f:1"))},
		{name: "subnet not a CIDR", subnet: build.Subnet("s", "2002::ac0f:0", build.NoVersion()), want: field.ErrorList{invalid("spec.subnet")}},
		{name: "ips outside", subnet: v4(build.IPs("10.7.0.1")), want: field.ErrorList{invalid("spec.ips[0]", "is not within spec.subnet 10.6.0.0/16")}},
		{name: "excludeIPs invalid", subnet: v4(build.ExcludeIPs("10.6.0.1-")), want: field.ErrorList{invalid("spec.excludeIPs[0]")}},
		{name: "gateway in ips", subnet: v4(build.IPs("10.6.0.1-10.6.0.9"), build.Gateway("10.6.0.1")),
			want: field.ErrorList{invalid("spec.ips[0]", "contains spec.gateway 10.6.0.1; add the gateway to spec.excludeIPs or remove it from spec.ips")}},
		{name: "gateway outside", subnet: v4(build.Gateway("10.5.0.1")), want: field.ErrorList{invalid("spec.gateway")}},
		{name: "default route", subnet: v4(build.Route("0.0.0.0/0", "10.6.0.1")), want: field.ErrorList{invalid("spec.routes[0].dst")}},
		{name: "duplicate route", subnet: v4(build.Route("10.7.0.0/16", "10.6.0.1"), build.Route("10.7.0.0/16", "10.6.0.1")),
			want: field.ErrorList{duplicate("spec.routes[1].dst")}},
		{name: "route gw outside", subnet: v4(build.Route("10.7.0.0/16", "10.8.0.1")), want: field.ErrorList{invalid("spec.routes[0].gw")}},
		{name: "controlledIPPools not JSON", subnet: v4(build.ControlledRaw("[")), want: field.ErrorList{invalid("status.controlledIPPools")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderSubnet(tc.subnet, true, !tc.disable6), tc.want)
		})
	}
}

func TestValidateSpiderSubnetUpdate(t *testing.T) {
	base := func(opts ...build.Option) *v2beta1.SpiderSubnet {
		return build.Subnet("s", "10.6.0.0/16", append([]build.Option{build.Version(4), build.IPs("10.6.0.1-10.6.0.100"),
			build.Controlled("pool-a", "10.6.0.10-10.6.0.20"), build.Controlled("pool-b", "10.6.0.90-10.6.0.100")}, opts...)...)
	}
	tests := []struct {
		name     string
		new, old *v2beta1.SpiderSubnet
		want     field.ErrorList
	}{
		{name: "unchanged", new: base(), old: base()},
		{name: "unused IPs removed", new: base(build.IPs("10.6.0.10-10.6.0.20", "10.6.0.90-10.6.0.100")), old: base()},
		{name: "subnet changed", new: build.Subnet("s", "10.6.0.0/24", build.Version(4)), old: base(),
			want: field.ErrorList{forbidden("spec.subnet", "is not changeable (was 10.6.0.0/16)")}},
		{name: "subnet respelt", new: build.Subnet("s", "2002::/64", build.NoVersion()), old: build.Subnet("s", "2002::ac0f:0/64", build.NoVersion())},
		{name: "ipVersion changed", new: base(build.Version(6)), old: base(),
			want: field.ErrorList{forbidden("spec.ipVersion", "is not changeable (was 4)"), invalid("spec.subnet")}},
		{name: "IPs of a controlled pool removed", new: base(build.IPs("10.6.0.1-10.6.0.95")), old: base(),
			want: field.ErrorList{forbidden("spec.ips", `IPs 10.6.0.96-10.6.0.100 are used by SpiderIPPool "pool-b" and cannot be removed from spec.ips`)}},
		{name: "IPs of a controlled pool excluded", new: base(build.ExcludeIPs("10.6.0.12", "10.6.0.95")), old: base(), want: field.ErrorList{
			forbidden("spec.excludeIPs", `IPs 10.6.0.12 are used by SpiderIPPool "pool-a" and cannot be added to spec.excludeIPs`),
			forbidden("spec.excludeIPs", `IPs 10.6.0.95 are used by SpiderIPPool "pool-b" and cannot be added to spec.excludeIPs`),
		}},
		{name: "old status corrupt", new: base(), old: base(build.ControlledRaw("{")), want: field.ErrorList{internal("status.controlledIPPools")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderSubnetUpdate(tc.new, tc.old, true, true), tc.want)
		})
	}
}

func TestValidateSubnetOverlap(t *testing.T) {
	others := []v2beta1.SpiderSubnet{*build.Subnet("a", "10.6.0.0/16", build.NoVersion()), *build.Subnet("b", "fd00::/64", build.NoVersion()),
		*build.Subnet("broken", "x", build.NoVersion())}
	tests := []struct {
		name   string
		subnet *v2beta1.SpiderSubnet
		want   field.ErrorList
	}{
		{name: "disjoint", subnet: build.Subnet("s", "10.7.0.0/16", build.NoVersion())},
		{name: "equal subnets overlap", subnet: build.Subnet("s", "10.6.0.0/16", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet", `overlaps with spec.subnet 10.6.0.0/16 of SpiderSubnet "a"`)}},
		{name: "contained", subnet: build.Subnet("s", "10.6.8.0/24", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet", `overlaps with spec.subnet 10.6.0.0/16 of SpiderSubnet "a"`)}},
		{name: "IPv6 overlap", subnet: build.Subnet("s", "fd00::/56", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet", `overlaps with spec.subnet fd00::/64 of SpiderSubnet "b"`)}},
		{name: "itself skipped", subnet: build.Subnet("a", "10.6.0.0/16", build.NoVersion())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSubnetOverlap(tc.subnet, others), tc.want)
		})
	}
}

func TestValidateSubnetPools(t *testing.T) {
	pools := []v2beta1.SpiderIPPool{
		*build.Pool("in", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20")),
		*build.Pool("other", "10.7.1.0/24", build.NoVersion()),
	}
	tests := []struct {
		name   string
		subnet *v2beta1.SpiderSubnet
		want   field.ErrorList
	}{
		{name: "holds the pool's IPs", subnet: build.Subnet("s", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.1-10.6.0.100"))},
		{name: "misses some of the pool's IPs", subnet: build.Subnet("s", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.1-10.6.0.15")),
			want: field.ErrorList{invalid("spec.ips", `SpiderIPPool "in" uses IPs 10.6.0.16-10.6.0.20 that are not usable IPs of this SpiderSubnet`)}},
		{name: "overlaps another pool's different subnet", subnet: build.Subnet("s", "10.7.0.0/16", build.NoVersion()),
			want: field.ErrorList{invalid("spec.subnet", `overlaps with spec.subnet 10.7.1.0/24 of SpiderIPPool "other"`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSubnetPools(tc.subnet, pools), tc.want)
		})
	}
}
