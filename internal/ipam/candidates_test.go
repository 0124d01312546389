package ipam_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// candidatePools is a store with pools of both families; a4, a6 and d4 are
// cluster defaults.
func candidatePools() []*v2beta1.SpiderIPPool {
	return []*v2beta1.SpiderIPPool{
		build.Pool("a4", "10.1.0.0/16", build.IPs("10.1.0.10-10.1.0.20"), build.Default()),
		build.Pool("a6", "fd01::/64", build.IPs("fd01::10-fd01::20"), build.Default()),
		build.Pool("b4", "10.2.0.0/16", build.IPs("10.2.0.10")),
		build.Pool("b6", "fd02::/64", build.IPs("fd02::10")),
		build.Pool("rail-2", "10.4.0.0/16", build.IPs("10.4.0.10")),
		build.Pool("rail-1", "10.3.0.0/16", build.IPs("10.3.0.10")),
		build.Pool("rail-6", "fd03::/64", build.IPs("fd03::10")),
		build.Pool("d4", "10.5.0.0/16", build.IPs("10.5.0.10"), build.Default()),
		build.Pool("ns4", "10.6.0.0/16", build.IPs("10.6.0.10")),
		build.Pool("ns6", "fd06::/64", build.IPs("fd06::10")),
		build.Pool("cni4", "10.7.0.0/16", build.IPs("10.7.0.10")),
		build.Pool("cni6", "fd07::/64", build.IPs("fd07::10")),
	}
}

func poolNames(pools []*v2beta1.SpiderIPPool) []string {
	var out []string
	for _, p := range pools {
		out = append(out, p.Name)
	}
	return out
}

type selected struct {
	Rule         ipam.Rule
	IPv4, IPv6   []string
	CleanGateway bool
}

func TestSelect(t *testing.T) {
	dual := ipam.Config{EnableIPv4: true, EnableIPv6: true}
	v4 := ipam.Config{EnableIPv4: true}
	allRules := func() *ipam.Request {
		return &ipam.Request{
			PodNamespace: "app", PodName: "p", PodUID: "u", IfName: "eth0",
			PodAnnotations: map[string]string{
				v2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["b4"],"ipv6":["b6"],"cleangateway":true}]`,
				v2beta1.AnnoPodIPPool:  `{"ipv4":["rail-1"],"ipv6":["rail-6"]}`,
			},
			NamespaceAnnotations: map[string]string{
				v2beta1.AnnoNSDefaultV4Pool: `["ns4"]`,
				v2beta1.AnnoNSDefaultV6Pool: `["ns6"]`,
			},
			DefaultIPv4Pools: []string{"cni4"},
			DefaultIPv6Pools: []string{"cni6"},
		}
	}
	tests := []struct {
		name    string
		cfg     ipam.Config
		req     func() *ipam.Request
		pools   func() []*v2beta1.SpiderIPPool // candidatePools when nil
		want    selected
		wantErr string
		errIs   error
	}{
		{
			name: "rule 1 subnet annotation with auto pools disabled",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations[v2beta1.AnnoSpiderSubnet] = `{"ipv4":["subnet-v4"]}`
				return r
			},
			wantErr: "annotation ipam.spidernet.io/subnet needs ipam.spiderSubnet.enable and autoPool.enable: feature disabled",
			errIs:   ipam.ErrFeatureDisabled,
		},
		{
			name: "rule 1 subnets annotation with auto pools enabled",
			cfg:  ipam.Config{EnableIPv4: true, EnableAutoPool: true},
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations[v2beta1.AnnoSpiderSubnets] = `[{"interface":"eth0","ipv4":["subnet-v4"]}]`
				return r
			},
			// The pod has no top controller with an auto pool yet: a retryable error.
			wantErr: `IPv4 IPPool of SpiderSubnet ["subnet-v4"] for NIC eth0 of  /: auto-created IPPool not created yet`,
			errIs:   ipam.ErrAutoPoolNotReady,
		},
		{
			name: "rule 1 subnets entry of another NIC falls through",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations[v2beta1.AnnoSpiderSubnets] = `[{"interface":"net1","ipv4":["subnet-v4"]}]`
				return r
			},
			want: selected{Rule: ipam.RuleInterfacePools, IPv4: []string{"b4"}, IPv6: []string{"b6"}, CleanGateway: true},
		},
		{
			name: "rule 1 invalid subnet annotation",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations[v2beta1.AnnoSpiderSubnet] = `{`
				return r
			},
			wantErr: "invalid annotation ipam.spidernet.io/subnet",
			errIs:   ipam.ErrInvalidAnnotation,
		},
		{
			name: "rule 2 ippools entry of the NIC hides every lower rule",
			cfg:  dual,
			req:  allRules,
			want: selected{Rule: ipam.RuleInterfacePools, IPv4: []string{"b4"}, IPv6: []string{"b6"}, CleanGateway: true},
		},
		{
			name: "rule 2 ippools entry of another NIC falls through to rule 3",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.IfName = "net1"
				return r
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"rail-1"}, IPv6: []string{"rail-6"}},
		},
		{
			name: "rule 2 invalid ippools annotation",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations[v2beta1.AnnoPodIPPools] = `[{"ipv4":["b4"]}]`
				return r
			},
			wantErr: "invalid annotation ipam.spidernet.io/ippools: element 0: interface is required",
			errIs:   ipam.ErrInvalidAnnotation,
		},
		{
			name: "rule 3 ippool hides namespace, CNI and cluster defaults",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				delete(r.PodAnnotations, v2beta1.AnnoPodIPPools)
				r.CleanGateway = true
				return r
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"rail-1"}, IPv6: []string{"rail-6"}, CleanGateway: true},
		},
		{
			name: "rule 4 namespace annotations hide CNI and cluster defaults",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations = nil
				return r
			},
			want: selected{Rule: ipam.RuleNamespace, IPv4: []string{"ns4"}, IPv6: []string{"ns6"}},
		},
		{
			name: "rule 4 one namespace family is enough to win",
			cfg:  v4,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations = nil
				delete(r.NamespaceAnnotations, v2beta1.AnnoNSDefaultV6Pool)
				return r
			},
			want: selected{Rule: ipam.RuleNamespace, IPv4: []string{"ns4"}},
		},
		{
			name: "rule 4 invalid namespace annotation",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations = nil
				r.NamespaceAnnotations[v2beta1.AnnoNSDefaultV6Pool] = `ns6`
				return r
			},
			wantErr: "invalid annotation ipam.spidernet.io/default-ipv6-ippool",
			errIs:   ipam.ErrInvalidAnnotation,
		},
		{
			name: "rule 5 CNI configuration hides cluster defaults",
			cfg:  dual,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations, r.NamespaceAnnotations = nil, nil
				return r
			},
			want: selected{Rule: ipam.RuleCNIConfig, IPv4: []string{"cni4"}, IPv6: []string{"cni6"}},
		},
		{
			name: "rule 5 duplicate CNI pool",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0", DefaultIPv4Pools: []string{"cni4", "cni4"}}
			},
			wantErr: `invalid CNI configuration: default_ipv4_ippool: duplicate pool "cni4"`,
		},
		{
			name: "rule 6 cluster defaults in store order",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0"}
			},
			want: selected{Rule: ipam.RuleClusterDefault, IPv4: []string{"a4", "d4"}, IPv6: []string{"a6"}},
		},
		{
			name: "rule 6 enabled family without a default pool is skipped",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0"}
			},
			pools: func() []*v2beta1.SpiderIPPool {
				return []*v2beta1.SpiderIPPool{
					build.Pool("b4", "10.2.0.0/16", build.IPs("10.2.0.10"), build.Default()),
					build.Pool("b6", "fd02::/64", build.IPs("fd02::10")),
				}
			},
			want: selected{Rule: ipam.RuleClusterDefault, IPv4: []string{"b4"}},
		},
		{
			name: "rule 6 only enabled family",
			cfg:  ipam.Config{EnableIPv6: true},
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0"}
			},
			want: selected{Rule: ipam.RuleClusterDefault, IPv6: []string{"a6"}},
		},
		{
			name: "wildcard expands to pools of the family in store order",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["rail-*"]}`}}
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"rail-2", "rail-1"}},
		},
		{
			name: "wildcard and literal naming one pool try it once",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["rail-1","rail-[0-9]","?4"]}`}}
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"rail-1", "rail-2", "a4", "b4", "d4"}},
		},
		{
			name: "wildcard in namespace annotation",
			cfg:  ipam.Config{EnableIPv6: true},
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					NamespaceAnnotations: map[string]string{v2beta1.AnnoNSDefaultV6Pool: `["*6"]`}}
			},
			want: selected{Rule: ipam.RuleNamespace, IPv6: []string{"a6", "b6", "rail-6", "ns6", "cni6"}},
		},
		{
			name: "wildcard matching nothing is unknown",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0", DefaultIPv4Pools: []string{"zz-*"}}
			},
			wantErr: `IPv4 IPPools of NIC eth0 from CNI configuration default IPPools: IPPool not found: ["zz-*"]`,
			errIs:   ipam.ErrPoolNotFound,
		},
		{
			name: "unknown names are all named",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["nope1","a4","nope2"]}`}}
			},
			wantErr: `IPPool not found: ["nope1" "nope2"]`,
			errIs:   ipam.ErrPoolNotFound,
		},
		{
			name: "duplicate names in an annotation",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["a4","a4"]}`}}
			},
			wantErr: `invalid annotation ipam.spidernet.io/ippool: ipv4: duplicate pool "a4"`,
			errIs:   ipam.ErrInvalidAnnotation,
		},
		{
			// docs/design/behaviour.md#pool-selection: an enabled family the winning rule names no pool
			// of is skipped; the guides' IPv4-only pools under the chart's
			// default enableIPv6=true.
			name: "enabled family without a pool in the ippool annotation is skipped",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "net1",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["a4"]}`}}
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"a4"}},
		},
		{
			name: "enabled family without a pool in the ippools entry is skipped",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv6":["b6"]}]`}}
			},
			want: selected{Rule: ipam.RuleInterfacePools, IPv6: []string{"b6"}},
		},
		{
			name: "enabled family without a namespace default is skipped",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					NamespaceAnnotations: map[string]string{v2beta1.AnnoNSDefaultV4Pool: `["ns4"]`}}
			},
			want: selected{Rule: ipam.RuleNamespace, IPv4: []string{"ns4"}},
		},
		{
			// A SpiderMultusConfig with ippools.ipv4 only, as in every guide.
			name: "enabled family without a CNI configuration pool is skipped",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0", DefaultIPv4Pools: []string{"cni4"}}
			},
			want: selected{Rule: ipam.RuleCNIConfig, IPv4: []string{"cni4"}},
		},
		{
			// Skipping is for a family nobody asked for: a name that does
			// not exist still fails the family and the request.
			name: "unknown pool of the second family is still an error",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["a4"],"ipv6":["gone6"]}`}}
			},
			wantErr: `IPv6 IPPools of NIC eth0 from pod annotation ipam.spidernet.io/ippool: IPPool not found: ["gone6"]`,
			errIs:   ipam.ErrPoolNotFound,
		},
		{
			name: "wildcard of the second family matching nothing is still an error",
			cfg:  dual,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					DefaultIPv4Pools: []string{"cni4"}, DefaultIPv6Pools: []string{"zz-*"}}
			},
			wantErr: `IPv6 IPPools of NIC eth0 from CNI configuration default IPPools: IPPool not found: ["zz-*"]`,
			errIs:   ipam.ErrPoolNotFound,
		},
		{
			// The rule wins (later rules are not consulted) but names only
			// pools of a family that is switched off: nothing is left.
			name: "rule naming only a disabled family",
			cfg:  v4,
			req: func() *ipam.Request {
				r := allRules()
				r.PodAnnotations = map[string]string{v2beta1.AnnoPodIPPool: `{"ipv6":["a6"]}`}
				return r
			},
			wantErr: "no IPPool available, no IPv4 IPPool specified for NIC eth0 by pod annotation ipam.spidernet.io/ippool",
			errIs:   ipam.ErrNoCandidatePool,
		},
		{
			name: "names of a disabled family are ignored",
			cfg:  v4,
			req: func() *ipam.Request {
				return &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0",
					PodAnnotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["a4"],"ipv6":["no-such-pool"]}`}}
			},
			want: selected{Rule: ipam.RulePodPools, IPv4: []string{"a4"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pools := candidatePools
			if tc.pools != nil {
				pools = tc.pools
			}
			sel, err := ipam.Select(tc.req(), &tc.cfg, pools())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("error %q does not wrap %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := selected{Rule: sel.Rule, IPv4: poolNames(sel.IPv4), IPv6: poolNames(sel.IPv6), CleanGateway: sel.CleanGateway}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSelectNoRule(t *testing.T) {
	pools := []*v2beta1.SpiderIPPool{build.Pool("p", "10.1.0.0/16", build.IPs("10.1.0.1"))}
	req := &ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0"}
	_, err := ipam.Select(req, &ipam.Config{EnableIPv4: true}, pools)
	if err == nil || err.Error() != "no IPPool available, no pool selection rules of any type are specified" || !errors.Is(err, ipam.ErrNoCandidatePool) {
		t.Fatalf("got %v", err)
	}

	// Default pools of a disabled family only: no enabled family has one.
	pools = []*v2beta1.SpiderIPPool{build.Pool("p6", "fd00::/64", build.IPs("fd00::1"), build.Default())}
	_, err = ipam.Select(req, &ipam.Config{EnableIPv4: true}, pools)
	if err == nil || err.Error() != "no IPPool available, no default IPv4 IPPool for NIC eth0" || !errors.Is(err, ipam.ErrNoCandidatePool) {
		t.Fatalf("got %v", err)
	}

	// With both families enabled, the IPv6 default alone serves the pod.
	sel, err := ipam.Select(req, &ipam.Config{EnableIPv4: true, EnableIPv6: true}, pools)
	if err != nil || sel.IPv4 != nil || len(sel.IPv6) != 1 || !slices.Equal(sel.Versions(), []int{6}) {
		t.Fatalf("got %+v, %v; want the IPv6 default only", sel, err)
	}

	if _, err := ipam.Select(req, &ipam.Config{}, pools); err == nil {
		t.Fatal("no family enabled: want an error")
	}
}

// FuzzSelectFilter drives candidate selection and filtering with arbitrary
// annotations: they must not panic, selection must name only existing pools,
// each once, and filtering must keep an ordered subset or explain every
// refusal.
func FuzzSelectFilter(f *testing.F) {
	f.Add(`[{"interface":"eth0","ipv4":["b4"],"ipv6":["b6"]}]`, `{"ipv4":["rail-*"]}`, `["ns4"]`, `["ns6"]`, "cni4", "eth0", "kube-system/x", "a,b@net9", true)
	f.Add("", `{"ipv4":["a4","zz"]}`, "", "", "", "net1", "", "x", false)
	f.Add("", "", "", "", "", "eth0", "", "", true)
	f.Fuzz(func(t *testing.T, ippools, ippool, ns4, ns6, cni, ifName, defaultNet, networks string, dual bool) {
		pools := candidatePools()
		pools = append(pools,
			build.Pool("node-m", "10.8.0.0/16", build.IPs("10.8.0.1"), build.NodeName("worker"), build.MultusName("x", "app/a")),
			build.Pool("off", "10.9.0.0/16", build.IPs("10.9.0.1"), build.Disable(), build.Default()),
		)
		anno := map[string]string{}
		for k, v := range map[string]string{
			v2beta1.AnnoPodIPPools: ippools, v2beta1.AnnoPodIPPool: ippool,
			v2beta1.AnnoMultusDefaultNetwork: defaultNet, v2beta1.AnnoMultusNetworks: networks,
		} {
			if v != "" {
				anno[k] = v
			}
		}
		nsAnno := map[string]string{}
		if ns4 != "" {
			nsAnno[v2beta1.AnnoNSDefaultV4Pool] = ns4
		}
		if ns6 != "" {
			nsAnno[v2beta1.AnnoNSDefaultV6Pool] = ns6
		}
		req := &ipam.Request{
			PodNamespace: "app", PodName: "p", PodUID: "u", NodeName: "worker", IfName: ifName,
			PodAnnotations: anno, NamespaceAnnotations: nsAnno,
		}
		if cni != "" {
			req.DefaultIPv4Pools = strings.Split(cni, ",")
		}
		cfg := &ipam.Config{EnableIPv4: true, EnableIPv6: dual, InstallNamespace: "kube-system", ClusterDefaultNAD: "kube-system/x"}
		sel, err := ipam.Select(req, cfg, pools)
		if err != nil {
			return
		}
		exists := map[*v2beta1.SpiderIPPool]bool{}
		for _, p := range pools {
			exists[p] = true
		}
		if !dual && sel.IPv6 != nil {
			t.Fatalf("IPv6 candidates %v with IPv6 disabled", poolNames(sel.IPv6))
		}
		// A family without candidates is skipped, but not every one.
		versions := sel.Versions()
		if len(versions) == 0 {
			t.Fatalf("rule %v: no candidate of any family and no error", sel.Rule)
		}
		for _, v := range versions {
			cands := sel.Pools(v)
			seen := map[string]bool{}
			for _, p := range cands {
				if !exists[p] || seen[p.Name] {
					t.Fatalf("IPv%d candidates %v: unknown or duplicate %s", v, poolNames(cands), p.Name)
				}
				seen[p.Name] = true
			}
			kept, err := ipam.Filter(req, cfg, v, cands)
			var fe *ipam.FilterError
			switch {
			case err == nil:
				j := 0
				for _, k := range kept {
					for j < len(cands) && cands[j] != k {
						j++
					}
					if j == len(cands) {
						t.Fatalf("kept %v is not an ordered subset of %v", poolNames(kept), poolNames(cands))
					}
				}
			case errors.As(err, &fe):
				if len(fe.Refusals) != len(cands) || len(fe.Pools) != len(cands) {
					t.Fatalf("FilterError %v does not explain all of %v", fe, poolNames(cands))
				}
			case !errors.Is(err, ipam.ErrInvalidAnnotation):
				t.Fatalf("unexpected filter error %v", err)
			}
		}
	})
}
