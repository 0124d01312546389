package integration

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// gcReclaimBudget bounds the event-driven reclaim of docs/design/behaviour.md#garbage-collection:
// a leaked IP is back within 60 s.
const gcReclaimBudget = 60 * time.Second

// startGCController runs a manager with only the IP GC until the test ends, with the store and
// SpiderIPBlock handling spiderpool-controller gives it.
func startGCController(t *testing.T, opts controller.GCOptions) *controller.GCReconciler {
	t.Helper()
	var gc *controller.GCReconciler
	runManager(t, func(mgr ctrl.Manager) error {
		store, blocks, err := controller.NewGCStore(mgr, env.Client)
		if err != nil {
			return err
		}
		opts.BlockRecords = blocks
		gc = controller.NewGCReconciler(mgr.GetClient(), mgr.GetAPIReader(), store, opts)
		return gc.SetupWithManager(mgr)
	})
	return gc
}

// gcSetup creates a node, a pool only the test's pods name, and an agent for the node.
func gcSetup(t *testing.T, node, pool, subnet, ips string) *runningAgent {
	t.Helper()
	makeNode(t, node, nil)
	createPool(t, pool, subnet, ips)
	return startAgent(t, node, nil)
}

// gcPodAnno makes the pod draw from pool alone, whatever other default pools exist.
func gcPodAnno(pool string) map[string]string {
	return map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["` + pool + `"]}`}
}

// gcForgetEndpoint removes the endpoint name when the test ends, whoever is left to do it.
func gcForgetEndpoint(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		ep := &v2beta1.SpiderEndpoint{}
		if env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, ep) != nil {
			return
		}
		if controllerutil.RemoveFinalizer(ep, v2beta1.Finalizer) {
			_ = env.Client.Update(ctx, ep)
		}
		_ = env.Client.Delete(ctx, ep)
	})
}

// gcAllocate runs the real plugin's ADD for pod on agent a and returns its one address.
func gcAllocate(t *testing.T, a *runningAgent, pod *corev1.Pod) string {
	t.Helper()
	res, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket}.add(t)
	if err != nil {
		t.Fatalf("ADD %s: %v", pod.Name, err)
	}
	if got := addresses(res); len(got) != 1 {
		t.Fatalf("ADD %s gave %v, want one address", pod.Name, got)
	}
	return addresses(res)[0]
}

// gcEndpointUID returns the UID recorded by the SpiderEndpoint name, "" when there is none.
func gcEndpointUID(t *testing.T, name string) string {
	t.Helper()
	ep := &v2beta1.SpiderEndpoint{}
	err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: "default", Name: name}, ep)
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return ep.Status.Current.UID
}

// gcWaitReclaimed waits until pool holds no record of uid and no endpoint name of uid is left, and
// returns how long that took from since.
func gcWaitReclaimed(t *testing.T, pool, name, uid string, since time.Time) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer cancel()
	err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		for _, u := range poolRecords(t, pool) {
			if u == uid {
				return false, nil
			}
		}
		return gcEndpointUID(t, name) != uid, nil
	})
	if err != nil {
		t.Fatalf("IP of pod %s (UID %s) not reclaimed within %v: records %v, endpoint UID %q",
			name, uid, gcReclaimBudget, poolRecords(t, pool), gcEndpointUID(t, name))
	}
	return time.Since(since)
}

// A pod deleted without a CNI DEL (a node that died, a kubelet that lost its state) gives its
// IP and SpiderEndpoint back through the GC alone.
func TestGCReclaimsPodDeletedWithoutDEL(t *testing.T) {
	const node, pool = "gc-node-1", "gc-pool-1"
	agent := gcSetup(t, node, pool, "10.77.1.0/24", "10.77.1.10-10.77.1.20")
	startGCController(t, controller.GCOptions{EnableStatefulSet: true})

	t.Run("grace period 0", func(t *testing.T) {
		pod := makePod(t, "default", "gc-now", node, gcPodAnno(pool), nil)
		gcForgetEndpoint(t, pod.Name)
		addr := gcAllocate(t, agent, pod)
		if got := poolRecords(t, pool)[addr]; got != string(pod.UID) {
			t.Fatalf("record of %s = %q, want %s", addr, got, pod.UID)
		}
		start := time.Now()
		if err := env.Client.Delete(testContext(t), pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		t.Logf("grace 0: IP and SpiderEndpoint reclaimed %v after the pod's deletion", gcWaitReclaimed(t, pool, pod.Name, string(pod.UID), start))
	})

	t.Run("default grace period, no kubelet to finish it", func(t *testing.T) {
		pod := makePod(t, "default", "gc-graceful", node, gcPodAnno(pool), nil)
		gcForgetEndpoint(t, pod.Name)
		addr := gcAllocate(t, agent, pod)
		start := time.Now()
		if err := env.Client.Delete(testContext(t), pod); err != nil {
			t.Fatal(err)
		}
		cur := &corev1.Pod{}
		if err := env.Client.Get(testContext(t), client.ObjectKeyFromObject(pod), cur); err != nil || cur.DeletionTimestamp == nil {
			t.Fatalf("pod should stay terminating without a kubelet: %v %+v", err, cur.ObjectMeta)
		}
		// Within the grace period the pod may still be using the address.
		time.Sleep(2 * time.Second)
		if got := poolRecords(t, pool)[addr]; got != string(pod.UID) {
			t.Fatalf("record of %s = %q during the grace period, want it kept for %s", addr, got, pod.UID)
		}
		took := gcWaitReclaimed(t, pool, pod.Name, string(pod.UID), start)
		if grace := time.Duration(*cur.DeletionGracePeriodSeconds) * time.Second; took < grace {
			t.Errorf("reclaimed after %v, before the %v grace period ended", took, grace)
		}
		t.Logf("grace %ds: IP and SpiderEndpoint reclaimed %v after the pod's deletion", *cur.DeletionGracePeriodSeconds, took)
	})
}

// A pod recreated under the same name (new UID) while its predecessor's record is still held
// (the agent crashed between the pool write and the endpoint write, so no endpoint names the
// record and the new pod's ADD cannot retire it) gets an address of its own; the GC then reclaims
// the predecessor's record and never touches the new one.
func TestGCRecreatedPodKeepsItsOwnRecord(t *testing.T) {
	const node, pool = "gc-node-2", "gc-pool-2"
	agent := gcSetup(t, node, pool, "10.77.2.0/24", "10.77.2.10-10.77.2.20")

	old := makePod(t, "default", "gc-again", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, old.Name)
	oldAddr := gcAllocate(t, agent, old)
	if err := env.Client.Delete(testContext(t), old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	gcDropEndpoint(t, old.Name)

	pod := makePod(t, "default", "gc-again", node, gcPodAnno(pool), nil)
	if pod.UID == old.UID {
		t.Fatal("recreated pod has its predecessor's UID")
	}
	addr := gcAllocate(t, agent, pod)
	recs := poolRecords(t, pool)
	if recs[oldAddr] != string(old.UID) {
		t.Fatalf("predecessor's record of %s = %q, want it still held by %s (records %v)", oldAddr, recs[oldAddr], old.UID, recs)
	}
	if addr == oldAddr || recs[addr] != string(pod.UID) {
		t.Fatalf("new pod got %s (record %q), want an address of its own while %s is held by its predecessor", addr, recs[addr], oldAddr)
	}

	start := time.Now()
	startGCController(t, controller.GCOptions{EnableStatefulSet: true})
	t.Logf("predecessor's record reclaimed %v after the GC started", gcWaitReclaimed(t, pool, old.Name, string(old.UID), start))

	// More passes (pool events, the startup scan) leave the new pod alone.
	time.Sleep(2 * time.Second)
	if got := poolRecords(t, pool)[addr]; got != string(pod.UID) {
		t.Errorf("new pod's record of %s = %q, want %s", addr, got, pod.UID)
	}
	if got := gcEndpointUID(t, pod.Name); got != string(pod.UID) {
		t.Errorf("SpiderEndpoint UID = %q, want the new pod %s", got, pod.UID)
	}
}

// gcDropEndpoint deletes the SpiderEndpoint name now, finalizer included.
func gcDropEndpoint(t *testing.T, name string) {
	t.Helper()
	ctx := testContext(t)
	ep := &v2beta1.SpiderEndpoint{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, ep); err != nil {
		t.Fatal(err)
	}
	controllerutil.RemoveFinalizer(ep, v2beta1.Finalizer)
	if err := env.Client.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, ep); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
}

// The periodic full scan deletes an orphan SpiderEndpoint that no event points at, and a live
// pod's record and endpoint survive every scan.
func TestGCFullScanKeepsLivePods(t *testing.T) {
	const node, pool = "gc-node-3", "gc-pool-3"
	agent := gcSetup(t, node, pool, "10.77.3.0/24", "10.77.3.10-10.77.3.20")
	const interval = time.Second
	startGCController(t, controller.GCOptions{Interval: interval, EnableStatefulSet: true})

	live := makePod(t, "default", "gc-live", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, live.Name)
	addr := gcAllocate(t, agent, live)

	// Its pod and record are long gone; no pod or pool event names it, only a full scan finds it.
	orphan := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gc-orphan", Finalizers: []string{v2beta1.Finalizer}},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{
			UID: "gone-uid", Node: node, IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To("10.77.3.99/24"), IPv4Pool: ptr.To(pool)}},
		}},
	}
	if err := env.Client.Create(testContext(t), orphan); err != nil {
		t.Fatal(err)
	}
	gcForgetEndpoint(t, orphan.Name)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), gcReclaimBudget)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(orphan), &v2beta1.SpiderEndpoint{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("orphan SpiderEndpoint not deleted by a full scan: %v", err)
	}
	t.Logf("orphan SpiderEndpoint deleted %v after its creation (scan interval %v)", time.Since(start), interval)

	time.Sleep(3 * interval) // at least two more full scans
	if got := poolRecords(t, pool)[addr]; got != string(live.UID) {
		t.Errorf("live pod's record of %s = %q after full scans, want %s", addr, got, live.UID)
	}
	if got := gcEndpointUID(t, live.Name); got != string(live.UID) {
		t.Errorf("live pod's SpiderEndpoint UID = %q after full scans, want %s", got, live.UID)
	}
}

// A StatefulSet member whose pod is gone keeps its IP and endpoint while the StatefulSet expects
// it back (docs/design/behaviour.md#statefulset-fixed-ips), across full scans; scaling the StatefulSet down reclaims both.
func TestGCStatefulSetMember(t *testing.T) {
	const node, pool = "gc-node-4", "gc-pool-4"
	agent := gcSetup(t, node, pool, "10.77.4.0/24", "10.77.4.10-10.77.4.20")
	gc := startGCController(t, controller.GCOptions{Interval: time.Minute, EnableStatefulSet: true})

	labels := map[string]string{"app": "gc-db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gc-db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if err := env.Client.Create(testContext(t), sts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), sts) })

	// No StatefulSet controller runs here: the test plays it and creates member 1.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gc-db-1", Labels: labels, Annotations: gcPodAnno(pool),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := env.Client.Create(testContext(t), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	gcForgetEndpoint(t, pod.Name)
	addr := gcAllocate(t, agent, pod)
	if err := env.Client.Delete(testContext(t), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}

	gc.TriggerFullScan()
	time.Sleep(2 * time.Second)
	if got := poolRecords(t, pool)[addr]; got != string(pod.UID) {
		t.Fatalf("member's record of %s = %q while its StatefulSet expects it, want %s", addr, got, pod.UID)
	}
	if got := gcEndpointUID(t, pod.Name); got != string(pod.UID) {
		t.Fatalf("member's SpiderEndpoint UID = %q while its StatefulSet expects it, want %s", got, pod.UID)
	}

	start := time.Now()
	scaled := sts.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](1)
	if err := env.Client.Patch(testContext(t), scaled, client.MergeFrom(sts)); err != nil {
		t.Fatal(err)
	}
	t.Logf("scaled-down member reclaimed %v after the scale-down", gcWaitReclaimed(t, pool, pod.Name, string(pod.UID), start))
}
