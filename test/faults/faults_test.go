package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/apiproxy"
)

// faultSeed fixes every random choice of the suite; FAULT_SEED overrides it, and a failure
// replays with the seed it printed.
const faultSeed = 20261203

// addBudget is how long the stand-in kubelet keeps retrying one sandbox.
const addBudget = 90 * time.Second

// settleBudget is how long a class waits for the state to agree with its pods: the GC acts on
// events and at its start, and a killed controller's successor waits out the 15 s lease.
const settleBudget = 60 * time.Second

// TestFaults runs every fault class in turn and prints one line per class. Each class ends with
// the invariant check; the suite fails on any duplicate, leak or pod without an address.
func TestFaults(t *testing.T) {
	seed := uint64(faultSeed)
	if v := os.Getenv("FAULT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FAULT_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (FAULT_SEED to change)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	// One controller replica for every class but the failover one; classes restart it as they need.
	ctl := newController(t, "controller-0")
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}

	var results []outcome
	classes := []struct {
		name string
		run  func(t *testing.T, rng *rand.Rand, ctl *proc) outcome
	}{
		{"agent SIGKILL between pool write and endpoint create", agentKilledBeforeEndpoint},
		{"agent SIGKILL during group commits", agentKilledInBatch},
		{"write landed, response lost", responsesLost},
		{"apiserver restarted mid-batch", apiserverRestarted},
		{"watches cut, resumed 410 Expired (relist)", watchesExpired},
		{"informer lagging 3 s (DEL then ADD)", informerLagging},
		{"controller SIGKILL during GC", controllerKilledInGC},
		{"two controllers, leader SIGKILL", leaderFailover},
		{"controller SIGKILL during auto-pool scaling", controllerKilledInAutoPool},
		{"node NotReady, pods evicted (zombie settings)", nodeNotReady},
		{"controller clock skewed +5 min and -5 min", controllerClockSkewed},
		{"pool past etcd's request limit", poolPastSizeLimit},
		{"overlapping pools created in parallel", overlappingPools},
		{"pool shrunk while the agent's informer lags 3 s", poolShrunkUnderLag},
		{"exact-fit churn, all faults at random", exactFitChurn},
	}
	for _, c := range classes {
		ok := t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			o := c.run(t, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), ctl)
			o.class = c.name
			for _, p := range o.problems {
				t.Error(p)
			}
			if o.duplicates+o.leaks+o.noAddress > 0 && len(o.problems) == 0 {
				t.Errorf("%d duplicates, %d leaks, %d pods without address", o.duplicates, o.leaks, o.noAddress)
			}
			if o.injected == 0 {
				t.Errorf("no fault was injected")
			}
			t.Logf("%s: %v", c.name, time.Since(start).Round(time.Second))
			results = append(results, o)
		})
		proxy.ClearAll()
		if !ok && !ctl.Running() {
			_ = ctl.Start()
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-52s %8s %11s %10s %17s %20s\n", "fault class", "injected", "allocations", "duplicates", "leaks after GC", "pods without address")
	for _, o := range results {
		fmt.Fprintf(&b, "%-52s %8d %11d %10d %17d %20d\n", o.class, o.injected, o.allocations, o.duplicates, o.leaks, o.noAddress)
	}
	t.Log(b.String())
}

// bringUp creates n pods spread over nodes drawing from pool and brings them up concurrently; it
// returns how many never got an address within addBudget.
func (w *world) bringUp(n int, pool string, nodes []string, conc int) (failed int) {
	w.t.Helper()
	pods := make([]*pod, 0, n)
	for i := range n {
		p, err := w.newPod(nodes[i%len(nodes)], pool)
		if err != nil {
			w.t.Fatal(err)
		}
		pods = append(pods, p)
	}
	var bad atomic.Int64
	testutil.Parallel(len(pods), conc, func(i int) {
		if err := w.addRetry(pods[i], addBudget); err != nil {
			w.t.Logf("%v", err)
			bad.Add(1)
		}
	})
	return int(bad.Load())
}

// agentClient is the proxy client name of node's agent.
func agentClient(node string) string { return "agent-" + node }

func wait(t *testing.T, what string, ch <-chan *apiproxy.Held) *apiproxy.Held {
	t.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: never seen", what)
		return nil
	}
}

// agentKilledBeforeEndpoint: the agent has written the pool record and is creating the
// SpiderEndpoint when it is SIGKILLed; the create either never reaches the apiserver or lands
// with nobody to read the answer. The kubelet's retry goes to the restarted agent.
func agentKilledBeforeEndpoint(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	w := newWorld(t, "f-kill-ep", "kill-ep-0")
	w.createPool("f-kill-ep", "10.70.0.0/24", "10.70.0.10-10.70.0.17")
	a := w.agents["kill-ep-0"]
	var injected int
	for i := range 6 {
		p, err := w.newPod(a.node, "f-kill-ep")
		if err != nil {
			t.Fatal(err)
		}
		held := proxy.HoldNext(apiproxy.On(agentClient(a.node), "create", "spiderendpoints", ""), 1)
		first := make(chan error, 1)
		go func() { first <- w.add(p) }()
		h := wait(t, "endpoint create", held)
		if rng.IntN(2) == 0 {
			a.Kill() // the create dies with its caller
			h.Release(true)
		} else {
			h.Release(true) // the create lands; the caller dies before it reads the answer
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			a.Kill()
		}
		injected++
		<-first // fails: the agent died mid-request
		if err := a.StartReady(); err != nil {
			t.Fatal(err)
		}
		if err := w.addRetry(p, addBudget); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			// A neighbour's DEL and a new pod on the same node in between.
			if err := w.remove(w.live()[0], true); err != nil {
				t.Fatal(err)
			}
		}
	}
	failed := w.bringUp(2, "f-kill-ep", []string{a.node}, 2)
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// agentKilledInBatch: a dozen ADDs in flight on one agent, batched into few pool writes, when it
// is SIGKILLed at a random moment; the kubelet retries each against the restarted agent.
func agentKilledInBatch(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	w := newWorld(t, "f-kill-batch", "kill-batch-0", "kill-batch-1")
	w.createPool("f-kill-batch", "10.71.0.0/24", "10.71.0.10-10.71.0.49")
	a := w.agents["kill-batch-0"]
	var injected, failed int
	for round := range 3 {
		pods := make([]*pod, 12)
		for i := range pods {
			p, err := w.newPod(a.node, "f-kill-batch")
			if err != nil {
				t.Fatal(err)
			}
			pods[i] = p
		}
		var bad atomic.Int64
		var wg sync.WaitGroup
		for _, p := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.addRetry(p, addBudget); err != nil {
					t.Log(err)
					bad.Add(1)
				}
			}()
		}
		time.Sleep(time.Duration(30+rng.IntN(400)) * time.Millisecond)
		a.Kill()
		injected++
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		if err := a.StartReady(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		failed += int(bad.Load())
		// Half of them go again (with their DEL), so that the next round reuses addresses.
		live := w.live()
		for i, p := range live {
			if i%2 == round%2 {
				if err := w.remove(p, true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	failed += w.bringUp(4, "f-kill-batch", []string{"kill-batch-1"}, 4)
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// responsesLost: writes of the agents (pool status on ADD and on DEL, endpoint create, update and
// delete) reach the apiserver and the answer is lost; the agent must find out what happened.
func responsesLost(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	w := newWorld(t, "f-lost", "lost-0", "lost-1")
	w.createPool("f-lost", "10.72.0.0/24", "10.72.0.10-10.72.0.29")
	before := proxy.Injected()["lose"]
	nodes := []string{"lost-0", "lost-1"}
	targets := []apiproxy.Match{
		apiproxy.On("", "update", "spiderippools", "status"),
		apiproxy.On("", "create", "spiderendpoints", ""),
		apiproxy.On("", "update", "spiderendpoints", "-"),
		apiproxy.On("", "patch", "spiderendpoints", "-"),
		apiproxy.On("", "delete", "spiderendpoints", ""),
	}
	onAgents := func(m apiproxy.Match) apiproxy.Match {
		return func(r apiproxy.Request) bool { return strings.HasPrefix(r.Client, "agent-") && m(r) }
	}
	failed := 0
	for i := range 16 {
		proxy.LoseResponses(onAgents(targets[rng.IntN(len(targets))]), 1)
		node := nodes[i%2]
		p, err := w.newPod(node, "f-lost")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.addRetry(p, addBudget); err != nil {
			t.Log(err)
			failed++
		}
		if i%3 == 2 {
			victim := w.live()[rng.IntN(len(w.live()))]
			proxy.LoseResponses(onAgents(targets[rng.IntN(len(targets))]), 1)
			if err := w.remove(victim, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	proxy.ClearAll()
	failed += w.bringUp(3, "f-lost", nodes, 3)
	o := w.settle(settleBudget, failed)
	o.injected = proxy.Injected()["lose"] - before
	return o
}

// apiserverRestarted: kube-apiserver stops and starts again while ADDs and DELs are in flight.
func apiserverRestarted(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	nodes := []string{"restart-0", "restart-1"}
	w := newWorld(t, "f-restart", nodes...)
	w.createPool("f-restart", "10.73.0.0/24", "10.73.0.10-10.73.0.49")
	failed := w.bringUp(8, "f-restart", nodes, 4)
	injected := 0
	for range 2 {
		var wg sync.WaitGroup
		wg.Add(2)
		var bad atomic.Int64
		go func() {
			defer wg.Done()
			// New pods come up across the restart...
			pods := make([]*pod, 8)
			for i := range pods {
				p, err := w.newPod(nodes[i%2], "f-restart")
				if err != nil {
					t.Error(err)
					return
				}
				pods[i] = p
			}
			testutil.Parallel(len(pods), 8, func(i int) {
				if err := w.addRetry(pods[i], addBudget); err != nil {
					t.Log(err)
					bad.Add(1)
				}
			})
		}()
		go func() {
			defer wg.Done()
			// ...while old ones go with their DEL.
			live := w.live()
			for _, p := range live[:4] {
				if err := w.remove(p, true); err != nil {
					t.Error(err)
				}
			}
		}()
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		start := time.Now()
		if err := env.RestartAPIServer(); err != nil {
			t.Fatal(err)
		}
		injected++
		t.Logf("apiserver restarted in %v", time.Since(start).Round(time.Millisecond))
		wg.Wait()
		failed += int(bad.Load())
	}
	o := w.settle(2*settleBudget, failed)
	o.injected = injected
	return o
}

// watchesExpired: one agent's watches are cut and refused for 14 s while the other agent changes
// the pool; when it comes back, its first re-watches are answered as from a compacted resource
// version (410 Expired), so its informers relist. Then it serves DELs and ADDs.
func watchesExpired(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	nodes := []string{"expire-0", "expire-1"}
	w := newWorld(t, "f-expire", nodes...)
	w.createPool("f-expire", "10.74.0.0/24", "10.74.0.10-10.74.0.39")
	failed := w.bringUp(6, "f-expire", nodes, 4)
	victim := agentClient(nodes[0])
	watches := apiproxy.On(victim, "watch", "", "-")
	open := proxy.OpenWatches(watches)
	if open == 0 {
		t.Fatalf("agent %s has no watch open", victim)
	}
	injected := 0
	expiredBefore := proxy.Injected()["expire"]
	for round := range 2 {
		if round > 0 {
			// Every informer is back (they back off while refused) before the next cut.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			err := testenv.WaitFor(ctx, func(context.Context) (bool, error) { return proxy.OpenWatches(watches) >= open, nil })
			cancel()
			if err != nil {
				t.Fatalf("agent %s has %d watches open, had %d", victim, proxy.OpenWatches(watches), open)
			}
		}
		proxy.Record(true)
		proxy.Fail(watches, -1, 503)
		proxy.CutWatches(watches)
		injected++
		// The other node churns: pool and endpoint events the victim misses.
		deadline := time.Now().Add(14 * time.Second)
		for time.Now().Before(deadline) {
			failed += w.bringUp(2, "f-expire", nodes[1:], 2)
			for _, p := range w.live() {
				if p.node == nodes[1] && rng.IntN(2) == 0 {
					if err := w.remove(p, true); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		proxy.ClearAll()
		proxy.ExpireWatches(watches, open)
		// The victim's informers relist (a list, or a watch with initial events).
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
			return proxy.Seen(func(r apiproxy.Request) bool {
				return r.Client == victim && r.Resource == "spiderippools" && (r.Verb == "list" || r.InitialEvents)
			}) > 0, nil
		})
		cancel()
		if err != nil {
			t.Fatalf("agent %s never relisted its pools after its watches expired", victim)
		}
		t.Logf("round %d: %d watches cut; 410 Expired answered %d times so far", round+1, open, proxy.Injected()["expire"])
		proxy.Record(false)
		// The victim serves DELs and ADDs with what it relisted.
		for _, p := range w.live() {
			if p.node == nodes[0] {
				if err := w.remove(p, true); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		failed += w.bringUp(3, "f-expire", nodes[:1], 3)
	}
	// Every re-watch the victim made after a cut met the 410 (not only the relist its refused
	// watches cause anyway): each round expires as many watches as it had open.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		return proxy.Injected()["expire"]-expiredBefore >= 2*open, nil
	}); err != nil {
		t.Errorf("agent %s met %d answers 410 Expired, want %d (one per watch per round)", victim, proxy.Injected()["expire"]-expiredBefore, 2*open)
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// informerLagging: one agent's watch streams arrive 3 s late. Sandboxes are re-created (DEL then
// ADD of the same pod UID) and new pods start on that node right after: defect 1's path, where an
// ADD answered from a stale cache gave out the address the DEL had just freed.
func informerLagging(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	w := newWorld(t, "f-lag", "lag-0")
	w.createPool("f-lag", "10.75.0.0/24", "10.75.0.10-10.75.0.25")
	a := w.agents["lag-0"]
	failed := w.bringUp(4, "f-lag", []string{a.node}, 4)
	lagWatches(t, a.node, 3*time.Second)
	injected := 0
	for range 6 {
		live := w.live()
		p := live[rng.IntN(len(live))]
		// Sandbox re-creation: the runtime's DEL, then ADD of the same pod.
		if err := retryDEL(context.Background(), w, p); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		p.addr = ""
		w.mu.Unlock()
		injected++
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := w.addRetry(p, addBudget); err != nil {
				t.Log(err)
				failed++
			}
		}()
		go func() {
			defer wg.Done()
			failed += w.bringUp(1, "f-lag", []string{a.node}, 1)
		}()
		wg.Wait()
	}
	endLag(a.node)
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// lagWatches makes every watch stream of node's agent arrive d late from now on: the agent's open
// watches are cut and it re-watches through the delay.
func lagWatches(t *testing.T, node string, d time.Duration) {
	t.Helper()
	proxy.DelayWatches(apiproxy.On(agentClient(node), "watch", "", "-"), d)
	if proxy.CutWatches(apiproxy.On(agentClient(node), "watch", "", "-")) == 0 {
		t.Fatal("the agent had no watch open")
	}
	time.Sleep(d + time.Second) // the agent has re-watched with the lag
}

// endLag undoes lagWatches: the agent re-watches without the delay.
func endLag(node string) {
	proxy.ClearDelays()
	proxy.CutWatches(apiproxy.On(agentClient(node), "watch", "", "-"))
}

// controllerKilledInGC: pods vanish without their DEL (their node is lost) and the controller is
// SIGKILLed while its GC reclaims them, more than once; the restarted controller finishes.
func controllerKilledInGC(t *testing.T, rng *rand.Rand, ctl *proc) outcome {
	nodes := []string{"gc-0", "gc-1"}
	w := newWorld(t, "f-gc", nodes...)
	w.createPool("f-gc", "10.76.0.0/24", "10.76.0.10-10.76.0.41")
	failed := w.bringUp(24, "f-gc", nodes, 6)
	injected := 0
	for range 3 {
		live := w.live()
		for _, p := range live[:6] {
			if err := w.remove(p, false); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		ctl.Kill()
		injected++
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		if err := ctl.Start(); err != nil {
			t.Fatal(err)
		}
		failed += w.bringUp(6, "f-gc", nodes, 6)
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// leaderFailover: two controller replicas with leader election; each is SIGKILLed in turn (one of
// them while it leads) while leaked addresses wait, and the survivor reclaims them.
func leaderFailover(t *testing.T, rng *rand.Rand, ctl *proc) outcome {
	nodes := []string{"lead-0"}
	w := newWorld(t, "f-lead", nodes...)
	w.createPool("f-lead", "10.77.0.0/24", "10.77.0.10-10.77.0.25")
	second := newController(t, "controller-1")
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	const size = 16
	failed := w.bringUp(size-3, "f-lead", nodes, 6)
	transitions := func() int32 {
		var l coordinationv1.Lease
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: controller.DefaultLeaseName}, &l); err != nil {
			t.Fatal(err)
		}
		return ptr.Deref(l.Spec.LeaseTransitions, 0)
	}
	before := transitions()
	injected := 0
	for _, victim := range []*proc{ctl, second} {
		for _, p := range w.live()[:3] {
			if err := w.remove(p, false); err != nil {
				t.Fatal(err)
			}
		}
		victim.Kill()
		injected++
		// The leaked addresses come back through the survivor (after the lease expires if the
		// victim led), and the new pods fill the pool: they need every one of them.
		failed += w.bringUp(size-len(w.live()), "f-lead", nodes, 7)
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
	}
	second.Stop()
	if after := transitions(); after <= before {
		t.Errorf("lease transitions %d before, %d after: no failover happened", before, after)
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// nodeNotReady: a node goes NotReady and its pods are evicted (graceful deletion that no kubelet
// completes). With zombieOnNotReadyNode=true (the chart's default) their addresses come back once
// the grace period is over; with false they stay held, new pods cannot take them, until the pods
// are force-deleted. With zombieOnReadyNode=false the same holds on a Ready node whose kubelet is
// slow to finish. The pool is exact-fit, so a wrongly freed address would be handed out.
func nodeNotReady(t *testing.T, rng *rand.Rand, ctl *proc) outcome {
	nodes := []string{"nr-0", "nr-1"}
	w := newWorld(t, "f-notready", nodes...)
	w.createPool("f-notready", "10.78.0.0/24", "10.78.0.10-10.78.0.17")
	failed := w.bringUp(8, "f-notready", nodes, 4)
	injected := 0
	defer func() {
		ctl.Stop()
		ctl.args = controllerArgs()
		_ = ctl.Start()
	}()
	for _, c := range []struct {
		setting         string
		nodeReady, keep bool
	}{
		{"--gc-zombie-on-not-ready-node=true", false, false}, // the chart's default
		{"--gc-zombie-on-not-ready-node=false", false, true},
		{"--gc-zombie-on-ready-node=false", true, true}, // a live but slow kubelet
	} {
		keep := c.keep
		ctl.Stop()
		ctl.args = controllerArgs(c.setting)
		if err := ctl.Start(); err != nil {
			t.Fatal(err)
		}
		setNodeReady(t, nodes[0], c.nodeReady)
		injected++
		var evicted []*pod
		for _, p := range w.live() {
			if p.node == nodes[0] {
				evicted = append(evicted, p)
				w.mu.Lock()
				delete(w.pods, p.obj.Name)
				w.mu.Unlock()
				if err := deleteRetrying(context.Background(), p.obj); err != nil { // graceful: 2 s
					t.Fatal(err)
				}
			}
		}
		// Replacements on the Ready node.
		repl := make([]*pod, len(evicted))
		for i := range repl {
			p, err := w.newPod(nodes[1], "f-notready")
			if err != nil {
				t.Fatal(err)
			}
			repl[i] = p
		}
		if keep {
			// Well past grace period + GC scan: the evicted pods' addresses must still be held.
			time.Sleep(15 * time.Second)
			for _, p := range repl {
				if err := w.add(p); err == nil {
					t.Errorf("%s: %s got %s while the evicted pods may still run", c.setting, p.obj.Name, p.addr)
				}
				_, _ = w.cni("DEL", p)
			}
			// A Ready node's kubelet finishes: DEL, then the deletion. A NotReady node is deleted
			// for good: the pod GC force-deletes its pods.
			for _, p := range evicted {
				if c.nodeReady {
					if err := retryDEL(context.Background(), w, p); err != nil {
						t.Fatal(err)
					}
				}
				if err := deleteRetrying(context.Background(), p.obj, client.GracePeriodSeconds(0)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var bad atomic.Int64
		testutil.Parallel(len(repl), 4, func(i int) {
			if err := w.addRetry(repl[i], addBudget); err != nil {
				t.Log(err)
				bad.Add(1)
			}
		})
		failed += int(bad.Load())
		for _, p := range evicted {
			_ = deleteRetrying(context.Background(), p.obj, client.GracePeriodSeconds(0))
			_, _ = w.cni("DEL", p) // the node's kubelet, if it ever comes back, frees nothing
		}
		setNodeReady(t, nodes[0], true)
		// Back to an even spread for the next setting.
		live := w.live()
		for _, p := range live[:len(live)/2] {
			if err := w.remove(p, true); err != nil {
				t.Fatal(err)
			}
		}
		failed += w.bringUp(len(live)/2, "f-notready", nodes[:1], 4)
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// poolPastSizeLimit: a pool whose records in status format would outgrow etcd's request limit
// (128 KiB here: about 300 of these 400-byte records) fills far past it. Its records live in
// blocks, so no ADD fails for size; the status mirror, which cannot carry them, keeps the counts
// and says the records are in blocks; DELs and new pods keep passing.
func poolPastSizeLimit(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	nodes := []string{"big-0", "big-1"}
	// Long names make records large (about 400 bytes each).
	w := newWorld(t, "f-limit-"+strings.Repeat("x", 55), nodes...)
	w.podPrefix = strings.Repeat("p", 200)
	w.createPool("f-limit", "10.79.0.0/20", "10.79.0.1-10.79.15.254")
	failed := 0
	for range 20 {
		pods := make([]*pod, 40)
		for i := range pods {
			p, err := w.newPod(nodes[i%2], "f-limit")
			if err != nil {
				t.Fatal(err)
			}
			pods[i] = p
		}
		testutil.Parallel(len(pods), 8, func(i int) {
			if err := w.add(pods[i]); err != nil {
				t.Errorf("ADD %s: %v", pods[i].obj.Name, err)
				_, _ = w.cni("DEL", pods[i])
				_ = w.remove(pods[i], false)
			}
		})
	}
	n := len(w.live())
	t.Logf("%d pods hold records of about 400 bytes in one pool (status format: about 300 fit)", n)
	for _, p := range w.live()[:20] {
		if err := w.remove(p, true); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	failed += w.bringUp(10, "f-limit", nodes, 5)
	o := w.settle(2*settleBudget, failed)
	var pl v2beta1.SpiderIPPool
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: "f-limit"}, &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Status.AllocatedIPs != nil || pl.Annotations[ipblock.AnnoRecordsInBlocks] != "true" {
		o.problems = append(o.problems, fmt.Sprintf("the status mirror of a pool past the request limit: allocatedIPs set=%v, annotations %v",
			pl.Status.AllocatedIPs != nil, pl.Annotations))
	} else {
		// The fault: the records the pool holds are more than one object may store.
		o.injected = n
	}
	_ = rng
	return o
}

// overlappingPools: pools whose ranges overlap are created at the same moment (no webhook to
// refuse the second), and pods draw from all of them at once.
func overlappingPools(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	nodes := []string{"ovl-0", "ovl-1"}
	w := newWorld(t, "f-overlap", nodes...)
	names := []string{"f-ovl-a", "f-ovl-b", "f-ovl-c"}
	ranges := []string{"10.80.0.10-10.80.0.29", "10.80.0.20-10.80.0.39", "10.80.0.25-10.80.0.34"}
	var wg sync.WaitGroup
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &v2beta1.SpiderIPPool{}
			p.Name = names[i]
			p.Spec = v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.80.0.0/24", IPs: []string{ranges[i]}}
			if err := env.Client.Create(context.Background(), p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	w.pools = append(w.pools, names...)
	// Every pod of one wave names one of the pools; the waves fill the union (30 addresses).
	failed := 0
	pods := make([]*pod, 0, 26)
	for i := range 26 {
		p, err := w.newPod(nodes[i%2], names[rng.IntN(len(names))])
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	var exhausted atomic.Int64
	testutil.Parallel(len(pods), 8, func(i int) {
		// A pool whose own free addresses are taken through another pool is exhausted: that
		// pod is not brought up (its owner would pick another pool), and counts as such.
		if err := w.add(pods[i]); err != nil {
			exhausted.Add(1)
			_, _ = w.cni("DEL", pods[i])
			_ = w.remove(pods[i], false)
		}
	})
	t.Logf("%d of %d pods exhausted their pool", exhausted.Load(), len(pods))
	o := w.settle(settleBudget, failed)
	o.injected = len(names)
	return o
}

// exactFitChurn: pods == addresses on three nodes for at least five minutes, scaled down and up
// at random with a fifth of the DELs forgotten, while every fault above fires at random.
func exactFitChurn(t *testing.T, rng *rand.Rand, ctl *proc) outcome {
	duration := 5 * time.Minute
	if v := os.Getenv("FAULT_CHURN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FAULT_CHURN=%q: %v", v, err)
		}
		duration = d
	}
	const size = 24
	nodes := []string{"churn-0", "churn-1", "churn-2"}
	w := newWorld(t, "f-churn", nodes...)
	w.createPool("f-churn", "10.81.0.0/24", "10.81.0.10-10.81.0.33")
	failed := w.bringUp(size, "f-churn", nodes, 6)
	injected := map[string]int{}
	rounds := 0
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		rounds++
		live := w.live()
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		k := 1 + rng.IntN(size/2)
		for _, p := range live[:k] {
			if err := w.remove(p, rng.IntN(5) != 0); err != nil {
				t.Fatal(err)
			}
		}
		// A fault, fired while the replacements come up.
		fault := rng.IntN(8)
		var fire func()
		switch fault {
		case 0:
			a := w.agents[nodes[rng.IntN(len(nodes))]]
			fire = func() {
				a.Kill()
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
				if err := a.StartReady(); err != nil {
					t.Error(err)
				}
			}
			injected["agent kill"]++
		case 1:
			proxy.LoseResponses(func(r apiproxy.Request) bool {
				return strings.HasPrefix(r.Client, "agent-") && (r.Verb == "update" || r.Verb == "create" || r.Verb == "delete")
			}, 1+rng.IntN(3))
			injected["lost response"]++
		case 2:
			proxy.CutWatches(func(r apiproxy.Request) bool { return true })
			injected["watches cut"]++
		case 3:
			node := nodes[rng.IntN(len(nodes))]
			proxy.DelayWatches(apiproxy.On(agentClient(node), "watch", "", "-"), 2*time.Second)
			proxy.CutWatches(apiproxy.On(agentClient(node), "watch", "", "-"))
			injected["informer lag"]++
		case 4:
			fire = func() {
				ctl.Kill()
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
				if err := ctl.Start(); err != nil {
					t.Error(err)
				}
			}
			injected["controller kill"]++
		case 5:
			if injected["apiserver restart"] < 2 {
				fire = func() {
					if err := env.RestartAPIServer(); err != nil {
						t.Error(err)
					}
				}
				injected["apiserver restart"]++
			}
		case 6:
			proxy.Fail(func(r apiproxy.Request) bool { return strings.HasPrefix(r.Client, "agent-") && r.Verb != "watch" }, 1+rng.IntN(3), 500)
			injected["API error"]++
		case 7:
			node := nodes[rng.IntN(len(nodes))]
			m := apiproxy.On(agentClient(node), "watch", "", "-")
			proxy.ExpireWatches(m, proxy.OpenWatches(m))
			proxy.CutWatches(m)
			injected["watches expired (410)"]++
		}
		var wg sync.WaitGroup
		if fire != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
				fire()
			}()
		}
		failed += w.bringUp(k, "f-churn", nodes, 6)
		wg.Wait()
		proxy.ClearAll()
		if fault == 3 {
			proxy.CutWatches(func(r apiproxy.Request) bool { return true })
		}
	}
	total := 0
	for _, n := range injected {
		total += n
	}
	t.Logf("churn: %d rounds over %v, faults %v", rounds, duration, injected)
	o := w.settle(settleBudget, failed)
	o.injected = total
	return o
}
