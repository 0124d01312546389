package integration

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

// startBlockAgents is startAgents with the block store: each agent's informer holds only the
// blocks labelled for its node, as spiderpool-agent's does.
func startBlockAgents(t *testing.T, n int, obs *countingObserver) []*simAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	agents := make([]*simAgent, n)
	for i := range agents {
		node := fmt.Sprintf("bnode-%d", i)
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
		opts := blockstore.Options{NodeName: node}
		if obs != nil {
			opts.Observer = obs
		}
		st, err := blockstore.New(c, c, env.Client, opts)
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = &simAgent{
			node:  node,
			alloc: ipam.New(st, ipam.Config{EnableIPv4: true, InstallNamespace: "kube-system", SearchOffset: st.SearchOffset}),
		}
	}
	return agents
}

// checkBlocks reads the pool's blocks live: every record inside its block, no address twice, and
// the records are exactly want (pod UID → address).
func checkBlocks(t *testing.T, pool string, want map[string]netip.Addr) {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(testContext(t), &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]string{}
	for _, b := range list.Items {
		prefix := netip.MustParsePrefix(b.Spec.CIDR)
		for k, r := range b.Spec.Records {
			a := netip.MustParseAddr(k)
			if !prefix.Contains(a) {
				t.Errorf("block %s records %s outside its range", b.Name, a)
			}
			if other, dup := got[a]; dup {
				t.Errorf("%s recorded for %s and %s", a, other, r.PodUID)
			}
			got[a] = r.PodUID
		}
	}
	if len(got) != len(want) {
		t.Errorf("pool %s: %d block records, want %d", pool, len(got), len(want))
	}
	for uid, a := range want {
		if got[a] != uid {
			t.Errorf("record of %s = %q, want %s", a, got[a], uid)
		}
	}
}

// Ten block agents fill a pool of exactly 1000 addresses: the last blocks are borrowed from, every
// pod gets an address, none twice, and releasing everything leaves no record.
func TestBlockAgentsFillExactPool(t *testing.T) {
	createPool(t, "blocks-1000", "10.110.0.0/16", "10.110.0.1-10.110.3.232")
	obs := &countingObserver{}
	agents := startBlockAgents(t, 10, obs)
	t0 := time.Now()
	got := runAllocations(t, agents, 1000, 50, 2*time.Minute)
	elapsed := time.Since(t0)
	if len(got) != 1000 {
		t.Fatalf("%d of 1000 pods got an address", len(got))
	}
	checkBlocks(t, "blocks-1000", got)
	t.Logf("1000 allocations by 10 block agents in %v (%.0f/s): %d rounds carrying %d updates, %d lost block writes",
		elapsed.Round(time.Millisecond), 1000/elapsed.Seconds(), obs.commits.Load(), obs.ops.Load(), obs.conflicts.Load())
	_, err := agents[3].alloc.Allocate(testContext(t), &ipam.Request{PodNamespace: "default", PodName: "late", PodUID: "uid-late", NodeName: agents[3].node, IfName: "eth0"})
	if !errorsIs(err, ipam.ErrPoolExhausted) {
		t.Errorf("allocation from the full pool: %v, want ErrPoolExhausted", err)
	}
	releaseAll(t, agents, "blocks-1000", got)
	checkBlocks(t, "blocks-1000", nil)
}

// One agent, one ADD at a time: the latency of the block store's round trip, and a retry after a
// restart (a new store and informer) returns the address held.
func TestBlockAgentSequential(t *testing.T) {
	createPool(t, "blocks-seq", "10.111.0.0/24", "10.111.0.1-10.111.0.200")
	a := startBlockAgents(t, 1, nil)[0]
	got := map[string]netip.Addr{}
	var total time.Duration
	for i := range 50 {
		req := &ipam.Request{PodNamespace: "default", PodName: fmt.Sprint("p", i), PodUID: fmt.Sprint("uid-seq-", i), NodeName: a.node, IfName: "eth0"}
		t0 := time.Now()
		res, err := a.alloc.Allocate(testContext(t), req)
		total += time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		got[req.PodUID] = res.IPs[0].Address.Addr()
	}
	t.Logf("50 sequential allocations: mean %v", (total / 50).Round(time.Microsecond))
	checkBlocks(t, "blocks-seq", got)
	restarted := startBlockAgents(t, 1, nil)[0]
	res, err := restarted.alloc.Allocate(testContext(t), &ipam.Request{PodNamespace: "default", PodName: "p7", PodUID: "uid-seq-7", NodeName: restarted.node, IfName: "eth0"})
	if err != nil || res.IPs[0].Address.Addr() != got["uid-seq-7"] {
		t.Fatalf("retry after restart: %v, %v; want %s", res, err, got["uid-seq-7"])
	}
	checkBlocks(t, "blocks-seq", got)
}
