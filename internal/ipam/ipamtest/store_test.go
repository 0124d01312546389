package ipamtest_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func allocate(uid string) func(*ipam.PoolState) error {
	return func(st *ipam.PoolState) error {
		_, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/" + uid, PodUID: uid}})
		return err
	}
}

func TestStoreUpdatePool(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewStore(build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1-10.0.0.3")))
	if err := s.UpdatePool(ctx, "p", allocate("a")); err != nil {
		t.Fatal(err)
	}
	p := s.Pool("p")
	if p.ResourceVersion != "2" || *p.Status.AllocatedIPCount != 1 {
		t.Fatalf("resourceVersion %q, count %v", p.ResourceVersion, p.Status.AllocatedIPCount)
	}
	// A function that changes nothing writes nothing.
	if err := s.UpdatePool(ctx, "p", func(*ipam.PoolState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.Stats(); w != 1 {
		t.Fatalf("%d writes, want 1", w)
	}
	// fn's error comes back unchanged and nothing is written.
	boom := errors.New("boom")
	if err := s.UpdatePool(ctx, "p", func(*ipam.PoolState) error { return boom }); err != boom { // unchanged by contract
		t.Fatalf("got %v", err)
	}
	if err := s.UpdatePool(ctx, "nope", allocate("a")); !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestStoreConflictsRerunFn(t *testing.T) {
	ctx := context.Background()
	s := ipamtest.NewStore(build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1-10.0.0.3")))
	calls := 0
	// Another writer changes the pool between the read and the write of the
	// first attempt; the second attempt must see its record.
	err := s.UpdatePool(ctx, "p", func(st *ipam.PoolState) error {
		calls++
		if calls == 1 {
			s.Put(build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1-10.0.0.3"), build.Allocated("10.0.0.1", "ns/x", "x")))
		}
		return allocate("a")(st)
	})
	if err != nil || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{s.Pool("p")}); err != nil {
		t.Fatal(err)
	}
	if got := *s.Pool("p").Status.AllocatedIPs; !strings.Contains(got, `"10.0.0.2":{"pod":"ns/a"`) || !strings.Contains(got, `"10.0.0.1":{"pod":"ns/x"`) {
		t.Fatalf("records %s", got)
	}

	s.SetConflictRate(1, 1)
	s.SetMaxRetries(3)
	if err := s.UpdatePool(ctx, "p", allocate("b")); !errors.Is(err, ipam.ErrConflict) {
		t.Fatalf("got %v", err)
	}
	if _, c := s.Stats(); c != 1+4 {
		t.Fatalf("%d conflicts, want 5", c)
	}
}

func TestStoreReserved(t *testing.T) {
	s := ipamtest.NewStore()
	s.PutReserved(build.ReservedIP("a", build.IPs("10.0.0.1-10.0.0.3")))
	s.PutReserved(build.ReservedIP("b", build.IPs("10.0.0.3-10.0.0.5", "10.0.1.1")))
	s.PutReserved(build.ReservedIP("c", build.Version(6), build.IPs("fd00::1")))
	v4, err := s.Reserved(context.Background(), 4)
	if err != nil || v4.String() != "10.0.0.1-10.0.0.5,10.0.1.1" {
		t.Fatalf("IPv4 reserved %s, %v", v4, err)
	}
	v6, err := s.Reserved(context.Background(), 6)
	if err != nil || !v6.Contains(netip.MustParseAddr("fd00::1")) || v6.Count() != 1 {
		t.Fatalf("IPv6 reserved %s, %v", v6, err)
	}
}

func TestCheckInvariants(t *testing.T) {
	ok := build.Pool("ok", "10.0.0.0/24", build.IPs("10.0.0.1-10.0.0.9"), build.Allocated("10.0.0.1", "ns/a", "a"))
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{ok}); err != nil {
		t.Fatal(err)
	}
	badCount := ok.DeepCopy()
	*badCount.Status.AllocatedIPCount = 2
	tests := map[string]struct {
		pools []*v2beta1.SpiderIPPool
		want  string
	}{
		"count":    {[]*v2beta1.SpiderIPPool{badCount}, "allocatedIPCount 2, but 1 records"},
		"outside":  {[]*v2beta1.SpiderIPPool{build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1"), build.Allocated("10.0.0.2", "ns/a", "a"))}, "record 10.0.0.2 is outside ips minus excludeIPs"},
		"excluded": {[]*v2beta1.SpiderIPPool{build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1-10.0.0.3"), build.ExcludeIPs("10.0.0.2"), build.Allocated("10.0.0.2", "ns/a", "a"))}, "outside"},
		"no uid":   {[]*v2beta1.SpiderIPPool{build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1"), build.Allocated("10.0.0.1", "ns/a", ""))}, `UID ""`},
		"twice": {[]*v2beta1.SpiderIPPool{
			build.Pool("p", "10.0.0.0/24", build.IPs("10.0.0.1"), build.Allocated("10.0.0.1", "ns/a", "a")),
			build.Pool("q", "10.0.0.0/24", build.IPs("10.0.0.1"), build.Allocated("10.0.0.1", "ns/b", "b")),
		}, `IPPool "q": 10.0.0.1 is also recorded by IPPool "p"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ipamtest.CheckInvariants(tc.pools)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
