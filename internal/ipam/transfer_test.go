package ipam_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// stateRecords returns the state's records as address -> pod UID.
func stateRecords(st *ipam.PoolState) map[string]string {
	out := map[string]string{}
	for a, o := range st.All() {
		out[a.String()] = o.PodUID
	}
	return out
}

func TestPoolStateTransfer(t *testing.T) {
	pool := func() *v2beta1.SpiderIPPool {
		return build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.10", "app/web-0", "old"), build.Allocated("10.6.0.11", "app/other", "other"))
	}
	oldOwner := ipam.Owner{Pod: "app/web-0", PodUID: "old"}
	newOwner := ipam.Owner{Pod: "app/web-0", PodUID: "new"}
	tests := []struct {
		name        string
		addr        string
		from, to    ipam.Owner
		want        bool
		wantChanged bool
		wantRecords map[string]string
	}{
		{
			name: "moves the holder's record", addr: "10.6.0.10", from: oldOwner, to: newOwner,
			want: true, wantChanged: true, wantRecords: map[string]string{"10.6.0.10": "new", "10.6.0.11": "other"},
		},
		{
			name: "another holder is left alone", addr: "10.6.0.11", from: oldOwner, to: newOwner,
			wantRecords: map[string]string{"10.6.0.10": "old", "10.6.0.11": "other"},
		},
		{
			name: "a missing record is not created", addr: "10.6.0.12", from: oldOwner, to: newOwner,
			wantRecords: map[string]string{"10.6.0.10": "old", "10.6.0.11": "other"},
		},
		{
			name: "to itself changes nothing", addr: "10.6.0.10", from: oldOwner, to: oldOwner,
			want: true, wantRecords: map[string]string{"10.6.0.10": "old", "10.6.0.11": "other"},
		},
		{
			name: "empty target UID", addr: "10.6.0.10", from: oldOwner, to: ipam.Owner{Pod: "app/web-0"},
			wantRecords: map[string]string{"10.6.0.10": "old", "10.6.0.11": "other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mustState(t, pool())
			if got := st.Transfer(netip.MustParseAddr(tt.addr), tt.from, tt.to); got != tt.want {
				t.Errorf("Transfer = %v, want %v", got, tt.want)
			}
			if st.Changed() != tt.wantChanged {
				t.Errorf("Changed = %v, want %v", st.Changed(), tt.wantChanged)
			}
			if diff := cmp.Diff(tt.wantRecords, stateRecords(st)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// After a transfer the old UID holds nothing: its late release is a no-op.
func TestPoolStateTransferThenOldRelease(t *testing.T) {
	st := mustState(t, build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.10", "app/web-0", "old")))
	addr := netip.MustParseAddr("10.6.0.10")
	if !st.Transfer(addr, ipam.Owner{Pod: "app/web-0", PodUID: "old"}, ipam.Owner{Pod: "app/web-0", PodUID: "new"}) {
		t.Fatal("Transfer refused")
	}
	if st.Release(addr, "old") || len(st.ReleaseOwner("old")) != 0 {
		t.Error("the old UID could still release the transferred address")
	}
	if o, ok := st.Record(addr); !ok || o.PodUID != "new" {
		t.Errorf("record %+v %v, want the new UID", o, ok)
	}
	var p v2beta1.IPPoolStatus
	if err := st.WriteStatus(&p); err != nil {
		t.Fatal(err)
	}
	allocs, err := p.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if a := allocs["10.6.0.10"]; a.PodUID != "new" || a.NamespacedName != "app/web-0" {
		t.Errorf("written record %+v", a)
	}
}

// A failed function's transfer is undone by Apply.
func TestPoolStateApplyUndoesTransfer(t *testing.T) {
	st := mustState(t, build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.10", "app/web-0", "old")))
	boom := errors.New("boom")
	err := st.Apply(func(st *ipam.PoolState) error {
		st.Transfer(netip.MustParseAddr("10.6.0.10"), ipam.Owner{Pod: "app/web-0", PodUID: "old"}, ipam.Owner{Pod: "app/web-0", PodUID: "new"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply = %v", err)
	}
	if st.Changed() {
		t.Error("Changed after the undo")
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.10": "old"}, stateRecords(st)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}
