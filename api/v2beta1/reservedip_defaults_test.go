package v2beta1_test

import (
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestDefaultSpiderReservedIP(t *testing.T) {
	tests := []struct {
		name        string
		ips         []string
		version     *int64
		wantVersion *int64
		wantIPs     []string
	}{
		{name: "IPv4 from first entry, merged", ips: []string{"10.6.0.3", "10.6.0.1-10.6.0.2"}, wantVersion: new(int64(4)), wantIPs: []string{"10.6.0.1-10.6.0.3"}},
		{name: "IPv6 from first entry", ips: []string{"fd00::0:1"}, wantVersion: new(int64(6)), wantIPs: []string{"fd00::1"}},
		{name: "first entry invalid", ips: []string{"x", "10.6.0.1"}, wantIPs: []string{"x", "10.6.0.1"}},
		{name: "no entries", ips: nil},
		{name: "given version kept", ips: []string{"10.6.0.1"}, version: new(int64(4)), wantVersion: new(int64(4)), wantIPs: []string{"10.6.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPVersion: tc.version, IPs: tc.ips}}
			v2beta1.DefaultSpiderReservedIP(r)
			jsonDiff(t, v2beta1.ReservedIPSpec{IPVersion: tc.wantVersion, IPs: tc.wantIPs}, r.Spec)
		})
	}
}
