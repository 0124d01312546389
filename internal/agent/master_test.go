package agent

import (
	"strings"
	"testing"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// match_master_subnet through the handler: the master the request carries decides which pools
// serve the interface; without matchMasterSubnet it is ignored, and without a master
// matchMasterSubnet is refused before anything is allocated.
func TestAddMatchMasterSubnet(t *testing.T) {
	pools := func() []*v2beta1.SpiderIPPool {
		return []*v2beta1.SpiderIPPool{
			build.Pool("rail-far", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20")),
			build.Pool("rail-near", "10.20.0.0/24", build.IPs("10.20.0.10-10.20.0.20")),
		}
	}
	pf := &v1.Master{Name: "ens1f0", Addresses: []string{"10.20.0.5/24"}}
	tests := []struct {
		name     string
		match    bool
		master   *v1.Master
		defaults []string
		wantPool string
		wantCode v1.Code
		wantErr  string
	}{
		{name: "off: the first pool", defaults: []string{"rail-far", "rail-near"}, wantPool: "rail-far"},
		{name: "off: a master sent anyway is ignored", master: pf, defaults: []string{"rail-far", "rail-near"}, wantPool: "rail-far"},
		{
			name: "off: a malformed master sent anyway is ignored", defaults: []string{"rail-far"}, wantPool: "rail-far",
			master: &v1.Master{Addresses: []string{"not an address"}},
		},
		{name: "on: the pool on the PF's network", match: true, master: pf, defaults: []string{"rail-far", "rail-near"}, wantPool: "rail-near"},
		{name: "on: wildcard defaults", match: true, master: pf, defaults: []string{"rail-*"}, wantPool: "rail-near"},
		{
			name: "on: no pool on the PF's network", match: true, master: pf, defaults: []string{"rail-far"}, wantCode: v1.CodeNoCandidatePool,
			wantErr: "all IPv4 IPPools [rail-far] of net1 filtered out: rail-far: subnet 10.6.0.0/16 holds no address of master ens1f0 (10.20.0.5/24)",
		},
		{
			name: "on: a master without addresses", match: true, master: &v1.Master{Name: "ens1f0"}, defaults: []string{"rail-near"},
			wantCode: v1.CodeNoCandidatePool, wantErr: "subnet 10.20.0.0/24 holds no address of master ens1f0, which has none",
		},
		{
			name: "on: no master", match: true, defaults: []string{"rail-near"}, wantCode: v1.CodeInvalidRequest,
			wantErr: "missing required field(s): master (matchMasterSubnet is true",
		},
		{
			name: "on: a master without name", match: true, master: &v1.Master{Addresses: []string{"10.20.0.5/24"}},
			defaults: []string{"rail-near"}, wantCode: v1.CodeInvalidRequest, wantErr: "missing required field(s): master.name",
		},
		{
			name: "on: a malformed address", match: true, master: &v1.Master{Name: "ens1f0", Addresses: []string{"10.20.0.5/24", "10.20.0.5"}},
			defaults: []string{"rail-near"}, wantCode: v1.CodeInvalidRequest, wantErr: `master.addresses[1]: netip.ParsePrefix("10.20.0.5"): no '/'`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig(), pools(), baseObjects(newPod("vf-pod", "uid-1")))
			args := addArgs("vf-pod", "uid-1", "net1")
			args.MatchMasterSubnet = tc.match
			args.Master = tc.master
			args.DefaultIPv4IPPool = tc.defaults
			resp, apiErr := e.add(args)
			if tc.wantErr != "" {
				if apiErr == nil || apiErr.Code != tc.wantCode || !strings.Contains(apiErr.Message, tc.wantErr) {
					t.Fatalf("got %v, want %s containing %q", apiErr, tc.wantCode, tc.wantErr)
				}
				for _, p := range []string{"rail-far", "rail-near"} {
					if recs := e.records(p); len(recs) != 0 {
						t.Errorf("refused ADD left records in %s: %v", p, recs)
					}
				}
				return
			}
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			if len(resp.IPs) != 1 || resp.IPs[0].IPPool != tc.wantPool {
				t.Fatalf("answer %+v, want one address of %s", resp.IPs, tc.wantPool)
			}
		})
	}
}

// requestMaster is safe on its own: without Validate in front, matchMasterSubnet without a
// master is still refused rather than read as "no rule".
func TestRequestMasterWithoutMaster(t *testing.T) {
	m, err := requestMaster(&v1.IpamAddArgs{MatchMasterSubnet: true})
	if err == nil || !strings.Contains(err.Error(), "matchMasterSubnet is true but the request carries no master") {
		t.Fatalf("requestMaster = %+v, %v", m, err)
	}
}
