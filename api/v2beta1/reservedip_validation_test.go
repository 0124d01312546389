package v2beta1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestValidateSpiderReservedIP(t *testing.T) {
	rip := func(opts ...build.Option) *v2beta1.SpiderReservedIP { return build.ReservedIP("r", opts...) }
	tests := []struct {
		name     string
		rip      *v2beta1.SpiderReservedIP
		disable4 bool
		want     field.ErrorList
	}{
		{name: "IPv4 entries", rip: rip(build.Version(4), build.IPs("10.6.0.1", "10.6.0.10-10.6.0.20"))},
		{name: "IPv6 entries", rip: rip(build.Version(6), build.IPs("fd00::1-fd00::9"))},
		{name: "version derived from first entry", rip: rip(build.IPs("10.6.0.1"))},
		{name: "version derived, later entry of other family", rip: rip(build.IPs("10.6.0.1", "fd00::1")),
			want: field.ErrorList{invalid("spec.ips[1]", "is IPv6, but the family is IPv4")}},
		{name: "entry not an IP", rip: rip(build.Version(4), build.IPs("10.6.0.1", "10.6.0.0/24")),
			want: field.ErrorList{invalid("spec.ips[1]", `CIDR notation is not allowed here; want an IP address or a range "first-last"`)}},
		{name: "entry of other family", rip: rip(build.Version(6), build.IPs("10.6.0.1")), want: field.ErrorList{invalid("spec.ips[0]")}},
		{name: "ipVersion unsupported", rip: rip(build.Version(5), build.IPs("10.6.0.1")), want: field.ErrorList{notSupported("spec.ipVersion")}},
		{name: "nothing to derive ipVersion from", rip: rip(), want: field.ErrorList{required("spec.ipVersion")}},
		{name: "IPv4 disabled", rip: rip(build.Version(4), build.IPs("10.6.0.1")), disable4: true,
			want: field.ErrorList{forbidden("spec.ipVersion", "IPv4 is disabled")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, v2beta1.ValidateSpiderReservedIP(tc.rip, !tc.disable4, true), tc.want)
		})
	}

	t.Run("update keeps ipVersion", func(t *testing.T) {
		checkErrs(t, v2beta1.ValidateSpiderReservedIPUpdate(rip(build.Version(4), build.IPs("10.6.0.2")), rip(build.Version(4),
			build.IPs("10.6.0.1")), true, true), nil)
		checkErrs(t, v2beta1.ValidateSpiderReservedIPUpdate(rip(build.Version(6), build.IPs("fd00::1")), rip(build.Version(4), build.IPs("10.6.0.1")), true, true),
			field.ErrorList{forbidden("spec.ipVersion", "is not changeable (was 4)")})
		checkErrs(t, v2beta1.ValidateSpiderReservedIPUpdate(rip(build.Version(4), build.IPs("10.6.0.2")), rip(build.Version(4),
			build.IPs("10.6.0.1")), false, true), nil)
	})
}
