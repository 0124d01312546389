package v2beta1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestValidateCoordinatorSpec(t *testing.T) {
	s := func(v string) *string { return &v }
	n := func(v int) *int { return &v }
	tests := []struct {
		name string
		spec v2beta1.CoordinatorSpec
		want field.ErrorList
	}{
		{name: "empty spec", spec: v2beta1.CoordinatorSpec{}},
		{name: "everything set", spec: v2beta1.CoordinatorSpec{Mode: s("underlay"), PodCIDRType: s("cilium"),
			HijackCIDR:   []string{"169.254.0.0/16", "10.96.0.10", "fd00::/64"},
			PolicyRoutes: []v2beta1.Route{{"10.7.0.0/16", "10.6.0.1"}, {"fd00:1::/64", "fd00::1"}}, PodMACPrefix: s("0a:1b"), PodDefaultRouteNIC: s("net1"),
			HostRuleTable: n(500), PodRPFilter: n(-1), TxQueueLen: n(1000), VethLinkAddress: s("169.254.100.1"), VethMTU: n(1500)}},
		{name: "mode unsupported", spec: v2beta1.CoordinatorSpec{Mode: s("bridge")}, want: field.ErrorList{notSupported("spec.mode")}},
		{name: "podCIDRType unsupported", spec: v2beta1.CoordinatorSpec{PodCIDRType: s("flannel")},
			want: field.ErrorList{notSupported("spec.podCIDRType")}},
		{name: "hijackCIDR invalid", spec: v2beta1.CoordinatorSpec{HijackCIDR: []string{"169.254.0.0/16", "169.254.0.0/33"}},
			want: field.ErrorList{invalid("spec.hijackCIDR[1]")}},
		{name: "hijackCIDR not an IP", spec: v2beta1.CoordinatorSpec{HijackCIDR: []string{"nodelocaldns"}},
			want: field.ErrorList{invalid("spec.hijackCIDR[0]", "invalid IP address: unable to parse IP; want a CIDR or an IP address")}},
		{name: "hijackCIDR with host bits", spec: v2beta1.CoordinatorSpec{HijackCIDR: []string{"169.254.1.0/16", "fd00:0::1/64"}}},
		{name: "policyRoutes dst with host bits", spec: v2beta1.CoordinatorSpec{PolicyRoutes: []v2beta1.Route{{"10.7.1.0/16", "10.6.0.1"}}}},
		{name: "policyRoutes dst invalid", spec: v2beta1.CoordinatorSpec{PolicyRoutes: []v2beta1.Route{{"10.7.0.0/40", "10.6.0.1"}}},
			want: field.ErrorList{invalid("spec.policyRoutes[0].dst")}},
		{name: "policyRoutes gw invalid", spec: v2beta1.CoordinatorSpec{PolicyRoutes: []v2beta1.Route{{"10.7.0.0/16", "gw"}}},
			want: field.ErrorList{invalid("spec.policyRoutes[0].gw")}},
		{name: "policyRoutes families differ", spec: v2beta1.CoordinatorSpec{PolicyRoutes: []v2beta1.Route{{"10.7.0.0/16", "fd00::1"}}},
			want: field.ErrorList{invalid("spec.policyRoutes[0].gw", "must be of the same IP family as dst 10.7.0.0/16")}},
		{name: "podMACPrefix not hex", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("zz:00")}, want: field.ErrorList{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix three bytes", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("0a:1b:2c")}, want: field.ErrorList{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix multicast by pattern", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("01:00")},
			want: field.ErrorList{invalid("spec.podMACPrefix")}},
		{name: "podMACPrefix multicast past the pattern", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("0b:00")},
			want: field.ErrorList{invalid("spec.podMACPrefix", "the first byte must be unicast (lowest bit 0)")}},
		{name: "podMACPrefix with dash", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("0a-1b")},
			want: field.ErrorList{invalid("spec.podMACPrefix", `must be two hex bytes "xx:xx", e.g. "0a:1b"`)}},
		{name: "podMACPrefix empty means unset", spec: v2beta1.CoordinatorSpec{PodMACPrefix: s("")}},
		{name: "podDefaultRouteNIC invalid", spec: v2beta1.CoordinatorSpec{PodDefaultRouteNIC: s("a-very-long-interface")},
			want: field.ErrorList{tooLong("spec.podDefaultRouteNIC")}},
		{name: "hostRuleTable zero", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(0)}, want: field.ErrorList{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable main", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(254)}, want: field.ErrorList{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable local", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(255)}, want: field.ErrorList{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable default", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(253)}, want: field.ErrorList{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable beyond 32 bits", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(1 << 33)},
			want: field.ErrorList{invalid("spec.hostRuleTable")}},
		{name: "hostRuleTable 252 and 256 are fine", spec: v2beta1.CoordinatorSpec{HostRuleTable: n(252)}},
		{name: "podRPFilter 3", spec: v2beta1.CoordinatorSpec{PodRPFilter: n(3)}, want: field.ErrorList{notSupported("spec.podRPFilter")}},
		{name: "podRPFilter 2", spec: v2beta1.CoordinatorSpec{PodRPFilter: n(2)}},
		{name: "txQueueLen negative", spec: v2beta1.CoordinatorSpec{TxQueueLen: n(-1)}, want: field.ErrorList{invalid("spec.txQueueLen")}},
		{name: "vethLinkAddress IPv6", spec: v2beta1.CoordinatorSpec{VethLinkAddress: s("fe80::1")},
			want: field.ErrorList{invalid("spec.vethLinkAddress", "must be an IPv4 address, e.g. 169.254.100.1")}},
		{name: "vethLinkAddress not an IP", spec: v2beta1.CoordinatorSpec{VethLinkAddress: s("link")},
			want: field.ErrorList{invalid("spec.vethLinkAddress")}},
		{name: "vethLinkAddress empty disables", spec: v2beta1.CoordinatorSpec{VethLinkAddress: s("")}},
		{name: "vethMTU zero", spec: v2beta1.CoordinatorSpec{VethMTU: n(0)}, want: field.ErrorList{invalid("spec.vethMTU")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateCoordinatorSpec(&tc.spec, field.NewPath("spec")), tc.want)
		})
	}

	t.Run("SpiderCoordinator requires podCIDRType", func(t *testing.T) {
		checkErrs(t, v2beta1.ValidateSpiderCoordinator(&v2beta1.SpiderCoordinator{Spec: v2beta1.CoordinatorSpec{Mode: s("auto")}}),
			field.ErrorList{required("spec.podCIDRType")})
		checkErrs(t, v2beta1.ValidateSpiderCoordinator(&v2beta1.SpiderCoordinator{Spec: v2beta1.CoordinatorSpec{PodCIDRType: s("auto")}}), nil)
	})
	t.Run("nil spec", func(t *testing.T) {
		checkErrs(t, v2beta1.ValidateCoordinatorSpec(nil, field.NewPath("spec", "coordinator")), nil)
	})
}
