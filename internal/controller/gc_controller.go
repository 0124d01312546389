package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// DefaultGCInterval is ipam.gc.gcAll.intervalInSecond (docs/design/behaviour.md#garbage-collection).
const DefaultGCInterval = 600 * time.Second

// Reasons of a reclaimed IP, the `reason` label of the GC metrics. A new one also goes in gcReasons
// (metrics.go), which makes its series exist from the start.
const (
	GCReasonPodDeleted         = "pod_deleted"
	GCReasonPodUIDChanged      = "pod_uid_changed"
	GCReasonPodFinished        = "pod_finished"
	GCReasonTerminatingTimeout = "pod_terminating_timeout"
	GCReasonOrphanEndpoint     = "orphan_endpoint"
	GCReasonOutdatedEndpoint   = "outdated_endpoint"
	GCReasonStatefulSetScaled  = "statefulset_scaled_down"
	GCReasonVMGone             = "kubevirt_vm_gone"
)

var (
	// Names and help texts are listed with the controller's other families in metrics.go.
	gcCounts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricGCCounts,
		Help: helpGCCounts,
	}, []string{labelReason})
	gcFailureCounts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricGCFailureCounts,
		Help: helpGCFailureCounts,
	}, []string{labelReason})
	registerGCMetrics sync.Once
)

// GCOptions tunes a GCReconciler; the zero value gives the Helm defaults except EnableStatefulSet.
type GCOptions struct {
	// Interval is how often every pool and endpoint is scanned; 0 means DefaultGCInterval.
	Interval time.Duration
	// DeletingTimeoutDelay is ipam.gc.gcDeletingTimeOutPodDelay: how long after its grace period a
	// terminating pod keeps its IPs. Its kubelet may be down and never send DEL.
	DeletingTimeoutDelay time.Duration
	// EnableStatefulSet is ipam.enableStatefulSet: a StatefulSet pod that its StatefulSet expects
	// keeps its endpoint and IPs while it is gone (docs/design/behaviour.md#statefulset-fixed-ips).
	EnableStatefulSet bool
	// KeepTerminatingOnReadyNode is ipam.gc.statelessPod.zombieOnReadyNode=false: a pod past its
	// window on a Ready node keeps its IPs (its kubelet is up and sends DEL when it is done).
	KeepTerminatingOnReadyNode bool
	// KeepTerminatingOnNotReadyNode is zombieOnNotReadyNode=false: a pod past its window on a node
	// that is not Ready (or gone) keeps its IPs. A node whose kubelet died may still run the pod's
	// containers, which keep answering for the address; this is the safe setting there.
	KeepTerminatingOnNotReadyNode bool
	// CleanOutdatedEndpoints is ipam.enableCleanOutdatedEndpoint: the full scan also deletes the
	// SpiderEndpoint of a live pod when no pool holds a record for the pod any more (the pool was
	// deleted, or its records were removed by hand), so that the endpoint stops claiming
	// addresses nobody has. The endpoint of a pod that is gone is collected whatever this says.
	CleanOutdatedEndpoints bool
	// EnableKubevirtStaticIP is ipam.enableKubevirtStaticIP: the records and endpoint named after a
	// KubeVirt VirtualMachineInstance are kept while a pod of it runs, or while the VMI or its
	// VirtualMachine exists for the endpoint's pod UID (decideVMI).
	EnableKubevirtStaticIP bool
	// BlockRecords says that the cluster serves SpiderIPBlocks (NewGCStore tells): the records of a
	// pool in block format (docs/design/ipam-blocks.md) are read from its blocks, through the
	// cache to find candidates and through the API reader to confirm them, never from its
	// status, the controller's lagging and bounded mirror. Without it such a pool's records are
	// not collected, and every full scan says so.
	BlockRecords bool
}

// GCReconciler reclaims IP records and SpiderEndpoints whose pods are gone, were replaced, finished
// or stayed terminating too long (docs/design/behaviour.md#garbage-collection): the kubelet's CNI DEL is the normal release path,
// and this is the safety net for the DELs that never came.
//
// It is keyed by pod namespace/name. Every decision is made on a fresh read of the pod from the API
// server and compares UIDs, never names, and every release goes through ipam.Store.UpdatePool with
// PoolState.Release(addr, uid): the write is compare-and-swap on the pool's resourceVersion (on the
// block's, for a pool in block format) and only removes the exact record, so a release can neither
// overwrite an agent's concurrent allocation nor free the address of a newer incarnation of the pod
// (ipam-invariants.md 3 and 8).
type GCReconciler struct {
	client client.Client // cache-backed: finds candidates
	reader client.Reader // API reader: confirms them
	store  ipam.Store
	opts   GCOptions
	now    func() time.Time

	// terminatingSince is when this controller first saw each terminating pod UID, on its own
	// clock: a pod's window is measured from there, so a controller clock running ahead of the
	// API server's cannot end it early (deletionTimestamp is the API server's time).
	mu               sync.Mutex
	terminatingSince map[string]time.Time

	trigger chan struct{}
}

var _ reconcile.Reconciler = (*GCReconciler)(nil)

// NewGCReconciler returns a GC reading candidates through c (the manager's cached client, which also
// writes), confirming them through reader (mgr.GetAPIReader()) and releasing records through store
// (NewGCStore's, over the same cache).
func NewGCReconciler(c client.Client, reader client.Reader, store ipam.Store, opts GCOptions) *GCReconciler {
	if opts.Interval <= 0 {
		opts.Interval = DefaultGCInterval
	}
	registerGCMetrics.Do(func() {
		metrics.Registry.MustRegister(gcCounts, gcFailureCounts)
	})
	return &GCReconciler{
		client:  c,
		reader:  reader,
		store:   store,
		opts:    opts,
		now:     time.Now,
		trigger: make(chan struct{}, 1),

		terminatingSince: map[string]time.Time{},
	}
}

// NewGCStore returns the store the GC releases records through, and whether the cluster serves
// SpiderIPBlocks (GCOptions.BlockRecords): a router sending each pool's releases to the store of
// its format, kubestore or a block store of no node (blockstore.Options.AllBlocks), both reading
// the manager's cache (whose SpiderIPBlock informer starts on first use) and reading after a lost
// race and writing through live, a client that does not read from the cache.
func NewGCStore(mgr ctrl.Manager, live client.Client) (*blockstore.Router, bool, error) {
	status := kubestore.New(mgr.GetCache(), live, kubestore.Options{})
	if _, err := live.IsObjectNamespaced(&ipblock.SpiderIPBlock{}); err != nil {
		if !meta.IsNoMatchError(err) {
			return nil, false, fmt.Errorf("look up the SpiderIPBlock kind: %w", err)
		}
		// A chart upgraded with helm does not add CRDs: collect the pools in status format
		// rather than none. The router refuses a pool in block format with what to do.
		return blockstore.NewRouter(nil, status), false, nil
	}
	blocks, err := blockstore.New(mgr.GetCache(), mgr.GetCache(), live, blockstore.Options{AllBlocks: true})
	if err != nil {
		return nil, false, err
	}
	return blockstore.NewRouter(blocks, status), true, nil
}

// windowEnd returns when terminating pod's window ends: deletionGracePeriodSeconds + 1 s (the
// timestamp's rounding) + the delay after this controller first saw it terminating, all on this
// controller's clock. deletionTimestamp, the API server's clock, is not compared with it: with the
// controller's clock behind, that would keep addresses for the skew on top of the grace period,
// and the window is never early without it (a pod is first seen terminating no sooner than its
// deletion; a restarted controller starts its windows afresh).
func (r *GCReconciler) windowEnd(pod *corev1.Pod) time.Time {
	r.mu.Lock()
	since, ok := r.terminatingSince[string(pod.UID)]
	if !ok {
		since = r.now()
		r.terminatingSince[string(pod.UID)] = since
	}
	r.mu.Unlock()
	grace := time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, 0)) * time.Second
	return since.Add(grace + time.Second + r.opts.DeletingTimeoutDelay)
}

// forget drops what windowEnd remembers of uid.
func (r *GCReconciler) forget(uid string) {
	r.mu.Lock()
	delete(r.terminatingSince, uid)
	r.mu.Unlock()
}

// nodeReady reports whether the pod's node exists and is Ready. It reads the API server: it is
// asked only for pods past their window, and a cached client would keep every Node of the cluster
// in the controller's memory for it.
func (r *GCReconciler) nodeReady(ctx context.Context, name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	node := &corev1.Node{}
	if err := r.reader.Get(ctx, types.NamespacedName{Name: name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("get node %s: %w", name, err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// SetupWithManager watches pods, pools and, with BlockRecords, SpiderIPBlocks, and adds the
// periodic full scan, which runs on the leader only like the reconcilers.
func (r *GCReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.opts.EnableKubevirtStaticIP {
		if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, podVMIIndex, indexPodVMI); err != nil {
			return fmt.Errorf("index pods by KubeVirt VMI: %w", err)
		}
	}
	if r.opts.BlockRecords {
		if err := mgr.GetFieldIndexer().IndexField(context.Background(), &ipblock.SpiderIPBlock{}, blockPodIndex, indexBlockPods); err != nil {
			return fmt.Errorf("index SpiderIPBlocks by pod: %w", err)
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("ipgc").
		For(&corev1.Pod{}, builder.WithPredicates(podGonePredicate())).
		Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(r.poolToPods)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.statefulSetToEndpoints)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.podToVMI), builder.WithPredicates(podGonePredicate()))
	if r.opts.BlockRecords {
		b = b.Watches(&ipblock.SpiderIPBlock{}, handler.EnqueueRequestsFromMapFunc(r.blockToPods))
	}
	err := b.Complete(r)
	if err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(r.runFullScans))
}

// podToVMI maps the end of a KubeVirt VM's pod to its VMI's records and endpoint, which are named
// after the VMI: a VM deleted with its last pod is reclaimed now rather than at the next full scan.
func (r *GCReconciler) podToVMI(_ context.Context, o client.Object) []reconcile.Request {
	pod, ok := o.(*corev1.Pod)
	if !ok || !r.opts.EnableKubevirtStaticIP {
		return nil
	}
	if vmi := workload.VMIOf(pod); vmi != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: vmi}}}
	}
	return nil
}

// TriggerFullScan asks for a full scan now (POST /v1/ipam/gc_ips). Triggers arriving while one is
// pending are merged.
func (r *GCReconciler) TriggerFullScan() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// podGonePredicate lets through the pod events after which a record may have become garbage:
// deletion, the start of termination and a terminal phase. Creation of a live pod is skipped, since
// the startup full scan covers whatever happened while the controller was down.
func podGonePredicate() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return podMayLeak(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return podMayLeak(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return true },
	}
}

func podMayLeak(o client.Object) bool {
	pod, ok := o.(*corev1.Pod)
	return ok && !workload.PodAlive(pod)
}

// poolToPods maps a pool change to the pods of its records that the cache does not know as alive
// with the same UID: an allocation for a pod deleted meanwhile is reclaimed without waiting for a
// full scan. Alive pods are skipped so that a busy pool does not flood the queue. A pool in block
// format is left to its blocks' events (blockToPods): its status is only the controller's mirror.
func (r *GCReconciler) poolToPods(ctx context.Context, o client.Object) []reconcile.Request {
	pool, ok := o.(*v2beta1.SpiderIPPool)
	if !ok || ipblock.InBlocks(pool) {
		return nil
	}
	allocs, err := pool.Status.Allocations()
	if err != nil {
		return nil // the full scan logs it
	}
	return r.notAlive(ctx, slices.Collect(maps.Values(allocs)))
}

// blockToPods is poolToPods for a SpiderIPBlock: the pods of its records that the cache does not
// know as alive with the same UID.
func (r *GCReconciler) blockToPods(ctx context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*ipblock.SpiderIPBlock)
	if !ok {
		return nil
	}
	allocs := make([]v2beta1.PoolIPAllocation, 0, len(b.Spec.Records))
	for _, rec := range b.Spec.Records {
		allocs = append(allocs, v2beta1.PoolIPAllocation{NamespacedName: rec.Pod, PodUID: rec.PodUID})
	}
	return r.notAlive(ctx, allocs)
}

// notAlive returns a request for each pod named by allocs that the cache does not know as alive
// with the record's UID, judged once per name.
func (r *GCReconciler) notAlive(ctx context.Context, allocs []v2beta1.PoolIPAllocation) []reconcile.Request {
	seen := map[string]bool{}
	var out []reconcile.Request
	for _, a := range allocs {
		if seen[a.NamespacedName] {
			continue
		}
		seen[a.NamespacedName] = true
		key, ok := splitPodKey(a.NamespacedName)
		if !ok {
			continue
		}
		var pod corev1.Pod
		if err := r.client.Get(ctx, key, &pod); err == nil && string(pod.UID) == a.PodUID && workload.PodAlive(&pod) {
			continue
		}
		out = append(out, reconcile.Request{NamespacedName: key})
	}
	return out
}

// statefulSetToEndpoints maps a StatefulSet change (scale-down, deletion) to the endpoints the
// agents kept for its members, so that members it no longer wants are reclaimed now rather than
// at the next full scan.
func (r *GCReconciler) statefulSetToEndpoints(ctx context.Context, o client.Object) []reconcile.Request {
	if !r.opts.EnableStatefulSet {
		return nil
	}
	var eps v2beta1.SpiderEndpointList
	if err := r.client.List(ctx, &eps, client.InNamespace(o.GetNamespace())); err != nil {
		return nil // the full scan catches up
	}
	var out []reconcile.Request
	for i := range eps.Items {
		ep := &eps.Items[i]
		if workload.StatefulSetOf(nil, ep) == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ep)})
		}
	}
	return out
}

func splitPodKey(s string) (types.NamespacedName, bool) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubevirt.io,resources=virtualmachineinstances;virtualmachines,verbs=get
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;update;patch;delete

// Reconcile reclaims the records and the SpiderEndpoint of pod req that belong to no live
// incarnation of it. A pod still inside its termination window is looked at again when it ends.
func (r *GCReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	wait, err := r.collect(ctx, req.NamespacedName)
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// record is one pool record naming the pod being collected.
type record struct {
	pod  string // namespace/name
	pool string
	addr netip.Addr
	uid  string
}

// verdict is what to do with the records and endpoint of one pod UID.
type verdict struct {
	release bool
	reason  string
	// wait is how long until a terminating pod's window ends; only set when !release.
	wait time.Duration
}

// collect is the whole decision for one pod name; the event path and the full scan share it.
func (r *GCReconciler) collect(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	records, err := r.recordsOf(ctx, key)
	if err != nil {
		return 0, err
	}
	ep := &v2beta1.SpiderEndpoint{}
	if err := r.client.Get(ctx, key, ep); err != nil {
		if !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("get SpiderEndpoint %s: %w", key, err)
		}
		ep = nil
	}
	if len(records) == 0 && ep == nil {
		return 0, nil
	}

	// The cache may not have seen a recreation or a deletion yet; what is released is decided on
	// what the API server says now.
	pod := &corev1.Pod{}
	if err := r.reader.Get(ctx, key, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("get pod %s: %w", key, err)
		}
		pod = nil
	}

	verdicts := map[string]verdict{}
	judge := func(uid string) (verdict, error) {
		if v, ok := verdicts[uid]; ok {
			return v, nil
		}
		v, vm, err := r.decideVMI(ctx, key, uid, pod, ep)
		if err != nil {
			return verdict{}, err
		}
		if !vm {
			v, err = r.decide(ctx, uid, pod, ep)
		}
		if err != nil {
			return verdict{}, err
		}
		verdicts[uid] = v
		return v, nil
	}

	byPool := map[string][]record{}
	var wait time.Duration
	for _, rec := range records {
		v, err := judge(rec.uid)
		if err != nil {
			return 0, err
		}
		if !v.release {
			wait = minWait(wait, v.wait)
			continue
		}
		byPool[rec.pool] = append(byPool[rec.pool], rec)
	}

	var errs []error
	for _, pool := range sortedKeys(byPool) {
		if err := r.release(ctx, pool, byPool[pool], verdicts); err != nil {
			errs = append(errs, err)
		}
	}

	if ep != nil {
		v, err := judge(ep.Status.Current.UID)
		if err != nil {
			return 0, err
		}
		switch {
		case !v.release:
			wait = minWait(wait, v.wait)
		case len(errs) > 0:
			// Keep the endpoint: it names the records the retry must still find.
		default:
			if err := r.deleteEndpoint(ctx, ep, GCReasonOrphanEndpoint); err != nil {
				gcFailureCounts.WithLabelValues(GCReasonOrphanEndpoint).Inc()
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		for uid, v := range verdicts {
			if v.release {
				r.forget(uid)
			}
		}
	}
	return wait, errors.Join(errs...)
}

// recordsOf returns the records of every cached pool that name pod key, whatever their UID.
func (r *GCReconciler) recordsOf(ctx context.Context, key types.NamespacedName) ([]record, error) {
	pools, err := r.store.Pools(ctx)
	if err != nil {
		return nil, err
	}
	name := key.String()
	var out []record
	inBlocks := map[string]*v2beta1.SpiderIPPool{}
	for _, p := range pools {
		if ipblock.InBlocks(p) {
			inBlocks[p.Name] = p
			continue
		}
		// A substring test spares decoding every pool on every pod event; a false positive only
		// costs the decode.
		if p.Status.AllocatedIPs == nil || !strings.Contains(*p.Status.AllocatedIPs, strconv.Quote(name)) {
			continue
		}
		allocs, err := p.Status.Allocations()
		if err != nil {
			return nil, fmt.Errorf("IPPool %q: %w", p.Name, err)
		}
		for a, rec := range allocs {
			if rec.NamespacedName != name {
				continue
			}
			addr, err := ip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("IPPool %q: status.allocatedIPs: %w", p.Name, err)
			}
			out = append(out, record{pod: name, pool: p.Name, addr: addr, uid: rec.PodUID})
		}
	}
	if len(inBlocks) == 0 || !r.opts.BlockRecords {
		return out, nil
	}
	more, err := r.blockRecordsOf(ctx, name, inBlocks)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// blockPodIndex indexes cached SpiderIPBlocks by the pods (namespace/name) their records name, so
// that a pod event reads the few blocks holding the pod's records, not every block of the cluster.
const blockPodIndex = "internal.spiderpool-go.io/record-pods"

func indexBlockPods(o client.Object) []string {
	b, ok := o.(*ipblock.SpiderIPBlock)
	if !ok {
		return nil
	}
	var pods []string
	for _, rec := range b.Spec.Records {
		if !slices.Contains(pods, rec.Pod) {
			pods = append(pods, rec.Pod)
		}
	}
	return pods
}

// blockRecordsOf returns the records naming pod name in the cached blocks of pools, the pools in
// block format by name. Blocks of a pool in status format (being converted: its status is still
// the truth) or of a deleted incarnation of the pool are not its records.
func (r *GCReconciler) blockRecordsOf(ctx context.Context, name string, pools map[string]*v2beta1.SpiderIPPool) ([]record, error) {
	var list ipblock.SpiderIPBlockList
	if err := r.client.List(ctx, &list, client.MatchingFields{blockPodIndex: name}); err != nil {
		return nil, fmt.Errorf("list SpiderIPBlocks holding pod %s: %w", name, err)
	}
	var out []record
	for i := range list.Items {
		b := &list.Items[i]
		p := pools[b.Spec.Pool]
		if p == nil || b.Spec.PoolUID != string(p.UID) {
			continue
		}
		for k, rec := range b.Spec.Records {
			if rec.Pod != name {
				continue
			}
			addr, err := ip.ParseAddr(k)
			if err != nil {
				return nil, fmt.Errorf("SpiderIPBlock %q: spec.records: %w", b.Name, err)
			}
			out = append(out, record{pod: name, pool: p.Name, addr: addr, uid: rec.PodUID})
		}
	}
	return out, nil
}

// allocations returns the records of p wherever they live (blockstore.Allocations), read through
// reader: the cache to find candidates, the API server to confirm them.
func (r *GCReconciler) allocations(ctx context.Context, reader client.Reader, p *v2beta1.SpiderIPPool) (v2beta1.PoolIPAllocations, error) {
	if ipblock.InBlocks(p) && !r.opts.BlockRecords {
		return nil, errors.New("its records are in SpiderIPBlocks, a kind this cluster does not serve: install the chart's CRDs")
	}
	return blockstore.Allocations(ctx, reader, p)
}

// decide applies docs/design/behaviour.md#garbage-collection to the records of uid, given the pod as the API server has it now
// (nil when gone) and its endpoint (nil when gone).
func (r *GCReconciler) decide(ctx context.Context, uid string, pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) (verdict, error) {
	sts := r.statefulSetOf(pod, ep)
	// A StatefulSet's member keeps what its endpoint holds while the StatefulSet expects it back
	// (docs/design/behaviour.md#statefulset-fixed-ips); records no endpoint names for that UID are kept for nothing.
	keptForSts := func() (bool, error) {
		if sts == "" {
			return false, nil
		}
		return workload.StatefulSetWantsPod(ctx, r.reader, podNamespace(pod, ep), sts, podName(pod, ep))
	}

	if pod != nil && string(pod.UID) == uid {
		if workload.PodAlive(pod) {
			return verdict{}, nil // never release the IP of a live pod
		}
		reason := GCReasonPodFinished
		if !workload.PodFinished(pod) {
			if left := r.windowEnd(pod).Sub(r.now()); left > 0 {
				return verdict{wait: left}, nil
			}
			ready, err := r.nodeReady(ctx, pod.Spec.NodeName)
			if err != nil {
				return verdict{}, err
			}
			if (ready && r.opts.KeepTerminatingOnReadyNode) || (!ready && r.opts.KeepTerminatingOnNotReadyNode) {
				// Kept by the settings; the pod's own events and the full scan look again.
				return verdict{}, nil
			}
			reason = GCReasonTerminatingTimeout
		}
		if sts != "" {
			kept, err := keptForSts()
			if err != nil || kept {
				return verdict{}, err
			}
			reason = GCReasonStatefulSetScaled
		}
		return verdict{release: true, reason: reason}, nil
	}

	reason := GCReasonPodDeleted
	if pod != nil {
		reason = GCReasonPodUIDChanged
	}
	if sts != "" {
		kept, err := keptForSts()
		if err != nil {
			return verdict{}, err
		}
		if kept {
			if ep != nil && ep.Status.Current.UID == uid {
				return verdict{}, nil
			}
		} else {
			reason = GCReasonStatefulSetScaled
		}
	}
	return verdict{release: true, reason: reason}, nil
}

// decideVMI decides for the records and endpoint of uid under key when they are a KubeVirt VM's,
// named after its VMI rather than a pod (internal/agent/kubevirt.go); vm is false for anything
// else, which decide handles. A live pod of the VMI with that UID keeps them, as any live pod
// does; otherwise the endpoint's pod UID keeps them while the VMI or its VM exists, for the VM's
// next pod to take over. Records of any other UID are leftovers of an earlier pod.
func (r *GCReconciler) decideVMI(ctx context.Context, key types.NamespacedName, uid string, pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) (_ verdict, vm bool, _ error) {
	if !r.opts.EnableKubevirtStaticIP || (pod != nil && string(pod.UID) == uid) {
		return verdict{}, false, nil
	}
	owner, err := r.vmiPod(ctx, key, uid)
	if err != nil {
		return verdict{}, true, err
	}
	vmiEndpoint := ep != nil && workload.VMIOfEndpoint(ep) == key.Name
	switch {
	case owner != nil && workload.PodAlive(owner):
		return verdict{}, true, nil // never release the IP of a live pod
	case owner == nil && !vmiEndpoint:
		return verdict{}, false, nil
	case vmiEndpoint && ep.Status.Current.UID == uid:
		keep, err := workload.VMWantsAddresses(ctx, r.reader, key.Namespace, key.Name)
		if err != nil || keep {
			return verdict{}, true, err
		}
	}
	return verdict{release: true, reason: GCReasonVMGone}, true, nil
}

// podVMIIndex indexes cached pods by the name of the KubeVirt VMI controlling them, so that the
// GC finds a VM's pods without listing a namespace's pods for every candidate.
const podVMIIndex = "spiderpool.spidernet.io/kubevirt-vmi"

func indexPodVMI(o client.Object) []string {
	if pod, ok := o.(*corev1.Pod); ok {
		if vmi := workload.VMIOf(pod); vmi != "" {
			return []string{vmi}
		}
	}
	return nil
}

// vmiPod returns the pod of UID uid that VMI key controls, or nil: found in the cache, confirmed
// on the API server.
func (r *GCReconciler) vmiPod(ctx context.Context, key types.NamespacedName, uid string) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingFields{podVMIIndex: key.Name}); err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", key.Namespace, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if string(p.UID) != uid || workload.VMIOf(p) != key.Name {
			continue
		}
		live := &corev1.Pod{}
		if err := r.reader.Get(ctx, client.ObjectKeyFromObject(p), live); err != nil {
			return nil, client.IgnoreNotFound(fmt.Errorf("get pod %s/%s: %w", p.Namespace, p.Name, err))
		}
		if live.UID != p.UID {
			return nil, nil
		}
		return live, nil
	}
	return nil, nil
}

// statefulSetOf returns the StatefulSet whose member the pod name is when StatefulSet handling is
// on: from the pod's controller, or, when the pod is gone, from the endpoint the agent kept.
func (r *GCReconciler) statefulSetOf(pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) string {
	if !r.opts.EnableStatefulSet {
		return ""
	}
	return workload.StatefulSetOf(pod, ep)
}

func podNamespace(pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) string {
	if pod != nil {
		return pod.Namespace
	}
	return ep.Namespace
}

func podName(pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) string {
	if pod != nil {
		return pod.Name
	}
	return ep.Name
}

// release removes recs from pool, each only if its UID still holds it, and counts what went.
func (r *GCReconciler) release(ctx context.Context, pool string, recs []record, verdicts map[string]verdict) error {
	var released []bool
	err := r.store.UpdatePool(ctx, pool, func(st *ipam.PoolState) error {
		// UpdatePool may call this again after a conflict; the last call's outcome is the one written.
		released = make([]bool, len(recs))
		for i, rec := range recs {
			released[i] = st.Release(rec.addr, rec.uid)
		}
		return nil
	})
	if errors.Is(err, ipam.ErrPoolNotFound) {
		return nil // the records went with the pool
	}
	if err != nil {
		for _, rec := range recs {
			gcFailureCounts.WithLabelValues(verdicts[rec.uid].reason).Inc()
		}
		return fmt.Errorf("release %d IP record(s) of pod %s from IPPool %q: %w", len(recs), recs[0].pod, pool, err)
	}
	log := crlog.FromContext(ctx)
	for i, rec := range recs {
		if !released[i] {
			continue // already released by a DEL meanwhile
		}
		reason := verdicts[rec.uid].reason
		gcCounts.WithLabelValues(reason).Inc()
		log.Info("reclaimed IP", "pool", pool, "ip", rec.addr.String(), "podUID", rec.uid, "reason", reason)
	}
	return nil
}

// deleteEndpoint removes the finalizer of ep and deletes it, unless the object changed hands
// meanwhile: an agent may have replaced it for a new incarnation of the pod. reason labels the
// metrics.
func (r *GCReconciler) deleteEndpoint(ctx context.Context, ep *v2beta1.SpiderEndpoint, reason string) error {
	key := client.ObjectKeyFromObject(ep)
	fresh := &v2beta1.SpiderEndpoint{}
	if err := r.reader.Get(ctx, key, fresh); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("get SpiderEndpoint %s: %w", key, err))
	}
	if fresh.UID != ep.UID || fresh.Status.Current.UID != ep.Status.Current.UID {
		return nil
	}
	if controllerutil.RemoveFinalizer(fresh, v2beta1.Finalizer) {
		// resourceVersion of the fresh read: a concurrent agent write wins and we look again later.
		if err := r.client.Update(ctx, fresh); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("remove finalizer of SpiderEndpoint %s: %w", key, err)
			}
			return client.IgnoreNotFound(fmt.Errorf("remove finalizer of SpiderEndpoint %s: %w", key, err))
		}
	}
	// resourceVersion too, not only the UID: a StatefulSet member's new incarnation may take the
	// endpoint over (same object, new status) right after the read or the finalizer's removal;
	// its write changes the version and the delete then fails instead of taking the endpoint away.
	uid, rv := fresh.UID, fresh.ResourceVersion
	if err := r.client.Delete(ctx, fresh, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsConflict(err) {
			crlog.FromContext(ctx).Info("SpiderEndpoint changed while the GC deleted it: kept, looked at again", "endpoint", key.String())
			return nil
		}
		return fmt.Errorf("delete SpiderEndpoint %s: %w", key, err)
	}
	gcCounts.WithLabelValues(reason).Inc()
	crlog.FromContext(ctx).Info("deleted SpiderEndpoint", "endpoint", key.String(), "podUID", ep.Status.Current.UID, "reason", reason)
	return nil
}

// runFullScans scans at start (the events of a downtime are lost) and then every interval or when
// triggered, until ctx ends.
func (r *GCReconciler) runFullScans(ctx context.Context) error {
	log := crlog.FromContext(ctx).WithName("ipgc")
	ticker := time.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	for {
		if err := r.FullScan(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "full IP GC scan")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-r.trigger:
		}
	}
}

// FullScan looks at every pool record and every SpiderEndpoint once. Pools are read before pods:
// a record written after the pod list belongs to a pod created before it was written, so a pod
// missing from the list is never one that was too new to be in it. Candidates are then confirmed
// one pod name at a time against the API server, like an event.
func (r *GCReconciler) FullScan(ctx context.Context) error {
	// Pods that ended without a release here (their kubelet's DEL did it) leave their first
	// sighting behind; a day is far beyond any grace period.
	r.mu.Lock()
	for uid, since := range r.terminatingSince {
		if r.now().Sub(since) > 24*time.Hour {
			delete(r.terminatingSince, uid)
		}
	}
	r.mu.Unlock()
	pools, err := r.store.Pools(ctx)
	if err != nil {
		return err
	}
	// The records of block-format pools are read here, before the pods, like the pools.
	var errs []error
	records := make([]v2beta1.PoolIPAllocations, 0, len(pools))
	for _, p := range pools {
		allocs, err := r.allocations(ctx, r.client, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("IPPool %q: %w", p.Name, err))
			continue
		}
		records = append(records, allocs)
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var eps v2beta1.SpiderEndpointList
	if err := r.client.List(ctx, &eps); err != nil {
		return fmt.Errorf("list SpiderEndpoints: %w", err)
	}
	alive := make(map[types.NamespacedName]types.UID, len(pods.Items))
	for i := range pods.Items {
		if p := &pods.Items[i]; workload.PodAlive(p) {
			alive[client.ObjectKeyFromObject(p)] = p.UID
		}
	}

	candidates := map[types.NamespacedName]bool{}
	recorded := map[string]bool{} // pod namespace/name of every record, whatever its UID
	for _, allocs := range records {
		for _, a := range allocs {
			recorded[a.NamespacedName] = true
			key, ok := splitPodKey(a.NamespacedName)
			if ok && string(alive[key]) != a.PodUID {
				candidates[key] = true
			}
		}
	}
	for i := range eps.Items {
		ep := &eps.Items[i]
		key := client.ObjectKeyFromObject(ep)
		if string(alive[key]) != ep.Status.Current.UID {
			candidates[key] = true
		}
	}

	keys := make([]types.NamespacedName, 0, len(candidates))
	for k := range candidates {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	for _, key := range keys {
		if ctx.Err() != nil {
			break
		}
		if _, err := r.collect(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	if r.opts.CleanOutdatedEndpoints {
		for i := range eps.Items {
			ep := &eps.Items[i]
			key := client.ObjectKeyFromObject(ep)
			if ctx.Err() != nil || candidates[key] || recorded[key.String()] {
				continue
			}
			if err := r.cleanOutdated(ctx, ep); err != nil {
				gcFailureCounts.WithLabelValues(GCReasonOutdatedEndpoint).Inc()
				errs = append(errs, err)
			}
		}
	}
	if r.opts.BlockRecords && ctx.Err() == nil {
		if err := r.returnOrphanBlocks(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanOutdated deletes ep, the endpoint of a live pod that no cached pool record names, once the
// pools it names, read from the API server (with their blocks, for pools in block format), confirm
// that none holds a record for its pod: the cache may not have seen an allocation the endpoint was
// written after.
func (r *GCReconciler) cleanOutdated(ctx context.Context, ep *v2beta1.SpiderEndpoint) error {
	name := client.ObjectKeyFromObject(ep).String()
	pools := map[string]bool{}
	for _, d := range ep.Status.Current.IPs {
		for _, p := range []*string{d.IPv4Pool, d.IPv6Pool} {
			if p != nil && *p != "" {
				pools[*p] = true
			}
		}
	}
	for _, pool := range sortedKeys(pools) {
		p := &v2beta1.SpiderIPPool{}
		if err := r.reader.Get(ctx, types.NamespacedName{Name: pool}, p); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("get IPPool %q for SpiderEndpoint %s: %w", pool, name, err)
		}
		allocs, err := r.allocations(ctx, r.reader, p)
		if err != nil {
			return fmt.Errorf("IPPool %q: %w", pool, err)
		}
		for _, a := range allocs {
			if a.NamespacedName == name {
				return nil // backed after all
			}
		}
	}
	return r.deleteEndpoint(ctx, ep, GCReasonOutdatedEndpoint)
}

func minWait(cur, next time.Duration) time.Duration {
	if next <= 0 {
		return cur
	}
	if cur <= 0 || next < cur {
		return next
	}
	return cur
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
