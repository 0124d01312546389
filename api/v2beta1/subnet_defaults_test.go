package v2beta1_test

import (
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestDefaultSpiderSubnet(t *testing.T) {
	in := build.Subnet("s", "172.31.192.0/20", build.NoVersion(), build.IPs("172.31.199.190-172.31.199.194", "172.31.199.185-172.31.199.189"),
		build.ExcludeIPs("172.31.199.200"))
	v2beta1.DefaultSpiderSubnet(in)
	want := build.Subnet("s", "172.31.192.0/20", build.Version(4), build.IPs("172.31.199.185-172.31.199.194"), build.ExcludeIPs("172.31.199.200"))
	want.Labels = map[string]string{v2beta1.LabelSubnetCIDR: "172-31-192-0-20"}
	want.Finalizers = []string{v2beta1.Finalizer}
	jsonDiff(t, want, in)

	t.Run("invalid entries untouched", func(t *testing.T) {
		in := build.Subnet("s", "fd00::/64", build.NoVersion(), build.IPs("fd00::2", "fd00::1", "10.0.0.1"))
		v2beta1.DefaultSpiderSubnet(in)
		if got := strings.Join(in.Spec.IPs, ","); got != "fd00::2,fd00::1,10.0.0.1" {
			t.Errorf("ips = %s", got)
		}
		if in.Spec.IPVersion == nil || *in.Spec.IPVersion != 6 {
			t.Errorf("ipVersion not derived")
		}
	})
}
