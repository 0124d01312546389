package agent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// The pod annotation ipam.spidernet.io/dns becomes the answer's dns, for the first ADD and for a
// retried one; a malformed one fails the ADD before anything is allocated.
func TestAddDNS(t *testing.T) {
	tests := []struct {
		name    string
		anno    *string // nil: no annotation
		want    v1.DNS
		wantErr string
	}{
		{name: "no annotation"},
		{
			name: "every field",
			anno: new(`{"nameservers":["10.6.0.53","fd00::53"],"domain":"corp.example","search":["corp.example"],"options":["ndots:2"]}`),
			want: v1.DNS{Nameservers: []string{"10.6.0.53", "fd00::53"}, Domain: "corp.example",
				Search: []string{"corp.example"}, Options: []string{"ndots:2"}},
		},
		{name: "empty object", anno: new(`{}`)},
		{name: "malformed JSON", anno: new(`{"nameservers":["10.6.0.53"]`), wantErr: "invalid annotation ipam.spidernet.io/dns: unexpected EOF"},
		{name: "bad nameserver", anno: new(`{"nameservers":["10.6.0.53","ns1.example"]}`), wantErr: `invalid annotation ipam.spidernet.io/dns: nameservers[1]: invalid IP address "ns1.example"`},
		{name: "misspelt field", anno: new(`{"nameserver":["10.6.0.53"]}`), wantErr: `unknown field "nameserver"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []build.Option
			if tc.anno != nil {
				opts = append(opts, build.Annotation(v2beta1.AnnoPodDNS, *tc.anno))
			}
			pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
			e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "uid-1", opts...)))
			for attempt := range 2 { // the second ADD is answered from the endpoint
				resp, apiErr := e.add(addArgs("web", "uid-1", "eth0"))
				if tc.wantErr != "" {
					if apiErr == nil || apiErr.Code != v1.CodeInvalidRequest || !strings.Contains(apiErr.Message, tc.wantErr) {
						t.Fatalf("ADD %d: got %v, want an %s error containing %q", attempt, apiErr, v1.CodeInvalidRequest, tc.wantErr)
					}
					if recs := e.records("p"); len(recs) != 0 {
						t.Fatalf("refused ADD left records %v", recs)
					}
					if ep := e.endpoint("default", "web"); ep != nil {
						t.Fatalf("refused ADD left a SpiderEndpoint: %+v", ep.Status)
					}
					continue
				}
				if apiErr != nil {
					t.Fatalf("ADD %d: %v", attempt, apiErr)
				}
				if diff := cmp.Diff(tc.want, resp.DNS); diff != "" {
					t.Errorf("ADD %d: dns (-want +got):\n%s", attempt, diff)
				}
			}
			e.checkInvariants()
		})
	}
}
