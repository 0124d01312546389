package integration

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
)

// countingObserver tallies what a Store reports, for the test log.
type countingObserver struct {
	commits, ops, conflicts atomic.Int64
}

func (o *countingObserver) ObserveCommit(_ string, n int, _ time.Duration) {
	o.commits.Add(1)
	o.ops.Add(int64(n))
}
func (o *countingObserver) ObserveConflict(string) { o.conflicts.Add(1) }

// simAgent is what one spiderpool-agent holds for IPAM: its own informer cache, a Store over it
// and an Allocator. Several of them against one apiserver behave like agents on several nodes.
type simAgent struct {
	node  string
	store *kubestore.Store
	alloc *ipam.Allocator
}

func startAgents(t *testing.T, n int, unbatched bool, obs kubestore.Observer) []*simAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	agents := make([]*simAgent, n)
	for i := range agents {
		c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.Start(ctx) }()
		if !c.WaitForCacheSync(ctx) {
			t.Fatal("cache did not sync")
		}
		node := fmt.Sprintf("node-%d", i)
		st := kubestore.New(c, env.Client, kubestore.Options{NodeName: node, Unbatched: unbatched, Observer: obs})
		agents[i] = &simAgent{
			node:  node,
			store: st,
			alloc: ipam.New(st, ipam.Config{EnableIPv4: true, InstallNamespace: "kube-system", SearchOffset: st.SearchOffset}),
		}
	}
	return agents
}

func createPool(t *testing.T, name, subnet string, ips ...string) {
	t.Helper()
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: subnet, IPs: ips, Default: ptr.To(true)},
	}
	if err := env.Client.Create(testContext(t), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pool) })
}

// runAllocations allocates one eth0 address for each of pods pods, spread round-robin over the
// agents, with at most conc requests in flight per agent. It returns pod UID → address.
func runAllocations(t *testing.T, agents []*simAgent, pods, conc int, budget time.Duration) map[string]netip.Addr {
	t.Helper()
	var (
		mu   sync.Mutex
		got  = map[string]netip.Addr{}
		errs []error
		wg   sync.WaitGroup
	)
	sems := make([]chan struct{}, len(agents))
	for i := range sems {
		sems[i] = make(chan struct{}, conc)
	}
	for p := range pods {
		a := agents[p%len(agents)]
		sem := sems[p%len(agents)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			uid := fmt.Sprintf("uid-%04d", p)
			res, err := a.alloc.Allocate(ctx, &ipam.Request{
				PodNamespace: "default", PodName: fmt.Sprintf("pod-%04d", p), PodUID: uid,
				NodeName: a.node, IfName: "eth0",
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %d on %s: %w", p, a.node, err))
				return
			}
			got[uid] = res.IPs[0].Address.Addr()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i == 5 {
			t.Errorf("... and %d more errors", len(errs)-5)
			break
		}
		t.Error(err)
	}
	return got
}

func releaseAll(t *testing.T, agents []*simAgent, pool string, got map[string]netip.Addr) {
	t.Helper()
	var wg sync.WaitGroup
	i := 0
	for uid, addr := range got {
		a := agents[i%len(agents)]
		i++
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := a.alloc.Release(ctx, &ipam.ReleaseRequest{PodUID: uid, IPs: []ipam.PoolIP{{Pool: pool, Addr: addr}}}); err != nil {
				t.Errorf("release %s: %v", uid, err)
			}
		}()
	}
	wg.Wait()
}

// checkPool reads the pool from the apiserver and compares its records with want (pod UID → IP).
func checkPool(t *testing.T, name string, want map[string]netip.Addr) {
	t.Helper()
	var pool v2beta1.SpiderIPPool
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: name}, &pool); err != nil {
		t.Fatal(err)
	}
	if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{&pool}); err != nil {
		t.Errorf("invariants: %v", err)
	}
	allocs, err := pool.Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != len(want) {
		t.Errorf("pool %s holds %d records, want %d", name, len(allocs), len(want))
	}
	if got := ptr.Deref(pool.Status.AllocatedIPCount, 0); got != int64(len(want)) {
		t.Errorf("allocatedIPCount = %d, want %d", got, len(want))
	}
	for uid, addr := range want {
		rec, ok := allocs[addr.String()]
		if !ok || rec.PodUID != uid {
			t.Errorf("record for %s = %+v, want pod UID %s", addr, rec, uid)
		}
	}
	if len(want) == 0 && pool.Status.AllocatedIPs != nil {
		t.Errorf("allocatedIPs = %q, want absent when empty", *pool.Status.AllocatedIPs)
	}
}

// Ten agents race 1000 pods into a pool of exactly 1000 IPs: every pod gets an address, none twice,
// the counts match the records, and releasing everything leaves no record.
func TestConcurrentAgentsFillPool(t *testing.T) {
	createPool(t, "fill-1000", "10.100.0.0/16", "10.100.0.1-10.100.3.232")
	obs := &countingObserver{}
	agents := startAgents(t, 10, false, obs)

	t0 := time.Now()
	got := runAllocations(t, agents, 1000, 50, 2*time.Minute)
	elapsed := time.Since(t0)
	seen := map[netip.Addr]string{}
	for uid, a := range got {
		if other, dup := seen[a]; dup {
			t.Errorf("%s given to %s and %s", a, other, uid)
		}
		seen[a] = uid
	}
	if len(got) != 1000 {
		t.Fatalf("%d of 1000 pods got an address", len(got))
	}
	checkPool(t, "fill-1000", got)
	t.Logf("1000 allocations by 10 agents in %v (%.0f/s): %d writes carrying %d updates, %d conflicts",
		elapsed.Round(time.Millisecond), 1000/elapsed.Seconds(), obs.commits.Load(), obs.ops.Load(), obs.conflicts.Load())

	// The pool is full: the next pod gets the exhaustion error, and nothing changes.
	_, err := agents[0].alloc.Allocate(testContext(t), &ipam.Request{PodNamespace: "default", PodName: "late", PodUID: "uid-late", NodeName: "node-0", IfName: "eth0"})
	if err == nil || !errorsIs(err, ipam.ErrPoolExhausted) {
		t.Errorf("allocation from the full pool: %v, want ErrPoolExhausted", err)
	}

	releaseAll(t, agents, "fill-1000", got)
	checkPool(t, "fill-1000", nil)
}

// The one-write-per-IP baseline keeps the same guarantees, only slower.
func TestUnbatchedAgentsKeepInvariants(t *testing.T) {
	createPool(t, "unbatched-60", "10.101.0.0/16", "10.101.0.1-10.101.0.60")
	obs := &countingObserver{}
	agents := startAgents(t, 3, true, obs)
	got := runAllocations(t, agents, 60, 10, 2*time.Minute)
	if len(got) != 60 {
		t.Fatalf("%d of 60 pods got an address", len(got))
	}
	checkPool(t, "unbatched-60", got)
	if obs.commits.Load() != 60 {
		t.Errorf("unbatched store made %d writes for 60 allocations, want one each", obs.commits.Load())
	}
	releaseAll(t, agents, "unbatched-60", got)
	checkPool(t, "unbatched-60", nil)
}

// A retried allocation for the same pod UID returns the address it holds, also through a new Store
// (an agent restart) that has never seen the pod.
func TestAllocationIdempotentAcrossRestart(t *testing.T) {
	createPool(t, "restart", "10.102.0.0/24", "10.102.0.10-10.102.0.20")
	first := startAgents(t, 1, false, nil)[0]
	req := &ipam.Request{PodNamespace: "default", PodName: "p", PodUID: "uid-restart", NodeName: "node-0", IfName: "eth0"}
	r1, err := first.alloc.Allocate(testContext(t), req)
	if err != nil {
		t.Fatal(err)
	}
	restarted := startAgents(t, 1, false, nil)[0]
	r2, err := restarted.alloc.Allocate(testContext(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if r1.IPs[0].Address != r2.IPs[0].Address {
		t.Errorf("retry after restart got %v, first call got %v", r2.IPs[0].Address, r1.IPs[0].Address)
	}
	checkPool(t, "restart", map[string]netip.Addr{"uid-restart": r1.IPs[0].Address.Addr()})
}
