package faults

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// world is one fault class's namespace, nodes, agents, pools and pods.
type world struct {
	t      *testing.T
	ns     string
	agents map[string]*agent // by node
	pools  []string
	// podPrefix, when set, starts every pod name instead of the namespace.
	podPrefix string
	// podGrace is the pods' terminationGracePeriodSeconds; 0 means 2.
	podGrace int64

	mu     sync.Mutex
	pods   map[string]*pod // live pods by name
	seq    int
	allocs atomic.Int64 // successful ADDs
	tries  atomic.Int64 // failed ADDs retried
}

// pod is a pod as its kubelet knows it.
type pod struct {
	obj  *corev1.Pod
	node string
	addr string // what its ADD returned; "" until one succeeded
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newWorld creates namespace ns and nodes with their agents started.
func newWorld(t *testing.T, ns string, nodes ...string) *world {
	t.Helper()
	w := &world{t: t, ns: ns, agents: map[string]*agent{}, pods: map[string]*pod{}}
	ctx := testContext(t)
	if err := env.Client.Create(ctx, build.Namespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := env.Client.Create(ctx, build.Node(n)); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
		setNodeReady(t, n, true)
		a := newAgent(t, n)
		if err := a.StartReady(); err != nil {
			t.Fatal(err)
		}
		w.agents[n] = a
	}
	// Runs before the agents' own cleanups stop them: every pod still known gets its DEL.
	t.Cleanup(w.teardown)
	return w
}

// setNodeReady sets the node's Ready condition, as its kubelet (or the node lifecycle
// controller, for false) would.
func setNodeReady(t *testing.T, name string, ready bool) {
	t.Helper()
	ctx := testContext(t)
	var n corev1.Node
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: "FaultSuite",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
}

// createPool creates an IPv4 pool of ips in subnet for pods naming it.
func (w *world) createPool(name, subnet string, ips ...string) {
	w.t.Helper()
	p := build.Pool(name, subnet, build.Version(4), build.IPs(ips...))
	if err := env.Client.Create(testContext(w.t), p); err != nil {
		w.t.Fatal(err)
	}
	w.pools = append(w.pools, name)
}

// newPod creates a pod bound to node drawing from pool (its annotation ipam.spidernet.io/ippool).
func (w *world) newPod(node, pool string) (*pod, error) {
	return w.newOwnedPod(node, map[string]string{v2beta1.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}, nil, nil)
}

// newOwnedPod creates a pod bound to node with annotations, labels and owners.
func (w *world) newOwnedPod(node string, anno, labels map[string]string, owners []metav1.OwnerReference) (*pod, error) {
	w.mu.Lock()
	w.seq++
	prefix := w.ns
	if w.podPrefix != "" {
		prefix = w.podPrefix
	}
	name := fmt.Sprintf("%s-%04d", prefix, w.seq)
	w.mu.Unlock()
	opts := []build.Option{build.Annotations(anno), build.Labels(labels), build.OnNode(node),
		build.TerminationGrace(cmp.Or(w.podGrace, 2)), build.Container("c", "busybox")}
	for _, o := range owners {
		opts = append(opts, build.Owner(o))
	}
	obj := build.Pod(w.ns, name, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createRetrying(ctx, obj); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", name, err)
	}
	p := &pod{obj: obj, node: node}
	w.mu.Lock()
	w.pods[name] = p
	w.mu.Unlock()
	return p, nil
}

// createRetrying creates obj, retrying while the apiserver is unreachable (a fault may have
// restarted it): the test's own writes are not what is under test.
func createRetrying(ctx context.Context, obj client.Object) error {
	var last error
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		last = env.Client.Create(ctx, obj)
		if last == nil {
			return true, nil
		}
		if apierrors.IsAlreadyExists(last) || apierrors.IsInvalid(last) {
			return false, last
		}
		time.Sleep(200 * time.Millisecond)
		return false, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// cni runs the spiderpool plugin binary for p on its node's agent, as the container runtime does.
func (w *world) cni(command string, p *pod) ([]byte, error) {
	dir := filepath.Join(workDir, "cni-log")
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "net", "type": "macvlan",
		"ipam": map[string]any{"type": "spiderpool", "ipam_unix_socket_path": w.agents[p.node].socket,
			"log_file_path": filepath.Join(dir, "spiderpool.log")}})
	if err != nil {
		return nil, err
	}
	uid := string(p.obj.UID)
	cmd := exec.Command(filepath.Join(bin, "spiderpool"))
	cmd.Env = append(os.Environ(), "SPIDERPOOL_CNI_LOG_DIR="+dir,
		"CNI_COMMAND="+command, "CNI_CONTAINERID=ctr-"+uid, "CNI_NETNS=/var/run/netns/"+p.obj.Name,
		"CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=ctr-%s;K8S_POD_UID=%s",
			p.obj.Namespace, p.obj.Name, uid, uid))
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var cniErr cnitypes.Error
		if jerr := json.Unmarshal(stdout.Bytes(), &cniErr); jerr == nil && cniErr.Msg != "" {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("plugin %s: %v: stdout %q stderr %q", command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// add runs one ADD and records the address it returned.
func (w *world) add(p *pod) error {
	out, err := w.cni("ADD", p)
	if err != nil {
		return err
	}
	res, err := types100.NewResult(out)
	if err != nil {
		return fmt.Errorf("parse result %s: %w", out, err)
	}
	r, err := types100.GetResult(res)
	if err != nil {
		return err
	}
	if len(r.IPs) != 1 {
		return fmt.Errorf("ADD %s returned %d addresses, want 1: %s", p.obj.Name, len(r.IPs), out)
	}
	addr := r.IPs[0].Address.IP.String()
	w.mu.Lock()
	if p.addr != "" && p.addr != addr {
		w.mu.Unlock()
		return fmt.Errorf("ADD %s returned %s, an earlier ADD of the same sandbox %s", p.obj.Name, addr, p.addr)
	}
	p.addr = addr
	w.mu.Unlock()
	w.allocs.Add(1)
	return nil
}

// addRetry is the kubelet bringing a sandbox up: ADD until it succeeds within budget, with the
// runtime's DEL after each failure. A DEL that fails is retried on the next round (the runtime
// keeps the sandbox for its garbage collection).
func (w *world) addRetry(p *pod, budget time.Duration) error {
	deadline := time.Now().Add(budget)
	var last error
	for {
		err := w.add(p)
		if err == nil {
			return nil
		}
		last = err
		w.tries.Add(1)
		if _, derr := w.cni("DEL", p); derr != nil {
			last = errors.Join(last, derr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ADD %s still failing after %v: %w", p.obj.Name, budget, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// clientGrace0 deletes at once, as the node's kubelet or the pod GC confirms a deletion.
var clientGrace0 = client.GracePeriodSeconds(0)

// remove takes a pod away: with del, as a live kubelet does (graceful deletion, CNI DEL, then the
// object goes); without, as when its node is lost (force deletion, no DEL: the GC's case).
func (w *world) remove(p *pod, del bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w.mu.Lock()
	delete(w.pods, p.obj.Name)
	w.mu.Unlock()
	if del {
		if err := deleteRetrying(ctx, p.obj); err != nil {
			return err
		}
		if err := retryDEL(ctx, w, p); err != nil {
			return err
		}
	}
	return deleteRetrying(ctx, p.obj, client.GracePeriodSeconds(0))
}

func retryDEL(ctx context.Context, w *world, p *pod) error {
	var last error
	err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		_, last = w.cni("DEL", p)
		if last != nil {
			time.Sleep(300 * time.Millisecond)
		}
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("DEL %s: %w (last: %v)", p.obj.Name, err, last)
	}
	return nil
}

func deleteRetrying(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	var last error
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		last = client.IgnoreNotFound(env.Client.Delete(ctx, obj, opts...))
		if last != nil {
			time.Sleep(200 * time.Millisecond)
		}
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w (last: %v)", obj.GetName(), err, last)
	}
	return nil
}

// live returns the pods the world keeps, by name.
func (w *world) live() []*pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*pod, 0, len(w.pods))
	for _, p := range w.pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].obj.Name < out[j].obj.Name })
	return out
}

// teardown gives every live pod its DEL and removes the pods, endpoints and pools.
func (w *world) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, p := range w.live() {
		if a := w.agents[p.node]; a != nil && a.Running() {
			_, _ = w.cni("DEL", p)
		}
	}
	_ = env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(w.ns), client.GracePeriodSeconds(0))
	var eps v2beta1.SpiderEndpointList
	if env.Client.List(ctx, &eps, client.InNamespace(w.ns)) == nil {
		for i := range eps.Items {
			ep := &eps.Items[i]
			if controllerutil.RemoveFinalizer(ep, v2beta1.Finalizer) {
				_ = env.Client.Update(ctx, ep)
			}
			_ = env.Client.Delete(ctx, ep)
		}
	}
	for _, name := range w.pools {
		p := &v2beta1.SpiderIPPool{}
		if env.Client.Get(ctx, client.ObjectKey{Name: name}, p) == nil {
			p.Finalizers = nil
			_ = env.Client.Update(ctx, p)
			_ = env.Client.Delete(ctx, p)
		}
	}
	_ = env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}})
}

// outcome is what one fault class reports.
type outcome struct {
	class       string
	injected    int
	allocations int64
	duplicates  int
	leaks       int // records or endpoints of no live pod, after GC
	noAddress   int // live pods without an address
	problems    []string
}

// settle waits (up to budget) for the state to agree with the live pods once GC has had its
// turn, then returns the last check's findings: a leak left after budget counts as a leak.
func (w *world) settle(budget time.Duration, noAddress int) outcome {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var o outcome
	_ = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer rcancel()
		c, err := w.check(rctx)
		if err != nil {
			o.problems = []string{err.Error()}
			return false, nil
		}
		o = c
		return c.duplicates == 0 && c.leaks == 0 && len(c.problems) == 0, nil
	})
	o.allocations = w.allocs.Load()
	o.noAddress += noAddress
	return o
}

// check compares pools, endpoints and live pods once.
func (w *world) check(ctx context.Context) (outcome, error) {
	var o outcome
	live := w.live()
	byUID := map[string]*pod{}
	told := map[string]string{} // address → pod told it
	for _, p := range live {
		byUID[string(p.obj.UID)] = p
		if p.addr == "" {
			o.noAddress++
			o.problems = append(o.problems, fmt.Sprintf("pod %s has no address", p.obj.Name))
			continue
		}
		if other, dup := told[p.addr]; dup {
			o.duplicates++
			o.problems = append(o.problems, fmt.Sprintf("%s was given to both %s and %s", p.addr, other, p.obj.Name))
		}
		told[p.addr] = p.obj.Name
	}

	var pools []*v2beta1.SpiderIPPool
	holder := map[string]string{} // address → pool/UID holding it
	records := map[string][]string{}
	for _, name := range w.pools {
		var pl v2beta1.SpiderIPPool
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &pl); err != nil {
			return o, fmt.Errorf("read pool %s: %w", name, err)
		}
		allocs, err := blockstore.Allocations(ctx, env.Client, &pl)
		if err != nil {
			return o, fmt.Errorf("pool %s: %w", name, err)
		}
		if got := ptr.Deref(pl.Status.AllocatedIPCount, 0); got != int64(len(allocs)) {
			o.problems = append(o.problems, fmt.Sprintf("pool %s: allocatedIPCount %d, %d records", name, got, len(allocs)))
		}
		if ipblock.InBlocks(&pl) {
			// The invariants below are stated on records in status: check the blocks' records
			// there, on a copy. The real status is the controller's mirror, checked by count
			// above.
			cp := pl.DeepCopy()
			if err := cp.Status.SetAllocations(allocs); err != nil {
				return o, fmt.Errorf("pool %s: %w", name, err)
			}
			pools = append(pools, cp)
		} else {
			pools = append(pools, &pl)
		}
		for ip, a := range allocs {
			if prev, dup := holder[ip]; dup {
				o.duplicates++
				o.problems = append(o.problems, fmt.Sprintf("%s is held in %s and in %s/%s", ip, prev, name, a.PodUID))
			}
			holder[ip] = name + "/" + a.PodUID
			records[a.PodUID] = append(records[a.PodUID], ip)
			p, ok := byUID[a.PodUID]
			switch {
			case !ok:
				o.leaks++
				o.problems = append(o.problems, fmt.Sprintf("pool %s: %s held by pod UID %s (%s), no live pod", name, ip, a.PodUID, a.NamespacedName))
			case p.addr != "" && p.addr != ip:
				o.leaks++
				o.problems = append(o.problems, fmt.Sprintf("pool %s: %s held by %s, which was told %s", name, ip, p.obj.Name, p.addr))
			}
		}
	}
	if err := ipamtest.CheckInvariants(pools); err != nil {
		o.duplicates++
		o.problems = append(o.problems, "invariants: "+err.Error())
	}
	for _, p := range live {
		if p.addr != "" && !slices.Contains(records[string(p.obj.UID)], p.addr) {
			o.duplicates++ // it uses an address no record protects: the next pod may get it
			o.problems = append(o.problems, fmt.Sprintf("pod %s uses %s, which no pool record holds for it (records: %v)", p.obj.Name, p.addr, records[string(p.obj.UID)]))
		}
	}

	var eps v2beta1.SpiderEndpointList
	if err := env.Client.List(ctx, &eps, client.InNamespace(w.ns)); err != nil {
		return o, fmt.Errorf("list endpoints: %w", err)
	}
	seen := map[string]bool{}
	for i := range eps.Items {
		ep := &eps.Items[i]
		cur := ep.Status.Current
		p, ok := byUID[cur.UID]
		if !ok || p.obj.Name != ep.Name {
			o.leaks++
			o.problems = append(o.problems, fmt.Sprintf("endpoint %s (UID %s) of no live pod", ep.Name, cur.UID))
			continue
		}
		seen[ep.Name] = true
		if p.addr == "" {
			continue
		}
		if len(cur.IPs) != 1 || cur.IPs[0].IPv4 == nil || !strings.HasPrefix(*cur.IPs[0].IPv4, p.addr+"/") {
			o.problems = append(o.problems, fmt.Sprintf("endpoint %s records %v, its pod was told %s", ep.Name, cur.IPs, p.addr))
		}
	}
	for _, p := range live {
		if p.addr != "" && !seen[p.obj.Name] {
			o.problems = append(o.problems, fmt.Sprintf("pod %s (%s) has no endpoint", p.obj.Name, p.addr))
		}
	}
	return o, nil
}
