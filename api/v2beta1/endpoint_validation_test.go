package v2beta1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestValidateSpiderEndpoint(t *testing.T) {
	s := func(v string) *string { return &v }
	good := func() *v2beta1.SpiderEndpoint {
		return &v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "nginx-4653bc4f24-rswak", Namespace: "default"},
			Status: v2beta1.WorkloadEndpointStatus{
				Current: v2beta1.PodIPAllocation{UID: "5d1c", Node: "worker01", IPs: []v2beta1.IPAllocationDetail{
					{NIC: "net1", IPv4: s("10.6.212.145/16"), IPv4Pool: s("10-6-v4"), IPv4Gateway: s("10.6.0.1"),
						Routes: []v2beta1.Route{{"10.7.0.0/16", "10.6.0.1"}}},
					{NIC: "net2", IPv6: s("fd00::5/64"), MAC: s("0a:1b:2c:3d:4e:5f")},
				}},
				OwnerControllerType: "Deployment", OwnerControllerName: "nginx",
			},
		}
	}
	with := func(f func(*v2beta1.SpiderEndpoint)) *v2beta1.SpiderEndpoint { e := good(); f(e); return e }
	tests := []struct {
		name string
		ep   *v2beta1.SpiderEndpoint
		want field.ErrorList
	}{
		{name: "guide endpoint", ep: good()},
		{name: "uid missing", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.UID = "" }),
			want: field.ErrorList{required("status.current.uid")}},
		{name: "node missing", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.Node = "" }),
			want: field.ErrorList{required("status.current.node")}},
		{name: "owner missing", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.OwnerControllerType, e.Status.OwnerControllerName = "", "" }),
			want: field.ErrorList{required("status.ownerControllerType"), required("status.ownerControllerName")}},
		{name: "interface missing", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].NIC = "" }),
			want: field.ErrorList{required("status.current.ips[0].interface")}},
		{name: "interface duplicated", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[1].NIC = "net1" }),
			want: field.ErrorList{duplicate("status.current.ips[1].interface")}},
		{name: "ipv4 without prefix", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].IPv4 = s("10.6.212.145") }),
			want: field.ErrorList{invalid("status.current.ips[0].ipv4")}},
		{name: "ipv4 holds IPv6", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].IPv4 = s("fd00::1/64") }),
			want: field.ErrorList{invalid("status.current.ips[0].ipv4", "must be an IPv4 address")}},
		{name: "ipv6 prefix too long", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[1].IPv6 = s("fd00::5/129") }),
			want: field.ErrorList{invalid("status.current.ips[1].ipv6", "prefix length must be 0..128")}},
		{name: "gateway of other family", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].IPv4Gateway = s("fd00::1") }),
			want: field.ErrorList{invalid("status.current.ips[0].ipv4Gateway")}},
		{name: "vlan out of range", ep: with(func(e *v2beta1.SpiderEndpoint) { v := int64(4095); e.Status.Current.IPs[0].Vlan = &v }),
			want: field.ErrorList{invalid("status.current.ips[0].vlan")}},
		{name: "vlan in range", ep: with(func(e *v2beta1.SpiderEndpoint) { v := int64(4094); e.Status.Current.IPs[0].Vlan = &v })},
		{name: "mac invalid", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[1].MAC = s("zz") }),
			want: field.ErrorList{invalid("status.current.ips[1].mac")}},
		{name: "route dst invalid", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].Routes[0].Dst = "x" }),
			want: field.ErrorList{invalid("status.current.ips[0].routes[0].dst")}},
		// The agent writes the routes it parsed, so another spelling there is a bug, not a choice.
		{name: "route dst not canonical", ep: with(func(e *v2beta1.SpiderEndpoint) { e.Status.Current.IPs[0].Routes[0].Dst = "10.7.1.0/16" }),
			want: field.ErrorList{invalid("status.current.ips[0].routes[0].dst", `must be written in canonical form, use "10.7.0.0/16"`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderEndpoint(tc.ep), tc.want)
		})
	}
}
