package integration

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// createTestPool creates pool and deletes it when the test ends.
func createTestPool(t *testing.T, pool *v2beta1.SpiderIPPool) {
	t.Helper()
	if err := env.Client.Create(testContext(t), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pool) })
}

// endpointExists reports whether the pod's SpiderEndpoint exists.
func endpointExists(t *testing.T, ns, name string) bool {
	t.Helper()
	err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: name}, &v2beta1.SpiderEndpoint{})
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	return err == nil
}

// The pod annotation ipam.spidernet.io/dns reaches the runtime as the dns of the real plugin's
// result, in every CNI spec version; a malformed one fails the ADD with an error naming the
// annotation and the field, and leaves no record and no SpiderEndpoint behind.
func TestPodDNSAnnotationThroughPlugin(t *testing.T) {
	createTestPool(t, build.Pool("dns-v4", "10.111.0.0/24", build.IPs("10.111.0.10-10.111.0.30"), build.NodeName("dnsnode")))
	makeNode(t, "dnsnode", nil)
	a := startAgent(t, "dnsnode", nil)
	ipamConf := map[string]any{"default_ipv4_ippool": []string{"dns-v4"}}
	const anno = `{"nameservers":["10.111.0.53","fd11::53"],"domain":"corp.example","search":["corp.example","example"],"options":["ndots:2","edns0"]}`
	want := cnitypes.DNS{
		Nameservers: []string{"10.111.0.53", "fd11::53"}, Domain: "corp.example",
		Search: []string{"corp.example", "example"}, Options: []string{"ndots:2", "edns0"},
	}

	for _, version := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			pod := makePod(t, "default", "dns-"+strings.ReplaceAll(version, ".", ""), "dnsnode", map[string]string{v2beta1.AnnoPodDNS: anno}, nil)
			inv := cniInvocation{command: "ADD", cniVersion: version, ifName: "eth0", pod: pod, socket: a.socket, ipam: ipamConf}
			for attempt := range 2 { // a retried ADD is answered from the SpiderEndpoint, with the DNS too
				out, err := inv.run(t)
				if err != nil {
					t.Fatalf("ADD %d: %v", attempt, err)
				}
				var got cnitypes.DNS
				var addr string
				switch version {
				case "0.3.1", "0.4.0":
					r, err := types040.NewResult(out)
					if err != nil {
						t.Fatalf("parse %s: %v", out, err)
					}
					res := r.(*types040.Result)
					got, addr = res.DNS, res.IPs[0].Address.IP.String()
				default:
					r, err := types100.NewResult(out)
					if err != nil {
						t.Fatalf("parse %s: %v", out, err)
					}
					res := r.(*types100.Result)
					got, addr = res.DNS, res.IPs[0].Address.IP.String()
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ADD %d: dns (-want +got):\n%s", attempt, diff)
				}
				if a, err := netip.ParseAddr(addr); err != nil || !netip.MustParsePrefix("10.111.0.0/24").Contains(a) {
					t.Errorf("ADD %d: address %q", attempt, addr)
				}
			}
			inv.command = "DEL"
			if _, err := inv.run(t); err != nil {
				t.Fatalf("DEL: %v", err)
			}
		})
	}

	t.Run("no annotation", func(t *testing.T) {
		pod := makePod(t, "default", "dns-none", "dnsnode", nil, nil)
		inv := cniInvocation{cniVersion: "1.1.0", ifName: "eth0", pod: pod, socket: a.socket, ipam: ipamConf}
		res, err := inv.add(t)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(cnitypes.DNS{}, res.DNS); diff != "" {
			t.Errorf("dns (-want +got):\n%s", diff)
		}
		inv.command = "DEL"
		if _, err := inv.run(t); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	})

	for _, tc := range []struct {
		name, value string
		wantMsg     []string
	}{
		{"malformed json", `{"nameservers":["10.111.0.53"],`, []string{"invalid annotation ipam.spidernet.io/dns", "unexpected EOF"}},
		{"bad nameserver", `{"nameservers":["10.111.0.53","10.111.0.256"]}`, []string{"invalid annotation ipam.spidernet.io/dns", `nameservers[1]: invalid IP address "10.111.0.256"`}},
		{"bad search domain", `{"search":["corp.example nameserver 6.6.6.6"]}`, []string{"invalid annotation ipam.spidernet.io/dns", "search[0]", "is not a DNS name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "dns-bad-" + strings.ReplaceAll(tc.name, " ", "-")
			pod := makePod(t, "default", name, "dnsnode", map[string]string{v2beta1.AnnoPodDNS: tc.value}, nil)
			_, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket, ipam: ipamConf}.add(t)
			if err == nil || !hasAll(err.Error(), tc.wantMsg...) {
				t.Fatalf("ADD: %v, want an error containing %q", err, tc.wantMsg)
			}
			if recs := poolRecords(t, "dns-v4"); slices.Contains(slices.Collect(maps.Values(recs)), string(pod.UID)) {
				t.Errorf("refused ADD left a record: %v", recs)
			}
			if endpointExists(t, "default", name) {
				t.Errorf("refused ADD left a SpiderEndpoint")
			}
		})
	}
}
