package webhook

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// A pool created without a gateway or routes takes them from the SpiderSubnet of its CIDR (however
// the CIDR is spelt), with ipam.spiderSubnet.enable; what the pool sets stays.
func TestIPPoolWebhookInheritsFromSubnet(t *testing.T) {
	routes := []v2beta1.Route{{Dst: "10.9.0.0/16", Gw: "10.7.0.1"}}
	subnet := build.Subnet("s", "10.7.0.0/16", build.IPs("10.7.0.1-10.7.0.99"), build.Gateway("10.7.0.1"),
		build.With(func(s *v2beta1.SpiderSubnet) { s.Spec.Routes = routes }))
	own := []v2beta1.Route{{Dst: "10.8.0.0/16", Gw: "10.7.0.2"}}
	for _, tc := range []struct {
		name        string
		subnetOn    bool
		pool        *v2beta1.SpiderIPPool
		wantGateway *string
		wantRoutes  []v2beta1.Route
	}{
		{"inherits both", true, build.Pool("p", "10.7.0.0/16", build.IPs("10.7.0.10")), ptr.To("10.7.0.1"), routes},
		{"non-canonical CIDR", true, build.Pool("p", "10.7.3.4/16", build.IPs("10.7.0.10")), ptr.To("10.7.0.1"), routes},
		{"keeps its own", true, build.Pool("p", "10.7.0.0/16", build.IPs("10.7.0.10"), build.Gateway("10.7.0.2"),
			build.With(func(p *v2beta1.SpiderIPPool) { p.Spec.Routes = own })), ptr.To("10.7.0.2"), own},
		{"no subnet of its CIDR", true, build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10")), nil, nil},
		{"SpiderSubnet off", false, build.Pool("p", "10.7.0.0/16", build.IPs("10.7.0.10")), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &IPPoolWebhook{Reader: newAPIClient(t, subnet), EnableIPv4: true, EnableSpiderSubnet: tc.subnetOn}
			if err := w.Default(context.Background(), tc.pool); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantGateway, tc.pool.Spec.Gateway); diff != "" {
				t.Errorf("gateway (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRoutes, tc.pool.Spec.Routes); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}
