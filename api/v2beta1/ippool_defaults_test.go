package v2beta1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestDefaultSpiderIPPool(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name string
		in   *v2beta1.SpiderIPPool
		want *v2beta1.SpiderIPPool
	}{
		{
			name: "IPv4 pool: version, flags, merged entries, label, finalizer",
			in: build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.20-10.6.0.30", "10.6.0.10", "10.6.0.11-10.6.0.19", "10.6.0.50"),
				build.ExcludeIPs("10.6.0.25", "10.6.0.24")),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.0.0/16", build.Version(4), build.IPs("10.6.0.10-10.6.0.30", "10.6.0.50"),
					build.ExcludeIPs("10.6.0.24-10.6.0.25"), build.Label(v2beta1.LabelIPPoolCIDR, "10-6-0-0-16"))
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{v2beta1.Finalizer}
				return p
			}(),
		},
		{
			name: "IPv6 entries written canonically, set flags kept",
			in: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p6", "fd00::/64", build.NoVersion(), build.IPs("fd00:0::1-fd00::0:9", "fd00::0a"))
				p.Spec.Default = new(true)
				p.Finalizers = []string{"other", v2beta1.Finalizer}
				return p
			}(),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p6", "fd00::/64", build.Version(6), build.IPs("fd00::1-fd00::a"), build.Label(v2beta1.LabelIPPoolCIDR, "fd00---64"))
				p.Spec.Default, p.Spec.Disable = new(true), new(false)
				p.Finalizers = []string{"other", v2beta1.Finalizer}
				return p
			}(),
		},
		{
			name: "unparsable entries are left as written",
			in:   build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.2", "10.6.0.1", "oops"), build.ExcludeIPs("10.6.0.1", "fd00::1")),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.0.0/16", build.Version(4), build.IPs("10.6.0.2", "10.6.0.1", "oops"),
					build.ExcludeIPs("10.6.0.1", "fd00::1"), build.Label(v2beta1.LabelIPPoolCIDR, "10-6-0-0-16"))
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{v2beta1.Finalizer}
				return p
			}(),
		},
		{
			name: "invalid subnet: no version, no label",
			in:   build.Pool("p", "10.6.1.0", build.NoVersion(), build.IPs("10.6.0.2", "10.6.0.1")),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.1.0", build.NoVersion(), build.IPs("10.6.0.2", "10.6.0.1"))
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{v2beta1.Finalizer}
				return p
			}(),
		},
		{
			name: "ipVersion given but wrong family: entries untouched",
			in:   build.Pool("p", "10.6.0.0/16", build.Version(6), build.IPs("10.6.0.2", "10.6.0.1")),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.0.0/16", build.Version(6), build.IPs("10.6.0.2", "10.6.0.1"), build.Label(v2beta1.LabelIPPoolCIDR, "10-6-0-0-16"))
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.Finalizers = []string{v2beta1.Finalizer}
				return p
			}(),
		},
		{
			name: "empty lists stay empty, nil stays nil, no finalizer while deleting",
			in: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.0.0/16", build.NoVersion(), build.IPs())
				p.DeletionTimestamp = &now
				return p
			}(),
			want: func() *v2beta1.SpiderIPPool {
				p := build.Pool("p", "10.6.0.0/16", build.Version(4), build.IPs(), build.Label(v2beta1.LabelIPPoolCIDR, "10-6-0-0-16"))
				p.Spec.Default, p.Spec.Disable = new(false), new(false)
				p.DeletionTimestamp = &now
				return p
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v2beta1.DefaultSpiderIPPool(tc.in)
			jsonDiff(t, tc.want, tc.in)
			if tc.in.Spec.IPs != nil && len(tc.in.Spec.IPs) == 0 && tc.want.Spec.IPs == nil {
				t.Errorf("ips: empty list turned into nil")
			}
			// Defaulting is idempotent: the webhook may run again on every update.
			again := tc.in.DeepCopy()
			v2beta1.DefaultSpiderIPPool(again)
			jsonDiff(t, tc.in, again)
		})
	}
}
