package kubestore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

type counter struct{ commits, ops, conflicts atomic.Int64 }

func (c *counter) ObserveCommit(_ string, n int, _ time.Duration) {
	c.commits.Add(1)
	c.ops.Add(int64(n))
}
func (c *counter) ObserveConflict(string) { c.conflicts.Add(1) }

func newFake(t *testing.T, pools ...*v2beta1.SpiderIPPool) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	b := fake.NewClientBuilder().WithScheme(s)
	for _, p := range pools {
		b = b.WithObjects(p).WithStatusSubresource(p)
	}
	return b.Build()
}

// Two stores (two agents) sharing one API: group commit batches each agent's calls, the
// resourceVersion check turns their races into re-plans, and no address is given twice.
func TestStoresShareAPIWithoutDuplicates(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.0.200"), build.Default())
	c := newFake(t, pool)
	obs := &counter{}
	stores := []*Store{
		New(c, c, Options{NodeName: "a", Observer: obs}),
		New(c, c, Options{NodeName: "b", Observer: obs}),
	}
	var (
		mu  sync.Mutex
		got = map[netip.Addr]string{}
		wg  sync.WaitGroup
	)
	for i := range 200 {
		st := stores[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := fmt.Sprintf("uid-%d", i)
			var addr netip.Addr
			err := st.UpdatePool(context.Background(), "p", func(s *ipam.PoolState) error {
				a, _, err := s.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "default/p" + uid, PodUID: uid}, Offset: st.SearchOffset("p")})
				addr = a
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", uid, err)
				return
			}
			if other, dup := got[addr]; dup {
				t.Errorf("%s given to %s and %s", addr, other, uid)
			}
			got[addr] = uid
		}()
	}
	wg.Wait()
	var fresh v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: "p"}, &fresh); err != nil {
		t.Fatal(err)
	}
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{&fresh}); err != nil {
		t.Error(err)
	}
	allocs, _ := fresh.Status.Allocations()
	if len(allocs) != 200 || len(got) != 200 {
		t.Errorf("records %d, answers %d, want 200 each", len(allocs), len(got))
	}
	if obs.ops.Load() != 200 || obs.commits.Load() > 200 {
		t.Errorf("%d writes carried %d updates, want 200 updates in at most 200 writes", obs.commits.Load(), obs.ops.Load())
	}
	t.Logf("%d writes, %d conflicts", obs.commits.Load(), obs.conflicts.Load())
}

// A failing update function leaves the records as they were and does not hide the others' changes.
func TestFailedFunctionChangesNothing(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1"))
	c := newFake(t, pool)
	st := New(c, c, Options{})
	boom := errors.New("boom")
	err := st.UpdatePool(context.Background(), "p", func(s *ipam.PoolState) error {
		if _, _, err := s.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "default/a", PodUID: "a"}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdatePool = %v, want the function's own error", err)
	}
	var fresh v2beta1.SpiderIPPool
	_ = c.Get(context.Background(), client.ObjectKey{Name: "p"}, &fresh)
	if fresh.Status.AllocatedIPs != nil {
		t.Errorf("records written after a failed function: %s", *fresh.Status.AllocatedIPs)
	}
	if err := st.UpdatePool(context.Background(), "missing", func(*ipam.PoolState) error { return nil }); err == nil {
		t.Error("update of a missing pool succeeded")
	}
}

// A caller whose budget is already spent gets ErrConflict and changes nothing.
func TestExpiredBudget(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.1"))
	c := newFake(t, pool)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := New(c, c, Options{}).UpdatePool(ctx, "p", func(s *ipam.PoolState) error {
		_, _, err := s.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "default/a", PodUID: "a"}})
		return err
	})
	if err == nil || !errors.Is(err, ipam.ErrConflict) {
		t.Errorf("UpdatePool with a spent budget = %v, want ErrConflict", err)
	}
}
