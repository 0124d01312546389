package ipam_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// autoPool builds a pool as the SpiderSubnet controller labels it.
func autoPool(name, cidr, ips, subnet, kind, ns, app, nic, version string) *v2beta1.SpiderIPPool {
	return build.Pool(name, cidr, build.IPs(ips), build.Label(v2beta1.LabelOwnerApplicationGV, "apps_v1"), build.Label(v2beta1.LabelOwnerApplicationKind, kind), build.Label(v2beta1.LabelOwnerApplicationNS, ns), build.Label(v2beta1.LabelOwnerApplicationName, app), build.Label(v2beta1.LabelOwnerApplicationUID, "uid-"+app), build.Label(v2beta1.LabelIPPoolInterface, nic), build.Label(v2beta1.LabelIPPoolVersion, version), build.Label(v2beta1.LabelOwnerSpiderSubnet, subnet))
}

func TestSelectAutoPools(t *testing.T) {
	pools := []*v2beta1.SpiderIPPool{
		// Same subnet and NIC, another application: never a candidate.
		autoPool("auto4-other-eth0-aaaaa", "10.170.0.0/16", "10.170.0.20", "s4", "Deployment", "app", "other", "eth0", "IPv4"),
		autoPool("auto4-nginx-net1-bbbbb", "10.170.0.0/16", "10.170.0.30", "s4", "Deployment", "app", "nginx", "net1", "IPv4"),
		autoPool("auto4-nginx-eth0-ccccc", "10.170.0.0/16", "10.170.0.10", "s4", "Deployment", "app", "nginx", "eth0", "IPv4"),
		autoPool("auto6-nginx-eth0-ddddd", "fd17::/64", "fd17::10", "s6", "Deployment", "app", "nginx", "eth0", "IPv6"),
		// A StatefulSet of the same name is another application.
		autoPool("auto4-nginx-eth0-eeeee", "10.170.0.0/16", "10.170.0.40", "s4", "StatefulSet", "app", "nginx", "eth0", "IPv4"),
		// Made by hand, with the subnet's CIDR: not an auto pool.
		build.Pool("manual", "10.170.0.0/16", build.IPs("10.170.0.50"), build.Default()),
	}
	nginx := ipam.Controller{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "app", Name: "nginx"}
	req := func(nic string, anno map[string]string, c ipam.Controller) *ipam.Request {
		return &ipam.Request{PodNamespace: "app", PodName: "nginx-1", PodUID: "u", IfName: nic,
			PodAnnotations: anno, Controller: c}
	}
	tests := []struct {
		name    string
		cfg     ipam.Config
		req     *ipam.Request
		want    selected
		wantErr string
		errIs   error
	}{
		{
			name: "subnet annotation resolves to the pool of the controller, NIC and family",
			cfg:  ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req:  req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"]}`}, nginx),
			want: selected{Rule: ipam.RuleSubnet, IPv4: []string{"auto4-nginx-eth0-ccccc"}},
		},
		{
			name: "dual stack",
			cfg:  ipam.Config{EnableIPv4: true, EnableIPv6: true, EnableAutoPool: true},
			req:  req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"],"ipv6":["s6"]}`}, nginx),
			want: selected{Rule: ipam.RuleSubnet, IPv4: []string{"auto4-nginx-eth0-ccccc"}, IPv6: []string{"auto6-nginx-eth0-ddddd"}},
		},
		{
			name: "subnets entry of the NIC wins over /subnet and pool annotations",
			cfg:  ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req: req("net1", map[string]string{
				v2beta1.AnnoSpiderSubnets: `[{"interface":"net1","ipv4":["s4"]}]`,
				v2beta1.AnnoPodIPPool:     `{"ipv4":["manual"]}`,
			}, nginx),
			want: selected{Rule: ipam.RuleSubnet, IPv4: []string{"auto4-nginx-net1-bbbbb"}},
		},
		{
			name:    "pool not created yet is retryable",
			cfg:     ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req:     req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"]}`}, ipam.Controller{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "app", Name: "new"}),
			wantErr: `IPv4 IPPool of SpiderSubnet ["s4"] for NIC eth0 of Deployment app/new: auto-created IPPool not created yet`,
			errIs:   ipam.ErrConflict,
		},
		{
			name:    "pool of another subnet does not count",
			cfg:     ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req:     req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4-other"]}`}, nginx),
			wantErr: "auto-created IPPool not created yet",
			errIs:   ipam.ErrAutoPoolNotReady,
		},
		{
			// docs/design/behaviour.md#pool-selection: like pools, a family without a subnet is skipped.
			name: "enabled family without a subnet is skipped",
			cfg:  ipam.Config{EnableIPv4: true, EnableIPv6: true, EnableAutoPool: true},
			req:  req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"]}`}, nginx),
			want: selected{Rule: ipam.RuleSubnet, IPv4: []string{"auto4-nginx-eth0-ccccc"}},
		},
		{
			// A subnet named for the second family whose pool is missing
			// still holds the pod back: that family was asked for.
			name:    "named second family without its pool is still not ready",
			cfg:     ipam.Config{EnableIPv4: true, EnableIPv6: true, EnableAutoPool: true},
			req:     req("net1", map[string]string{v2beta1.AnnoSpiderSubnets: `[{"interface":"net1","ipv4":["s4"],"ipv6":["s6"]}]`}, nginx),
			wantErr: `IPv6 IPPool of SpiderSubnet ["s6"] for NIC net1 of Deployment app/nginx: auto-created IPPool not created yet`,
			errIs:   ipam.ErrAutoPoolNotReady,
		},
		{
			name:    "subnet of a disabled family only",
			cfg:     ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req:     req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv6":["s6"]}`}, nginx),
			wantErr: "no IPPool available, no IPv4 SpiderSubnet specified for NIC eth0 by annotation ipam.spidernet.io/subnet",
			errIs:   ipam.ErrNoCandidatePool,
		},
		{
			name:    "auto pools disabled",
			cfg:     ipam.Config{EnableIPv4: true},
			req:     req("eth0", map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"]}`}, nginx),
			wantErr: "needs ipam.spiderSubnet.enable and autoPool.enable: feature disabled",
			errIs:   ipam.ErrFeatureDisabled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := ipam.Select(tc.req, &tc.cfg, pools)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("error %v is not %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := selected{Rule: sel.Rule, IPv4: poolNames(sel.IPv4), IPv6: poolNames(sel.IPv6), CleanGateway: sel.CleanGateway}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("selection (-want +got):\n%s", diff)
			}
		})
	}
}
