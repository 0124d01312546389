package v2beta1_test

import (
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestPoolAllocations(t *testing.T) {
	t.Run("round trip, deterministic, count kept", func(t *testing.T) {
		var st v2beta1.IPPoolStatus
		a := v2beta1.PoolIPAllocations{
			"10.6.212.148": {NamespacedName: "default/nginx-4653bc4f24-aswpm", PodUID: "u2"},
			"10.6.212.145": {NamespacedName: "default/nginx-4653bc4f24-rswak", PodUID: "5d1c"},
		}
		if err := st.SetAllocations(a); err != nil {
			t.Fatal(err)
		}
		want := `{"10.6.212.145":{"pod":"default/nginx-4653bc4f24-rswak","podUid":"5d1c"},"10.6.212.148":{"pod":"default/nginx-4653bc4f24-aswpm","podUid":"u2"}}`
		if st.AllocatedIPs == nil || *st.AllocatedIPs != want {
			t.Errorf("allocatedIPs = %v, want %s", st.AllocatedIPs, want)
		}
		if st.AllocatedIPCount == nil || *st.AllocatedIPCount != 2 {
			t.Errorf("allocatedIPCount = %v, want 2", st.AllocatedIPCount)
		}
		got, err := st.Allocations()
		if err != nil {
			t.Fatal(err)
		}
		jsonDiff(t, a, got)
	})
	t.Run("empty clears", func(t *testing.T) {
		st := v2beta1.IPPoolStatus{AllocatedIPs: new(`{"10.6.0.1":{"pod":"a/b","podUid":"u"}}`), AllocatedIPCount: new(int64(1))}
		if err := st.SetAllocations(v2beta1.PoolIPAllocations{}); err != nil {
			t.Fatal(err)
		}
		if st.AllocatedIPs != nil || st.AllocatedIPCount == nil || *st.AllocatedIPCount != 0 {
			t.Errorf("got allocatedIPs %v, count %v", st.AllocatedIPs, st.AllocatedIPCount)
		}
	})
	for _, raw := range []*string{nil, new(""), new("null")} {
		st := v2beta1.IPPoolStatus{AllocatedIPs: raw}
		a, err := st.Allocations()
		if err != nil || a == nil || len(a) != 0 {
			t.Errorf("Allocations(%v) = %v, %v; want empty map", raw, a, err)
		}
		a["10.6.0.1"] = v2beta1.PoolIPAllocation{} // writable
	}
	t.Run("invalid JSON", func(t *testing.T) {
		st := v2beta1.IPPoolStatus{AllocatedIPs: new(`{"10.6.0.1":`)}
		if _, err := st.Allocations(); err == nil || !strings.Contains(err.Error(), "status.allocatedIPs") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSubnetControlledPools(t *testing.T) {
	t.Run("round trip and distinct count", func(t *testing.T) {
		var st v2beta1.SubnetStatus
		p := v2beta1.PoolIPPreAllocations{
			"b": {IPs: []string{"10.6.0.20-10.6.0.29"}, Application: new("apps_v1_Deployment_default_nginx")},
			"a": {IPs: []string{"10.6.0.1-10.6.0.10", "10.6.0.5"}},
		}
		if err := st.SetControlledPools(p); err != nil {
			t.Fatal(err)
		}
		want := `{"a":{"ips":["10.6.0.1-10.6.0.10","10.6.0.5"]},"b":{"ips":["10.6.0.20-10.6.0.29"],"application":"apps_v1_Deployment_default_nginx"}}`
		if st.ControlledIPPools == nil || *st.ControlledIPPools != want {
			t.Errorf("controlledIPPools = %v, want %s", st.ControlledIPPools, want)
		}
		if st.AllocatedIPCount == nil || *st.AllocatedIPCount != 20 {
			t.Errorf("allocatedIPCount = %v, want 20", st.AllocatedIPCount)
		}
		got, err := st.ControlledPools()
		if err != nil {
			t.Fatal(err)
		}
		jsonDiff(t, p, got)
	})
	t.Run("mixed families rejected, status unchanged", func(t *testing.T) {
		st := v2beta1.SubnetStatus{ControlledIPPools: new("{}"), AllocatedIPCount: new(int64(7))}
		err := st.SetControlledPools(v2beta1.PoolIPPreAllocations{"a": {IPs: []string{"10.6.0.1"}}, "b": {IPs: []string{"fd00::1"}}})
		if err == nil || !strings.Contains(err.Error(), `pool "b"`) {
			t.Errorf("err = %v, want a family error naming pool b", err)
		}
		if *st.ControlledIPPools != "{}" || *st.AllocatedIPCount != 7 {
			t.Errorf("status changed on error: %v %v", *st.ControlledIPPools, *st.AllocatedIPCount)
		}
	})
	t.Run("empty clears", func(t *testing.T) {
		st := v2beta1.SubnetStatus{ControlledIPPools: new(`{"a":{"ips":["10.6.0.1"]}}`)}
		if err := st.SetControlledPools(nil); err != nil {
			t.Fatal(err)
		}
		if st.ControlledIPPools != nil || *st.AllocatedIPCount != 0 {
			t.Errorf("not cleared")
		}
		if got, err := st.ControlledPools(); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ControlledPools() = %v, %v", got, err)
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		st := v2beta1.SubnetStatus{ControlledIPPools: new("[")}
		if _, err := st.ControlledPools(); err == nil {
			t.Error("want error")
		}
	})
}
