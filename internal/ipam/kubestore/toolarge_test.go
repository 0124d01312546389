package kubestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// TestReleasesPassAPoolAtItsSizeLimit is defect 6 of the fault issue: a pool whose status would
// outgrow etcd's request limit failed its whole batch, releases included, with a raw etcd error.
// The API here refuses a status of more than three records the way etcd does. A batch of two
// allocations and one release then writes the release and refuses the allocations, naming the
// pool and what to do.
func TestReleasesPassAPoolAtItsSizeLimit(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.1-10.6.0.20"), build.Allocated("10.6.0.1", "default/a", "a"), build.Allocated("10.6.0.2", "default/b", "b"))
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	var (
		first   sync.Once
		hold    = make(chan struct{})
		holding = make(chan struct{})
	)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(pool).WithStatusSubresource(pool).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, cl client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			first.Do(func() { close(holding); <-hold }) // the first write waits: the next calls form one batch
			p := obj.(*v2beta1.SpiderIPPool)
			if allocs, _ := p.Status.Allocations(); len(allocs) > 3 {
				return apierrors.NewInternalError(errors.New("etcdserver: request is too large"))
			}
			return cl.SubResource(sub).Update(ctx, obj, opts...)
		},
	}).Build()
	st := New(c, c, Options{})
	alloc := func(uid string) func(*ipam.PoolState) error {
		return func(s *ipam.PoolState) error {
			_, _, err := s.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "default/" + uid, PodUID: uid}})
			return err
		}
	}
	ctx := context.Background()
	errs := map[string]chan error{}
	run := func(name string, fn func(*ipam.PoolState) error) {
		errs[name] = make(chan error, 1)
		go func() { errs[name] <- st.UpdatePool(ctx, "p", fn) }()
	}
	run("c", alloc("c")) // three records: stored, once let go
	<-holding
	run("d", alloc("d"))
	run("e", alloc("e"))
	run("release a", func(s *ipam.PoolState) error { s.ReleaseOwner("a"); return nil })
	// All three queued behind the held write, so that they form one batch.
	q := st.queue("p")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		q.mu.Lock()
		n := len(q.pending)
		q.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want 3", n)
		}
	}
	close(hold)

	if err := <-errs["c"]; err != nil {
		t.Fatalf("c: %v", err)
	}
	if err := <-errs["release a"]; err != nil {
		t.Errorf("the release was blocked: %v", err)
	}
	for _, uid := range []string{"d", "e"} {
		err := <-errs[uid]
		if !errors.Is(err, ipam.ErrPoolExhausted) || !strings.Contains(err.Error(), `IPPool "p"`) || !strings.Contains(err.Error(), "split its addresses") {
			t.Errorf("%s: %v; want exhaustion naming the pool and what to do", uid, err)
		}
	}
	var fresh v2beta1.SpiderIPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "p"}, &fresh); err != nil {
		t.Fatal(err)
	}
	allocs, _ := fresh.Status.Allocations()
	got := map[string]bool{}
	for _, a := range allocs {
		got[a.PodUID] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]bool{"b": true, "c": true}) {
		t.Errorf("records of %v, want b and c", got)
	}
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{&fresh}); err != nil {
		t.Error(err)
	}
}
