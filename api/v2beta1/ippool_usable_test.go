package v2beta1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestUsableIPs(t *testing.T) {
	v := func(n int64) *int64 { return &n }
	type result struct {
		Version int
		IPs     []string
		Err     string
	}
	for name, tc := range map[string]struct {
		spec IPPoolSpec
		want result
	}{
		"ips minus excludeIPs": {
			spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10-10.6.0.20", "10.6.0.30"}, ExcludeIPs: []string{"10.6.0.15-10.6.0.16", "10.6.0.30"}},
			want: result{Version: 4, IPs: []string{"10.6.0.10-10.6.0.14", "10.6.0.17-10.6.0.20"}},
		},
		"ipVersion agrees": {
			spec: IPPoolSpec{IPVersion: v(6), Subnet: "fd00::/64", IPs: []string{"fd00::10-fd00::12"}, ExcludeIPs: []string{"fd00::11"}},
			want: result{Version: 6, IPs: []string{"fd00::10", "fd00::12"}},
		},
		// The family comes from the subnet even when there is nothing to infer it from.
		"no ips": {
			spec: IPPoolSpec{Subnet: "fd00::/64"},
			want: result{Version: 6},
		},
		"everything excluded": {
			spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10"}, ExcludeIPs: []string{"10.6.0.0-10.6.0.255"}},
			want: result{Version: 4},
		},
		// Reserved IPs are the allocator's business: an excluded address outside ips changes nothing.
		"exclusion outside ips": {
			spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10"}, ExcludeIPs: []string{"10.6.0.99"}},
			want: result{Version: 4, IPs: []string{"10.6.0.10"}},
		},
		"bad subnet": {
			spec: IPPoolSpec{Subnet: "10.6.0.0", IPs: []string{"10.6.0.10"}},
			want: result{Err: `spec.subnet: invalid CIDR "10.6.0.0": invalid CIDR: no '/'`},
		},
		// Written past the webhook, a subnet keeps upstream's spelling; it is read masked.
		"subnet with host bits": {
			spec: IPPoolSpec{Subnet: "10.6.0.1/16", IPs: []string{"10.6.0.10-10.6.0.11"}},
			want: result{Version: 4, IPs: []string{"10.6.0.10-10.6.0.11"}},
		},
		"IPv6 subnet with host bits": {
			spec: IPPoolSpec{IPVersion: v(6), Subnet: "2002::ac0f:0/64", IPs: []string{"2002::ac0f:10"}},
			want: result{Version: 6, IPs: []string{"2002::ac0f:10"}},
		},
		"ipVersion disagrees with subnet": {
			spec: IPPoolSpec{IPVersion: v(6), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10"}},
			want: result{Err: "spec.ipVersion 6 does not match spec.subnet 10.6.0.0/16"},
		},
		"ips of the other family": {
			spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"fd00::1"}},
			want: result{Err: `spec.ips: entry 0 "fd00::1": IP family mismatch: IPv6 entry in an IPv4 set`},
		},
		"excludeIPs of the other family": {
			spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10"}, ExcludeIPs: []string{"fd00::1"}},
			want: result{Err: `spec.excludeIPs: entry 0 "fd00::1": IP family mismatch: IPv6 entry in an IPv4 set`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			set, err := tc.spec.UsableIPs()
			var got result
			if err != nil {
				got.Err = err.Error()
			} else {
				got.Version, got.IPs = set.Version(), set.Strings()
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("UsableIPs() (-want +got):\n%s", diff)
			}
		})
	}
}
