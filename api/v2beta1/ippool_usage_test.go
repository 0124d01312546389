package v2beta1

import "testing"

func TestIPPoolUsage(t *testing.T) {
	count := func(n int64) *int64 { return &n }
	records := func(s string) *string { return &s }
	spec := IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10-10.6.0.20"}, ExcludeIPs: []string{"10.6.0.20"}}
	for name, tc := range map[string]struct {
		spec             IPPoolSpec
		status           IPPoolStatus
		total, allocated int64
		wantErr          bool
	}{
		"empty":            {spec: spec, total: 10},
		"count is trusted": {spec: spec, status: IPPoolStatus{AllocatedIPCount: count(3)}, total: 10, allocated: 3},
		"records counted without a count": {spec: spec, total: 10, allocated: 2, status: IPPoolStatus{
			AllocatedIPs: records(`{"10.6.0.10":{"pod":"ns/a","podUid":"ua"},"10.6.0.11":{"pod":"ns/b","podUid":"ub"}}`)}},
		"undecodable records": {spec: spec, status: IPPoolStatus{AllocatedIPs: records(`{`)}, wantErr: true},
		"bad spec":            {spec: IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"fd00::1"}}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			p := &SpiderIPPool{Spec: tc.spec, Status: tc.status}
			p.Name = "p"
			total, allocated, err := p.Usage()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Usage() error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (total != tc.total || allocated != tc.allocated) {
				t.Errorf("Usage() = %d, %d, want %d, %d", total, allocated, tc.total, tc.allocated)
			}
		})
	}
}
