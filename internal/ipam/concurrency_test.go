package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestConcurrentAllocateRelease(t *testing.T) {
	const (
		pods    = 120
		retries = 2 // every pod asks twice at once, as a retried CNI ADD would
	)
	store := ipamtest.NewStore(
		build.Pool("v4", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.200"), build.Default()),
		build.Pool("v6", "fd00::/64", build.IPs("fd00::1-fd00::200"), build.Default()),
	)
	store.SetConflictRate(0.3, 42)
	cfg := ipam.Config{EnableIPv4: true, EnableIPv6: true}
	ctx := context.Background()

	type got struct {
		uid  string
		addr []netip.Addr
	}
	results := make(chan got, pods*retries)
	errs := make(chan error, pods*retries)
	var wg sync.WaitGroup
	for i := range pods {
		// Agents on four nodes start their searches at different places.
		c := cfg
		off := uint64(i%4) * 40
		c.SearchOffset = func(string) uint64 { return off }
		a := ipam.New(store, c)
		uid := fmt.Sprintf("uid-%03d", i)
		for range retries {
			wg.Go(func() {
				req := &ipam.Request{PodNamespace: "app", PodName: uid, PodUID: uid, NodeName: "n", IfName: "eth0"}
				res, err := a.Allocate(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				results <- got{uid: uid, addr: []netip.Addr{res.IPs[0].Address.Addr(), res.IPs[1].Address.Addr()}}
			})
		}
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byUID := map[string][]netip.Addr{}
	owner := map[netip.Addr]string{}
	for r := range results {
		if prev, ok := byUID[r.uid]; ok && (prev[0] != r.addr[0] || prev[1] != r.addr[1]) {
			t.Fatalf("%s got %v and %v", r.uid, prev, r.addr)
		}
		byUID[r.uid] = r.addr
		for _, a := range r.addr {
			if o, ok := owner[a]; ok && o != r.uid {
				t.Fatalf("%s given to %s and %s", a, o, r.uid)
			}
			owner[a] = r.uid
		}
	}
	if len(byUID) != pods {
		t.Fatalf("%d pods allocated, want %d", len(byUID), pods)
	}
	checkStore(t, store)
	for _, pool := range []string{"v4", "v6"} {
		if n := len(records(t, store, pool)); n != pods {
			t.Fatalf("%s holds %d records, want %d", pool, n, pods)
		}
	}
	writes, conflicts := store.Stats()
	if conflicts == 0 {
		t.Fatal("no conflict happened; the retry path was not exercised")
	}
	t.Logf("%d writes, %d conflicts", writes, conflicts)

	a := ipam.New(store, cfg)
	for uid, addr := range byUID {
		wg.Go(func() {
			req := &ipam.ReleaseRequest{PodUID: uid, IPs: []ipam.PoolIP{{Pool: "v4", Addr: addr[0]}, {Pool: "v6", Addr: addr[1]}}}
			if err := a.Release(ctx, req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, pool := range []string{"v4", "v6"} {
		if n := len(records(t, store, pool)); n != 0 {
			t.Fatalf("%s holds %d records after releasing everything", pool, n)
		}
	}
	checkStore(t, store)
}

func TestConcurrentExhaustion(t *testing.T) {
	const capacity, pods = 20, 50
	store := ipamtest.NewStore(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.20")))
	store.SetConflictRate(0.2, 7)
	a := ipam.New(store, v4only)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, full  int
		unexpects []error
	)
	for i := range pods {
		wg.Go(func() {
			_, err := a.Allocate(context.Background(), podRequest(fmt.Sprint(i), "a"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ipam.ErrPoolExhausted):
				full++
			default:
				unexpects = append(unexpects, err)
			}
		})
	}
	wg.Wait()
	if len(unexpects) > 0 || ok != capacity || full != pods-capacity {
		t.Fatalf("%d allocated, %d exhausted, unexpected %v", ok, full, unexpects)
	}
	checkStore(t, store)
}
