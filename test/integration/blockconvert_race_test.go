package integration

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// startRoutingAgents starts n agents as spiderpool-agent runs them: a blockstore.Router over the
// status-format store and the block store, so that each pool's updates follow its format.
func startRoutingAgents(t *testing.T, n int) []*simAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	agents := make([]*simAgent, n)
	for i := range agents {
		node := fmt.Sprintf("rnode-%d", i)
		c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, ByObject: map[client.Object]cache.ByObject{
			&ipblock.SpiderIPBlock{}: {Label: blockstore.NodeSelector(node)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.Start(ctx) }()
		if !c.WaitForCacheSync(ctx) {
			t.Fatal("cache did not sync")
		}
		bs, err := blockstore.New(c, c, env.Client, blockstore.Options{NodeName: node})
		if err != nil {
			t.Fatal(err)
		}
		router := blockstore.NewRouter(bs, kubestore.New(c, env.Client, kubestore.Options{NodeName: node}))
		agents[i] = &simAgent{node: node,
			alloc: ipam.New(router, ipam.Config{EnableIPv4: true, InstallNamespace: "kube-system", SearchOffset: router.SearchOffset})}
	}
	return agents
}

// Agents allocate and release without pause while the controller converts the pool: the
// conversion's copy races their status writes (each attempt is marked with a precondition on the
// version it copied, and starts over when one landed), and once the pool is marked they continue
// in blocks. In the end the blocks hold exactly the addresses the agents hold, none lost, none
// released coming back, and the status mirrors them.
func TestConvertRacingAgentsLive(t *testing.T) {
	// Longer than testContext: each conversion attempt that an agent's write beats starts over.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const pool = "convert-race"
	createPool(t, pool, "10.122.0.0/16", "10.122.0.1-10.122.3.254")
	agents := startRoutingAgents(t, 3)

	var (
		mu   sync.Mutex
		held = map[string]netip.Addr{} // pod UID -> address, as the agents answered
		errs []error
		ops  atomic.Int64 // answered requests
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	churn := func(w int) {
		defer wg.Done()
		a := agents[w%len(agents)]
		var mine []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if len(mine) < 8 {
				uid := fmt.Sprintf("uid-race-%d-%d", w, i)
				res, err := a.alloc.Allocate(rctx, &ipam.Request{PodNamespace: "default", PodName: fmt.Sprintf("race-%d-%d", w, i),
					PodUID: uid, NodeName: a.node, IfName: "eth0"})
				cancel()
				ops.Add(1)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("allocate %s: %w", uid, err))
				} else {
					held[uid] = res.IPs[0].Address.Addr()
					mine = append(mine, uid)
				}
				mu.Unlock()
				continue
			}
			uid := mine[0]
			mine = mine[1:]
			mu.Lock()
			addr := held[uid]
			mu.Unlock()
			err := a.alloc.Release(rctx, &ipam.ReleaseRequest{PodUID: uid, IPs: []ipam.PoolIP{{Pool: pool, Addr: addr}}})
			cancel()
			ops.Add(1)
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("release %s: %w", uid, err))
			} else {
				delete(held, uid)
			}
			mu.Unlock()
		}
	}
	for w := range 4 {
		wg.Add(1)
		go churn(w)
	}
	// Let the status fill a little (each worker holds up to 8), then start the conversion under load.
	err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(held) >= 24, nil
	})
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	runController(t, func(c *controller.Config) { c.IPAMBlocks, c.GCEnabled = true, false })
	var p v2beta1.SpiderIPPool
	err = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err
		}
		return ipblock.InBlocks(&p), nil
	})
	if err == nil {
		// Keep going in block format for a while: releases of converted records included.
		since := ops.Load()
		err = testenv.WaitFor(ctx, func(context.Context) (bool, error) { return ops.Load() >= since+60, nil })
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("pool not converted under load: %v", err)
	}
	for i, e := range errs {
		if i == 5 {
			t.Errorf("... and %d more errors", len(errs)-5)
			break
		}
		t.Error(e)
	}
	checkBlocks(t, pool, held)

	err = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err
		}
		allocs, err := p.Status.Allocations()
		if err != nil || len(allocs) != len(held) || ptr.Deref(p.Status.AllocatedIPCount, -1) != int64(len(held)) {
			return false, err
		}
		for uid, a := range held {
			if allocs[a.String()].PodUID != uid {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the status does not mirror the blocks (%d held, count %v): %v", len(held), p.Status.AllocatedIPCount, err)
	}
}
