package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// churnSeed fixes the test's choices (how many replicas go, which, which DELs are forgotten, which
// node each new replica lands on): a failure replays with the same seed. CHURN_SEED overrides it
// to explore others.
const churnSeed = 20261125

// churnController is the spiderpool-controller run in process, restartable.
type churnController struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	starts int
	closed bool // after the test's cleanup, a late start is a no-op
}

func (c *churnController) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil || c.closed {
		return
	}
	cfg := controller.DefaultConfig()
	cfg.EnsureCoordinator = false // other suites create and delete SpiderCoordinator "default"
	cfg.HealthAddr, cfg.MetricsAddr = "0", "0"
	cfg.Logger = quietLogger()
	cfg.SkipNameValidation = true
	cfg.WebhookPort = 0
	cfg.LeaderElection = true // a restart hands the lease over, as a rolling update of the Deployment does
	cfg.GCInterval = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	c.starts++
	done := c.done
	go func() { done <- controller.Run(ctx, cfg, env.Config) }()
}

// stop cancels the running controller and waits for Run to return; final also forbids later starts.
func (c *churnController) stop(final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = c.closed || final
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("controller.Run did not return within 30s of its cancellation")
	}
}

// churnPod is one replica as the test (kubelet and ReplicaSet controller) knows it.
type churnPod struct {
	pod   *corev1.Pod
	agent *runningAgent
	addr  string
}

// churnRecords reads the pool's records (IP → pod UID) without t.Fatal, for goroutines: wherever
// they live (blockstore.Allocations, the SpiderIPBlocks read live once the controller converted
// the pool). The pool it returns carries those records and their count in its status, so that the
// invariants stated on a status apply; for a block-format pool the API's status is the
// controller's mirror, compared with the records on its own (checkState).
func churnRecords(ctx context.Context, name string) (map[string]string, *v2beta1.SpiderIPPool, error) {
	var p v2beta1.SpiderIPPool
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
		return nil, nil, err
	}
	allocs, err := blockstore.Allocations(ctx, env.Client, &p)
	if err != nil {
		return nil, nil, err
	}
	if ipblock.InBlocks(&p) {
		if err := p.Status.SetAllocations(allocs); err != nil {
			return nil, nil, err
		}
		p.Status.AllocatedIPCount = ptr.To(int64(len(allocs)))
	}
	out := map[string]string{}
	for ip, a := range allocs {
		out[ip] = a.PodUID
	}
	return out, &p, nil
}

// TestChurnExactFitPool is the acceptance of the controller: a Deployment of N replicas over three
// nodes draws from a pool of exactly N addresses and is scaled down and back up, round after round.
// Most removed replicas get their CNI DEL; about one in five does not (its kubelet crashed and the
// pod was force-deleted), so the scale-up only completes once the controller's IP GC has reclaimed
// those addresses; their DEL comes only after that, when the kubelet is back, and frees nothing.
// The controller is restarted twice, while forgotten addresses wait for it. In the end every live
// replica holds exactly one address, no address is held twice, no record outlives its pod, and
// every replica's SpiderEndpoint names its address.
func TestChurnExactFitPool(t *testing.T) {
	const (
		ns         = "churn"
		pool       = "churn-exact-24"
		replicas   = 24
		rounds     = 6
		forgetRate = 0.2
		addBudget  = 60 * time.Second // the kubelet keeps retrying sandbox creation about this long here
		addConc    = 4
	)
	t0 := time.Now()
	seed := uint64(churnSeed)
	if v := os.Getenv("CHURN_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHURN_SEED=%q: %v", v, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d (CHURN_SEED to change): %d replicas, pool of %d addresses, %d rounds, ~%.0f%% of DELs forgotten",
		seed, replicas, replicas, rounds, forgetRate*100)

	makeNamespace(t, ns, nil)
	nodes := []string{"churn-node-0", "churn-node-1", "churn-node-2"}
	for _, n := range nodes {
		makeNode(t, n, nil)
	}
	createPool(t, pool, "10.160.0.0/24", "10.160.0.10-10.160.0.33")
	agents := map[string]*runningAgent{}
	for _, n := range nodes {
		agents[n] = startAgent(t, n, nil)
	}

	// The Deployment and its ReplicaSet: nothing reconciles them here, they give the replicas the
	// owners a real Deployment's pods have (the agent records the top controller).
	labels := map[string]string{"app": "churn-web"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn-web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}
	if err := env.Client.Create(testContext(t), deploy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), deploy) })
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn-web-5d8f7c9b4",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(deploy, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}
	if err := env.Client.Create(testContext(t), rs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), rs) })
	anno := map[string]string{v2beta1.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}

	ctl := &churnController{}
	ctl.start()

	var (
		mu       sync.Mutex
		live     = map[string]*churnPod{} // pod name → replica
		names    []string                 // every replica name ever created, for the cleanup
		retries  atomic.Int64             // failed ADDs retried, all rounds
		otherErr atomic.Int64             // failed ADDs whose error is not exhaustion
	)
	// Whatever the outcome, the replicas get their DEL, the endpoints and pods go and the pool is
	// released, then the controller stops; registered after the agents so that it runs while they
	// still do.
	t.Cleanup(func() {
		mu.Lock()
		rest := make([]*churnPod, 0, len(live))
		for _, p := range live {
			rest = append(rest, p)
		}
		mu.Unlock()
		testutil.Parallel(len(rest), addConc, func(i int) {
			_, _ = cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: rest[i].pod, socket: rest[i].agent.socket}.run(t)
		})
		ctx := context.Background()
		for _, name := range names {
			_ = env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, client.GracePeriodSeconds(0))
			ep := &v2beta1.SpiderEndpoint{}
			if env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ep) == nil {
				if controllerutil.RemoveFinalizer(ep, v2beta1.Finalizer) {
					_ = env.Client.Update(ctx, ep)
				}
				_ = env.Client.Delete(ctx, ep)
			}
		}
		if err := ctl.stop(true); err != nil {
			t.Errorf("controller.Run: %v", err)
		}
		p := &v2beta1.SpiderIPPool{}
		if env.Client.Get(ctx, client.ObjectKey{Name: pool}, p) == nil {
			p.Finalizers = nil
			_ = env.Client.Update(ctx, p)
			_ = env.Client.Delete(ctx, p)
		}
	})

	nodeLoad := map[string]int{}
	// newReplica creates a replica with a fresh name (and so a fresh UID) on the least loaded
	// node, ties broken at random, as the scheduler spreads a Deployment.
	newReplica := func() *churnPod {
		t.Helper()
		least := slices.MinFunc(nodes, func(a, b string) int { return nodeLoad[a] - nodeLoad[b] })
		var cands []string
		for _, n := range nodes {
			if nodeLoad[n] == nodeLoad[least] {
				cands = append(cands, n)
			}
		}
		node := cands[rng.IntN(len(cands))]
		nodeLoad[node]++
		const letters = "bcdfghjklmnpqrstvwxz2456789"
		var sfx [5]byte
		for i := range sfx {
			sfx[i] = letters[rng.IntN(len(letters))]
		}
		name := rs.Name + "-" + string(sfx[:])
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: anno,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		if err := env.Client.Create(testContext(t), p); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		return &churnPod{pod: p, agent: agents[node]}
	}

	// addWithRetry is the kubelet bringing a sandbox up: ADD until it succeeds, tearing the failed
	// sandbox down with DEL in between as the container runtime does.
	addWithRetry := func(p *churnPod) (tries int, err error) {
		inv := cniInvocation{ifName: "eth0", pod: p.pod, socket: p.agent.socket}
		deadline := time.Now().Add(addBudget)
		var last error
		for tries = 1; ; tries++ {
			res, err := inv.add(t)
			if err == nil {
				addrs := addresses(res)
				if len(addrs) != 1 {
					return tries, fmt.Errorf("ADD %s gave %v, want one address", p.pod.Name, addrs)
				}
				p.addr = addrs[0]
				return tries, nil
			}
			last = err
			retries.Add(1)
			if !strings.Contains(strings.ToLower(err.Error()), "exhaust") {
				if otherErr.Add(1) <= 5 {
					t.Logf("ADD %s (try %d): %v", p.pod.Name, tries, err)
				}
			}
			if _, derr := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: p.pod, socket: p.agent.socket}).run(t); derr != nil {
				return tries, fmt.Errorf("DEL after failed ADD of %s: %v", p.pod.Name, derr)
			}
			if time.Now().After(deadline) {
				return tries, fmt.Errorf("ADD %s still failing after %v (%d tries): %v", p.pod.Name, addBudget, tries, last)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	// scaleUp creates k replicas and brings them up concurrently.
	scaleUp := func(k int) (maxTries int) {
		t.Helper()
		fresh := make([]*churnPod, k)
		for i := range fresh {
			fresh[i] = newReplica()
		}
		tries := make([]int, k)
		errs := make([]error, k)
		testutil.Parallel(k, addConc, func(i int) { tries[i], errs[i] = addWithRetry(fresh[i]) })
		if err := errors.Join(errs...); err != nil {
			recs, _, _ := churnRecords(context.Background(), pool)
			t.Fatalf("scale-up: %v\npool records: %v", err, recs)
		}
		mu.Lock()
		for _, p := range fresh {
			live[p.pod.Name] = p
		}
		mu.Unlock()
		return slices.Max(tries)
	}

	// checkState compares the pool with the live replicas: one record each, with the address its
	// ADD returned, nothing else held.
	checkState := func(when string) {
		t.Helper()
		bad := 0
		errorf := func(format string, args ...any) {
			t.Helper()
			bad++
			t.Errorf(format, args...)
		}
		recs, p, err := churnRecords(testContext(t), pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := ipamtest.CheckInvariants([]*v2beta1.SpiderIPPool{p}); err != nil {
			errorf("%s: invariants: %v", when, err)
		}
		liveUIDs := map[string]*churnPod{}
		byAddr := map[string]string{}
		for _, lp := range live {
			liveUIDs[string(lp.pod.UID)] = lp
			if other, dup := byAddr[lp.addr]; dup {
				errorf("%s: %s was given to both %s and %s", when, lp.addr, other, lp.pod.Name)
			}
			byAddr[lp.addr] = lp.pod.Name
			if _, err := netip.ParseAddr(lp.addr); err != nil {
				errorf("%s: %s got %q: %v", when, lp.pod.Name, lp.addr, err)
			}
		}
		perUID := map[string]int{}
		for ip, uid := range recs {
			perUID[uid]++
			lp, ok := liveUIDs[uid]
			if !ok {
				errorf("%s: record %s names pod UID %s, which no live replica has (leak)", when, ip, uid)
				continue
			}
			if lp.addr != ip {
				errorf("%s: record %s names %s, whose ADD returned %s", when, ip, lp.pod.Name, lp.addr)
			}
		}
		for uid, lp := range liveUIDs {
			if perUID[uid] != 1 {
				errorf("%s: live replica %s (UID %s) holds %d records, want 1", when, lp.pod.Name, uid, perUID[uid])
			}
		}
		if len(recs) != len(live) || len(live) != replicas {
			errorf("%s: %d records, %d live replicas, want %d of each", when, len(recs), len(live), replicas)
		}
		// The count is the controller's mirror for a block-format pool: it follows the records
		// within seconds (ipam-blocks.md), so it is waited for, not read once.
		got := int64(-1)
		mirrorCtx, cancel := context.WithTimeout(testContext(t), 15*time.Second)
		err = testenv.WaitFor(mirrorCtx, func(ctx context.Context) (bool, error) {
			var cur v2beta1.SpiderIPPool
			if err := env.Client.Get(ctx, client.ObjectKey{Name: pool}, &cur); err != nil {
				return false, err
			}
			got = ptr.Deref(cur.Status.AllocatedIPCount, -1)
			return got == int64(len(recs)) || !ipblock.InBlocks(&cur), nil
		})
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		if got != int64(len(recs)) {
			errorf("%s: allocatedIPCount = %d, records %d", when, got, len(recs))
		}
		if bad > 0 {
			t.FailNow()
		}
	}

	initStart := time.Now()
	tries := scaleUp(replicas)
	t.Logf("initial rollout: %d replicas up in %v (max %d ADD tries)", replicas, time.Since(initStart).Round(time.Millisecond), tries)
	checkState("after the initial rollout")

	restartRounds := map[int]bool{2: true, 4: true}
	var gcTimes []time.Duration
	for round := 1; round <= rounds; round++ {
		roundStart := time.Now()
		retriesBefore := retries.Load()
		mu.Lock()
		cur := make([]string, 0, len(live))
		for name := range live {
			cur = append(cur, name)
		}
		mu.Unlock()
		slices.Sort(cur)
		rng.Shuffle(len(cur), func(i, j int) { cur[i], cur[j] = cur[j], cur[i] })
		k := 1 + rng.IntN(replicas*2/3)
		victims := cur[:k]
		forget := make([]bool, k)
		nForget := 0
		for i := range forget {
			forget[i] = rng.Float64() < forgetRate
			if forget[i] {
				nForget++
			}
		}
		restart := restartRounds[round]
		if restart {
			// Down before the scale-down: the deletions of forgotten replicas happen while no
			// controller watches, only its startup scan can find them.
			if err := ctl.stop(false); err != nil {
				t.Fatalf("round %d: controller.Run: %v", round, err)
			}
		}

		// Scale down. A DEL'd replica goes as with a live kubelet: graceful deletion, CNI DEL, then
		// the kubelet removes the object. A forgotten one is force-deleted (its node is gone) and
		// its address waits for the GC.
		forgottenUIDs := map[string]string{} // UID → name
		delErrs := make([]error, k)
		victimPods := make([]*churnPod, k)
		mu.Lock()
		for i, name := range victims {
			victimPods[i] = live[name]
			delete(live, name)
			nodeLoad[victimPods[i].pod.Spec.NodeName]--
			if forget[i] {
				forgottenUIDs[string(victimPods[i].pod.UID)] = name
			}
		}
		mu.Unlock()
		deletedAt := time.Now()
		testutil.Parallel(k, addConc, func(i int) {
			p := victimPods[i]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if !forget[i] {
				if err := env.Client.Delete(ctx, p.pod); err != nil {
					delErrs[i] = err
					return
				}
				if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: p.pod, socket: p.agent.socket}).run(t); err != nil {
					delErrs[i] = fmt.Errorf("DEL %s: %w", p.pod.Name, err)
					return
				}
			}
			if err := env.Client.Delete(ctx, p.pod, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				delErrs[i] = err
			}
		})
		if err := errors.Join(delErrs...); err != nil {
			t.Fatalf("round %d scale-down: %v", round, err)
		}

		// Watch the forgotten addresses go, to report how long the GC took.
		gcDone := make(chan time.Duration, 1)
		watchCtx, stopWatch := context.WithTimeout(context.Background(), 2*addBudget)
		go func() {
			defer stopWatch()
			for {
				recs, _, err := churnRecords(watchCtx, pool)
				if err == nil {
					held := false
					for _, uid := range recs {
						if _, ok := forgottenUIDs[uid]; ok {
							held = true
							break
						}
					}
					if !held {
						gcDone <- time.Since(deletedAt)
						return
					}
				}
				select {
				case <-watchCtx.Done():
					gcDone <- -1
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()

		var restarted sync.WaitGroup
		if restart {
			// The new controller comes up a few seconds into the scale-up, while the replicas that
			// need a forgotten address are failing their ADDs.
			restarted.Add(1)
			go func() {
				defer restarted.Done()
				time.Sleep(3 * time.Second)
				ctl.start()
			}()
		}
		maxTries := scaleUp(k)
		restarted.Wait()
		gcTook := <-gcDone
		stopWatch()
		// The crashed kubelets come back and tear down the sandboxes they lost track of: these
		// DELs arrive after the GC reclaimed the addresses and new replicas took them, and must
		// free nothing (checkState below).
		for i, p := range victimPods {
			if forget[i] {
				if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: p.pod, socket: p.agent.socket}).run(t); err != nil {
					t.Errorf("round %d: late DEL of %s: %v", round, p.pod.Name, err)
				}
			}
		}
		if nForget > 0 {
			gcTimes = append(gcTimes, gcTook)
		}
		restartNote := ""
		if restart {
			restartNote = fmt.Sprintf(", controller restarted (start #%d) 3s after the scale-down", ctl.starts)
		}
		t.Logf("round %d: scaled down %d (%d DEL'd, %d forgotten), back up to %d; %d failed ADDs retried (max %d tries for one pod); forgotten IPs freed %v after deletion%s; round took %v",
			round, k, k-nForget, nForget, replicas, retries.Load()-retriesBefore, maxTries,
			gcTook.Round(time.Millisecond), restartNote, time.Since(roundStart).Round(time.Millisecond))
		checkState(fmt.Sprintf("after round %d", round))
	}

	// Every replica's SpiderEndpoint names its pod UID and address; the endpoints of removed
	// replicas are gone (DEL or GC) once a full scan has passed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var problems []string
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		problems = problems[:0]
		var eps v2beta1.SpiderEndpointList
		if err := env.Client.List(ctx, &eps, client.InNamespace(ns)); err != nil {
			return false, err
		}
		seen := map[string]bool{}
		for i := range eps.Items {
			ep := &eps.Items[i]
			lp, ok := live[ep.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("endpoint %s (UID %s) outlives its replica", ep.Name, ep.Status.Current.UID))
				continue
			}
			seen[ep.Name] = true
			cur := ep.Status.Current
			if cur.UID != string(lp.pod.UID) || len(cur.IPs) != 1 || cur.IPs[0].IPv4 == nil ||
				!strings.HasPrefix(*cur.IPs[0].IPv4, lp.addr+"/") || ptr.Deref(cur.IPs[0].IPv4Pool, "") != pool {
				problems = append(problems, fmt.Sprintf("endpoint %s = %+v, want UID %s and %s from %s", ep.Name, cur, lp.pod.UID, lp.addr, pool))
			}
		}
		for name := range live {
			if !seen[name] {
				problems = append(problems, "no endpoint for live replica "+name)
			}
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Errorf("SpiderEndpoints: %v", err)
		for _, p := range problems {
			t.Error(p)
		}
	}
	checkState("at the end")
	// The controller runs with the chart's defaults (ipam.enableIPBlocks): by now it converted the
	// pool, and the rounds ran on blocks.
	if p := getPool(t, pool); !ipblock.InBlocks(p) {
		t.Errorf("pool %s is not in block format at the end (annotations %v), want it converted by the controller", pool, p.Annotations)
	}
	t.Logf("done in %v: %d replicas created in all, %d ADDs retried (%d not for exhaustion), controller started %d times, GC reclaim per round %v",
		time.Since(t0).Round(time.Millisecond), len(names), retries.Load(), otherErr.Load(), ctl.starts, gcTimes)
}
