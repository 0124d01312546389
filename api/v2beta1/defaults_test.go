package v2beta1_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// jsonDiff compares two values through their JSON form, which is what the API server stores and
// what the NAD generator reads, and reports both sides when they differ.
func jsonDiff(t *testing.T, want, got any) {
	t.Helper()
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(w) != string(g) {
		t.Errorf("mismatch (-want +got):\n-%s\n+%s", strings.ReplaceAll(string(w), "\n", "\n-"), strings.ReplaceAll(string(g), "\n", "\n+"))
	}
}

// TestDefaultCanonicalCIDRs checks, by field path, that the mutating webhooks store every CIDR
// field in canonical network form whatever spelling upstream accepts, derive ipVersion and the
// CIDR label from it, and leave text they cannot parse for validation to report.
func TestDefaultCanonicalCIDRs(t *testing.T) {
	poolLabel := field.NewPath("metadata", "labels").Key(v2beta1.LabelIPPoolCIDR).String()
	subnetLabel := field.NewPath("metadata", "labels").Key(v2beta1.LabelSubnetCIDR).String()
	specPath := field.NewPath("spec")
	tests := []struct {
		name string
		obj  any // *SpiderIPPool, *SpiderSubnet or *SpiderCoordinator, defaulted in place
		want map[string]string
	}{
		{
			name: "pool with host bits, as in upstream's multi-interface example",
			obj:  build.Pool("p", "10.6.0.1/16", build.NoVersion(), build.IPs("10.6.168.101-10.6.168.110"), build.Gateway("10.6.0.1")),
			want: map[string]string{"spec.subnet": "10.6.0.0/16", "spec.ipVersion": "4", poolLabel: "10-6-0-0-16"},
		},
		{
			name: "IPv6 pool and route destinations",
			obj:  build.Pool("p", "FD00:0::1/64", build.NoVersion(), build.Route("fd01:0:0::5/64", "fd00::1"), build.Route("fd02::/48", "fd00::1")),
			want: map[string]string{"spec.subnet": "fd00::/64", "spec.ipVersion": "6", poolLabel: "fd00---64",
				"spec.routes[0].dst": "fd01::/64", "spec.routes[1].dst": "fd02::/48"},
		},
		{
			name: "IPv4-mapped IPv6 stays in hex, the form the parsers read back",
			obj:  build.Pool("p", "::ffff:a06:1/112", build.NoVersion()),
			want: map[string]string{"spec.subnet": "::ffff:a06:0/112", "spec.ipVersion": "6", poolLabel: "ffff-a06-0-112"},
		},
		{
			name: "canonical pool unchanged",
			obj:  build.Pool("p", "10.6.0.0/16", build.Version(4), build.Route("10.7.0.0/16", "10.6.0.1")),
			want: map[string]string{"spec.subnet": "10.6.0.0/16", "spec.ipVersion": "4", poolLabel: "10-6-0-0-16", "spec.routes[0].dst": "10.7.0.0/16"},
		},
		{
			name: "unparsable text left as written",
			obj:  build.Pool("p", "10.6.0.1", build.NoVersion(), build.Route("10.7.0.0/40", "10.6.0.1"), build.Route("10.8.0.1/16", "10.6.0.1")),
			want: map[string]string{"spec.subnet": "10.6.0.1", "spec.routes[0].dst": "10.7.0.0/40", "spec.routes[1].dst": "10.8.0.0/16"},
		},
		{
			name: "SpiderSubnet of upstream's example",
			obj:  build.Subnet("s", "2002::ac0f:0/64", build.NoVersion(), build.IPs("2002::ac0f:2-2002::ac0f:9"), build.Route("2003::1/64", "2002::ac0f:1")),
			want: map[string]string{"spec.subnet": "2002::/64", "spec.ipVersion": "6", subnetLabel: "2002---64", "spec.routes[0].dst": "2003::/64"},
		},
		{
			name: "SpiderSubnet with host bits",
			obj:  build.Subnet("s", "172.31.199.185/20", build.NoVersion()),
			want: map[string]string{"spec.subnet": "172.31.192.0/20", "spec.ipVersion": "4", subnetLabel: "172-31-192-0-20"},
		},
		{
			name: "SpiderCoordinator hijackCIDR and policyRoutes",
			obj: &v2beta1.SpiderCoordinator{Spec: v2beta1.CoordinatorSpec{
				HijackCIDR:   []string{"169.254.1.0/16", "10.96.0.10", "fd00:0::1/64", "bad"},
				PolicyRoutes: []v2beta1.Route{{"10.7.0.1/16", "10.6.0.1"}, {"fd00::0:1", "fd00::1"}},
			}},
			want: map[string]string{"spec.hijackCIDR[0]": "169.254.0.0/16", "spec.hijackCIDR[1]": "10.96.0.10/32",
				"spec.hijackCIDR[2]": "fd00::/64", "spec.hijackCIDR[3]": "bad",
				"spec.policyRoutes[0].dst": "10.7.0.0/16", "spec.policyRoutes[1].dst": "fd00::1/128"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			put := func(p *field.Path, v string) { got[p.String()] = v }
			addr := func(meta metav1.ObjectMeta, label string, version *int64, subnet string, routes []v2beta1.Route) {
				put(specPath.Child("subnet"), subnet)
				if version != nil {
					put(specPath.Child("ipVersion"), strconv.FormatInt(*version, 10))
				}
				if v, ok := meta.Labels[label]; ok {
					put(field.NewPath("metadata", "labels").Key(label), v)
				}
				for i, r := range routes {
					put(specPath.Child("routes").Index(i).Child("dst"), r.Dst)
				}
			}
			switch o := tc.obj.(type) {
			case *v2beta1.SpiderIPPool:
				v2beta1.DefaultSpiderIPPool(o)
				addr(o.ObjectMeta, v2beta1.LabelIPPoolCIDR, o.Spec.IPVersion, o.Spec.Subnet, o.Spec.Routes)
			case *v2beta1.SpiderSubnet:
				v2beta1.DefaultSpiderSubnet(o)
				addr(o.ObjectMeta, v2beta1.LabelSubnetCIDR, o.Spec.IPVersion, o.Spec.Subnet, o.Spec.Routes)
			case *v2beta1.SpiderCoordinator:
				v2beta1.DefaultSpiderCoordinator(o)
				for i, c := range o.Spec.HijackCIDR {
					put(specPath.Child("hijackCIDR").Index(i), c)
				}
				for i, r := range o.Spec.PolicyRoutes {
					put(specPath.Child("policyRoutes").Index(i).Child("dst"), r.Dst)
				}
			default:
				t.Fatalf("unexpected %T", tc.obj)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fields after defaulting (-want +got):\n%s", diff)
			}
		})
	}
}
