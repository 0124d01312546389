package ipam_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// createdAt sets a pool's creation time.
func createdAt(p *v2beta1.SpiderIPPool, sec int) *v2beta1.SpiderIPPool {
	p.CreationTimestamp = metav1.NewTime(time.Date(2026, 12, 1, 0, 0, sec, 0, time.UTC))
	return p
}

// TestAllocateOverlappingPools is defect 4 of the fault issue: two pools created at the same
// moment both pass the webhook's overlap check of the pools that exist. Allocation applies the
// rule by age: the newer pool never yields an address the older one lists, and a newer pool whose
// subnet overlaps the older's differently yields nothing.
func TestAllocateOverlappingPools(t *testing.T) {
	ctx := context.Background()
	t.Run("same subnet, shared addresses", func(t *testing.T) {
		store := ipamtest.NewStore(
			createdAt(build.Pool("old", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.12")), 1),
			createdAt(build.Pool("new", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.13")), 2),
		)
		a := ipam.New(store, v4only)
		got := map[string]string{}
		for _, uid := range []string{"n1", "o1", "o2", "o3"} {
			pool := "old"
			if uid[0] == 'n' {
				pool = "new"
			}
			r, err := a.Allocate(ctx, podRequest(uid, pool))
			if err != nil {
				t.Fatalf("%s from %s: %v", uid, pool, err)
			}
			addr := r.IPs[0].Address.Addr().String()
			if prev, dup := got[addr]; dup {
				t.Fatalf("%s handed out to %s and %s", addr, prev, uid)
			}
			got[addr] = uid
		}
		if got["10.6.0.13"] != "n1" {
			t.Errorf("the newer pool gave %v; want its only address of its own, 10.6.0.13", got)
		}
		_, err := a.Allocate(ctx, podRequest("n2", "new"))
		if err == nil || !strings.Contains(err.Error(), "all IP addresses used out") {
			t.Errorf("the newer pool's shared addresses are the older one's: got %v, want exhaustion", err)
		}
		checkStore(t, store)
	})
	t.Run("overlapping subnets", func(t *testing.T) {
		store := ipamtest.NewStore(
			createdAt(build.Pool("wide", "10.6.0.0/16", build.IPs("10.6.1.10-10.6.1.12")), 1),
			createdAt(build.Pool("narrow", "10.6.1.0/24", build.IPs("10.6.1.20")), 2),
		)
		a := ipam.New(store, v4only)
		_, err := a.Allocate(ctx, podRequest("p1", "narrow"))
		if err == nil || !strings.Contains(err.Error(), `overlaps subnet 10.6.0.0/16 of the older IPPool "wide"`) {
			t.Errorf("got %v, want the newer pool refused, naming the older", err)
		}
		if r, err := a.Allocate(ctx, podRequest("p2", "wide")); err != nil || r.IPs[0].Pool != "wide" {
			t.Errorf("the older pool: %v %v", r, err)
		}
	})
}

// FuzzOverlappingPools: whatever two pools of one subnet list, the newer never hands out an
// address the older lists, and the two never hand out one address twice.
func FuzzOverlappingPools(f *testing.F) {
	f.Add("10.6.0.10-10.6.0.12", "10.6.0.10-10.6.0.13", "", uint8(3))
	f.Add("10.6.0.1", "10.6.0.1", "10.6.0.1", uint8(2))
	f.Add("10.6.0.0-10.6.0.255", "10.6.0.200-10.6.0.201", "10.6.0.200", uint8(5))
	f.Fuzz(func(t *testing.T, oldIPs, newIPs, newExclude string, n uint8) {
		old := createdAt(build.Pool("old", "10.6.0.0/24", build.IPs(oldIPs)), 1)
		newer := build.Pool("new", "10.6.0.0/24", build.IPs(newIPs))
		if newExclude != "" {
			newer.Spec.ExcludeIPs = []string{newExclude}
		}
		newer = createdAt(newer, 2)
		oldState, err := ipam.NewPoolState(old)
		if err != nil {
			return
		}
		if _, err := ipam.NewPoolState(newer); err != nil {
			return
		}
		oldSet := oldState.Usable()
		store := ipamtest.NewStore(old, newer)
		a := ipam.New(store, v4only)
		seen := map[string]string{}
		for i := range int(n % 8) {
			for _, pool := range []string{"new", "old"} {
				uid := fmt.Sprintf("%s-%d", pool, i)
				r, err := a.Allocate(context.Background(), podRequest(uid, pool))
				if err != nil {
					continue
				}
				addr := r.IPs[0].Address.Addr()
				if prev, dup := seen[addr.String()]; dup {
					t.Fatalf("%s handed out to %s and %s", addr, prev, uid)
				}
				seen[addr.String()] = uid
				if pool == "new" && oldSet.Contains(addr) {
					t.Fatalf("the newer pool handed out %s, which the older lists", addr)
				}
			}
		}
	})
}
