package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// simAgent is the IPAM part of one spiderpool-agent, in process: its own informer cache, a Store
// over it and an Allocator, as internal/agent wires them. Several of them against one apiserver
// behave like agents on several nodes.
type simAgent struct {
	node  string
	alloc *ipam.Allocator
}

// fleet is a set of simAgents; stop ends their informers.
type fleet struct {
	agents []*simAgent
	stop   func()
}

// startFleet starts n agents on the nodes <prefix>-00, <prefix>-01, ... With blocks, each agent's
// informer selects the blocks of its node (blockstore.NodeSelector), as spiderpool-agent's does;
// otherwise it is a kubestore agent, today's status format, whose informer holds every pool.
// maxRecords caps the records of one pool (the agent's --max-records).
func startFleet(ctx context.Context, env *testenv.Env, prefix string, n int, blocks bool, maxRecords int) (*fleet, error) {
	cctx, cancel := context.WithCancel(ctx)
	f := &fleet{stop: cancel}
	for i := range n {
		node := fmt.Sprintf("%s-%02d", prefix, i)
		opts := cache.Options{Scheme: env.Scheme}
		if blocks {
			opts.ByObject = map[client.Object]cache.ByObject{&ipblock.SpiderIPBlock{}: {Label: blockstore.NodeSelector(node)}}
		}
		c, err := cache.New(env.Config, opts)
		if err != nil {
			cancel()
			return nil, err
		}
		go func() { _ = c.Start(cctx) }()
		if !c.WaitForCacheSync(cctx) {
			cancel()
			return nil, fmt.Errorf("informers of %s did not sync", node)
		}
		var store ipam.Store
		var offset func(string) uint64
		if blocks {
			// Blocks are never returned during the run: the bench counts the blocks a full pool takes.
			st, err := blockstore.New(c, c, env.Client, blockstore.Options{NodeName: node, ReturnAfter: -1})
			if err != nil {
				cancel()
				return nil, err
			}
			store, offset = st, st.SearchOffset
		} else {
			st := kubestore.New(c, env.Client, kubestore.Options{NodeName: node})
			store, offset = st, st.SearchOffset
		}
		f.agents = append(f.agents, &simAgent{node: node, alloc: ipam.New(store, ipam.Config{
			EnableIPv4: true, InstallNamespace: "kube-system", SearchOffset: offset, MaxRecords: maxRecords,
		})})
	}
	return f, nil
}

// pod is one simulated pod: its agent and the address it got.
type pod struct {
	name, uid string
	agent     *simAgent
	addr      ipam.PoolIP
}

// parallel runs fn for every pod with perAgent calls in flight on each pod's agent, and reports
// progress every few seconds under label. It returns the time taken and every error of fn, each
// naming its pod and node.
func parallel(ctx context.Context, label string, pods []*pod, perAgent int, fn func(context.Context, *pod) error) (time.Duration, []error) {
	byAgent := map[*simAgent]chan *pod{}
	for _, p := range pods {
		if byAgent[p.agent] == nil {
			byAgent[p.agent] = make(chan *pod, len(pods))
		}
		byAgent[p.agent] <- p
	}
	var (
		done atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	t0 := time.Now()
	stopProgress := progress(label, len(pods), &done)
	defer stopProgress()
	for _, ch := range byAgent {
		close(ch)
		for range perAgent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range ch {
					if err := fn(ctx, p); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s on %s: %w", p.name, p.agent.node, err))
						mu.Unlock()
						continue
					}
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return time.Since(t0), errs
}

// progress prints label's count every 5 seconds, with the rate of the last 5 seconds and the
// average, until the returned function is called.
func progress(label string, total int, done *atomic.Int64) func() {
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t0, prevT, prevN := time.Now(), time.Now(), int64(0)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				n := done.Load()
				step("%s %d/%d, %.0f/s (average %.0f/s)", label, n, total, float64(n-prevN)/now.Sub(prevT).Seconds(), float64(n)/now.Sub(t0).Seconds())
				prevT, prevN = now, n
			}
		}
	}()
	return func() { close(stop); <-finished }
}
