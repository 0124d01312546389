package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

// AutoPoolDrainRetry is how often a reclaimable auto pool of a deleted workload is looked at
// again while it still holds records (the pods' IPs are released by CNI DEL or GC).
const AutoPoolDrainRetry = 5 * time.Second

// AutoPoolReconciler creates, resizes and reclaims the SpiderIPPools that SpiderSubnets hand to
// workloads whose pod template carries ipam.spidernet.io/subnet(s) (docs/design/behaviour.md#subnets-and-auto-created-pools).
//
// One instance serves every workload kind: its mutex serialises the carving of subnet addresses,
// which reads "free = subnet − every pool of the subnet" and then writes a pool, so two workloads
// reconciled at the same time cannot be handed the same addresses.
type AutoPoolReconciler struct {
	client client.Client
	// reader lists pools without the cache: a pool created a moment ago must be found by the next
	// reconcile, or the workload gets a second one and the subnet loses the addresses twice.
	reader client.Reader
	mu     sync.Mutex
	// DefaultRedundant is N of the default "+N" pool size (ipam.spiderSubnet.autoPool.
	// defaultRedundantIPNumber; upstream's default 1).
	DefaultRedundant int
	// Recorder, when set, receives a Warning event on a workload whose annotation cannot be
	// honoured.
	Recorder events.EventRecorder
}

// NewAutoPoolReconciler returns a reconciler writing through c and listing pools through reader
// (the manager's API reader).
func NewAutoPoolReconciler(c client.Client, reader client.Reader) *AutoPoolReconciler {
	return &AutoPoolReconciler{client: c, reader: reader, DefaultRedundant: 1}
}

// workloadKind is one watched kind: its GVK and how to read it.
type workloadKind struct {
	gvk schema.GroupVersionKind
	new func() client.Object
}

var (
	deploymentKind  = workloadKind{appsv1.SchemeGroupVersion.WithKind("Deployment"), func() client.Object { return &appsv1.Deployment{} }}
	statefulSetKind = workloadKind{appsv1.SchemeGroupVersion.WithKind("StatefulSet"), func() client.Object { return &appsv1.StatefulSet{} }}
	replicaSetKind  = workloadKind{appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), func() client.Object { return &appsv1.ReplicaSet{} }}
	daemonSetKind   = workloadKind{appsv1.SchemeGroupVersion.WithKind("DaemonSet"), func() client.Object { return &appsv1.DaemonSet{} }}
	jobKind         = workloadKind{batchv1.SchemeGroupVersion.WithKind("Job"), func() client.Object { return &batchv1.Job{} }}
	cronJobKind     = workloadKind{batchv1.SchemeGroupVersion.WithKind("CronJob"), func() client.Object { return &batchv1.CronJob{} }}

	// autoPoolKinds are the workloads that get auto pools (docs/design/behaviour.md#subnets-and-auto-created-pools).
	autoPoolKinds = []workloadKind{deploymentKind, replicaSetKind, statefulSetKind, daemonSetKind, jobKind, cronJobKind}
)

// kindReconciler reconciles the workloads of one kind; controller-runtime requests carry no kind.
type kindReconciler struct {
	r    *AutoPoolReconciler
	kind workloadKind
}

var _ reconcile.Reconciler = (*kindReconciler)(nil)

func (k *kindReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return k.r.reconcile(ctx, k.kind, req.NamespacedName)
}

// SetupWithManager registers one controller per workload kind, each also watching the auto pools
// labelled for that kind so that a draining pool of a deleted workload is reconsidered when its
// records go. ReplicaSets and Jobs with a controller (a Deployment, a CronJob) are left to it: the
// pool belongs to the top controller, which is what the agent matches pods against. DaemonSets are
// also reconciled when a node comes or goes, since their size is the number of nodes.
func (r *AutoPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	for _, kind := range autoPoolKinds {
		b := ctrl.NewControllerManagedBy(mgr).
			Named("autopool-"+strings.ToLower(kind.gvk.Kind)).
			Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(workloadOfPool(kind.gvk.Kind)),
				builder.WithPredicates(autoPoolChanged()))
		switch kind.gvk {
		case replicaSetKind.gvk, jobKind.gvk:
			b = b.For(kind.new(), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return metav1.GetControllerOf(o) == nil
			})))
		case daemonSetKind.gvk:
			b = b.For(kind.new()).
				Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.daemonSetsOfNode),
					builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}))
		default:
			b = b.For(kind.new())
		}
		if err := b.Complete(&kindReconciler{r: r, kind: kind}); err != nil {
			return fmt.Errorf("set up auto-pool controller for %s: %w", kind.gvk.Kind, err)
		}
	}
	return nil
}

// daemonSetsOfNode maps a node that came or went to every DaemonSet: each may need one address
// more or less.
func (r *AutoPoolReconciler) daemonSetsOfNode(ctx context.Context, _ client.Object) []reconcile.Request {
	var l appsv1.DaemonSetList
	if err := r.client.List(ctx, &l); err != nil {
		return nil // the next DaemonSet event resizes it
	}
	out := make([]reconcile.Request, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])})
	}
	return out
}

// autoPoolChanged passes the pool updates an auto-pool reconcile acts on: a spec or label change,
// and the last record going (a drained pool can now be deleted). Every other allocation or release
// would only make the workload be looked at again for nothing.
func autoPoolChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v2beta1.SpiderIPPool)
			n, ok2 := e.ObjectNew.(*v2beta1.SpiderIPPool)
			if !ok1 || !ok2 {
				return true
			}
			empty := func(p *v2beta1.SpiderIPPool) bool {
				if ipblock.InBlocks(p) {
					// The status is the controller's mirror: only its count is whole. A trigger
					// only; reclaim reads the blocks before deleting anything.
					return ptr.Deref(p.Status.AllocatedIPCount, 0) == 0
				}
				return p.Status.AllocatedIPs == nil || *p.Status.AllocatedIPs == "" || *p.Status.AllocatedIPs == "{}"
			}
			return o.Generation != n.Generation || !maps.Equal(o.Labels, n.Labels) || (!empty(o) && empty(n))
		},
	}
}

// workloadOfPool maps an auto pool to the workload of kind it was made for.
func workloadOfPool(kind string) handler.MapFunc {
	return func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[v2beta1.LabelOwnerApplicationKind] != kind || l[v2beta1.LabelOwnerApplicationName] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{
			Namespace: l[v2beta1.LabelOwnerApplicationNS], Name: l[v2beta1.LabelOwnerApplicationName]}}}
	}
}

// +kubebuilder:rbac:groups=apps,resources=deployments;replicasets;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;create;update;patch;delete

func (r *AutoPoolReconciler) reconcile(ctx context.Context, kind workloadKind, key types.NamespacedName) (reconcile.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	obj := kind.new()
	if err := r.client.Get(ctx, key, obj); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		return r.reclaim(ctx, kind, key)
	}
	if obj.GetDeletionTimestamp() != nil {
		return r.reclaim(ctx, kind, key)
	}
	if (kind.gvk == replicaSetKind.gvk || kind.gvk == jobKind.gvk) && metav1.GetControllerOf(obj) != nil {
		return reconcile.Result{}, nil // its controller's pool serves its pods
	}
	nodes := 0
	if kind.gvk == daemonSetKind.gvk {
		var l metav1.PartialObjectMetadataList
		l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
		if err := r.client.List(ctx, &l); err != nil {
			return reconcile.Result{}, fmt.Errorf("list nodes for DaemonSet %s: %w", key, err)
		}
		nodes = len(l.Items)
	}
	app, err := appOf(kind, obj, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	if app.invalid {
		return reconcile.Result{}, nil
	}
	if len(app.wants) == 0 {
		// No subnet annotation (any more): pools of an earlier template are reclaimed like those of
		// a deleted workload.
		return r.reclaim(ctx, kind, key)
	}
	missing := false
	for _, w := range app.wants {
		if err := r.ensurePool(ctx, app, w); errors.Is(err, errSubnetMissing) {
			missing = true
		} else if err != nil {
			return conflictRequeue(err)
		}
	}
	if missing {
		return reconcile.Result{RequeueAfter: AutoPoolSubnetRetry}, nil
	}
	return reconcile.Result{}, nil
}

// AutoPoolSubnetRetry is how often a workload naming a SpiderSubnet that does not exist (yet) is
// looked at again.
const AutoPoolSubnetRetry = 10 * time.Second

var errSubnetMissing = errors.New("SpiderSubnet not found")

// application is a workload as the auto pools see it.
type application struct {
	gvk       schema.GroupVersionKind
	namespace string
	name      string
	uid       types.UID
	replicas  int
	ipNumber  string // ippool-ip-number, "" for the default
	reclaim   bool
	wants     []poolWant
	invalid   bool
}

// poolWant is one auto pool a workload needs: a subnet for an interface and family.
type poolWant struct {
	ifName  string
	version int
	subnet  string
}

// appOf reads a workload; nodes is the replica count of a DaemonSet. Jobs and CronJobs count their
// parallelism: that many pods hold addresses at once.
func appOf(kind workloadKind, obj client.Object, nodes int) (*application, error) {
	var (
		tmpl     *corev1.PodTemplateSpec
		replicas = 1
	)
	count := func(n *int32) {
		if n != nil {
			replicas = int(*n)
		}
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		tmpl = &o.Spec.Template
		count(o.Spec.Replicas)
	case *appsv1.ReplicaSet:
		tmpl = &o.Spec.Template
		count(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		tmpl = &o.Spec.Template
		count(o.Spec.Replicas)
	case *appsv1.DaemonSet:
		tmpl = &o.Spec.Template
		replicas = nodes
	case *batchv1.Job:
		tmpl = &o.Spec.Template
		count(o.Spec.Parallelism)
	case *batchv1.CronJob:
		tmpl = &o.Spec.JobTemplate.Spec.Template
		count(o.Spec.JobTemplate.Spec.Parallelism)
	default:
		return nil, fmt.Errorf("auto pools: unsupported workload %T", obj)
	}
	app := &application{gvk: kind.gvk, namespace: obj.GetNamespace(), name: obj.GetName(), uid: obj.GetUID(),
		replicas: replicas, reclaim: true}
	anno := tmpl.Annotations
	app.ipNumber = anno[v2beta1.AnnoSpiderSubnetPoolIPNum]
	if v, ok := anno[v2beta1.AnnoSpiderSubnetReclaimIP]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("annotation %s of %s %s/%s: %w", v2beta1.AnnoSpiderSubnetReclaimIP, kind.gvk.Kind, app.namespace, app.name, err)
		}
		app.reclaim = b
	}
	wants, err := subnetWants(anno)
	if err != nil {
		// A malformed template annotation cannot be fixed by retrying (the agent reports it to the
		// pod); the pools already made are left alone rather than reclaimed over a typo.
		app.invalid = true
		return app, nil
	}
	app.wants = wants
	return app, nil
}

// subnetWants reads the subnet annotations of a pod template; /subnets takes precedence, and /subnet
// applies to the first NIC. Upstream carves one pool per family from the first subnet named.
func subnetWants(anno map[string]string) ([]poolWant, error) {
	var out []poolWant
	add := func(nic string, v4, v6 []string) {
		if len(v4) > 0 {
			out = append(out, poolWant{ifName: nic, version: 4, subnet: v4[0]})
		}
		if len(v6) > 0 {
			out = append(out, poolWant{ifName: nic, version: 6, subnet: v6[0]})
		}
	}
	if v, ok := anno[v2beta1.AnnoSpiderSubnets]; ok {
		list, err := ipam.ParseInterfaceSubnets(v)
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			add(e.Interface, e.IPv4, e.IPv6)
		}
		return out, nil
	}
	if v, ok := anno[v2beta1.AnnoSpiderSubnet]; ok {
		names, err := ipam.ParsePoolNames(v2beta1.AnnoSpiderSubnet, v)
		if err != nil {
			return nil, err
		}
		add(v2beta1.ClusterDefaultInterfaceName, names.IPv4, names.IPv6)
	}
	return out, nil
}

// MaxAutoPoolIPs is the largest auto pool: an IPPool holds at most that many records
// (ipam.DefaultMaxRecords), so a larger one could never be used, and every size is checked
// against it before anything is allocated for it.
const MaxAutoPoolIPs = ipam.DefaultMaxRecords

// desiredIPs is the pool size: "+N" is replicas + N, "N" is N; "" is "+redundant" (upstream's
// default "+1"). A size above MaxAutoPoolIPs is an error naming the annotation and the replicas.
func desiredIPs(ipNumber string, replicas, redundant int) (int, error) {
	bad := func() error {
		return fmt.Errorf("annotation %s %q: want N or +N with N a whole number", v2beta1.AnnoSpiderSubnetPoolIPNum, ipNumber)
	}
	relative, text := true, strconv.Itoa(redundant)
	if ipNumber != "" {
		text, relative = strings.CutPrefix(ipNumber, "+")
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 {
		return 0, bad()
	}
	want := n
	if relative {
		want += int64(replicas)
	}
	if n > MaxAutoPoolIPs || want > MaxAutoPoolIPs {
		what := fmt.Sprintf("annotation %s %q", v2beta1.AnnoSpiderSubnetPoolIPNum, ipNumber)
		if ipNumber == "" {
			what = fmt.Sprintf("the default size +%d", redundant)
		}
		if relative {
			what += fmt.Sprintf(" with %d replicas", replicas)
		}
		return 0, fmt.Errorf("%s asks for an IPPool of %d IPs; an IPPool holds at most %d records: "+
			"lower the replicas or the annotation, or give the workload a manual IPPool", what, want, MaxAutoPoolIPs)
	}
	return int(want), nil
}

func versionLabel(v int) string { return fmt.Sprintf("IPv%d", v) }

// gvLabel is the apiVersion in label-value form, as applicationKey expects it.
func gvLabel(gv schema.GroupVersion) string { return strings.ReplaceAll(gv.String(), "/", "_") }

// appSelector selects the auto pools of a workload kind/namespace/name, whatever its uid.
func appSelector(kind, namespace, name string) client.MatchingLabels {
	return client.MatchingLabels{
		v2beta1.LabelOwnerApplicationKind: kind,
		v2beta1.LabelOwnerApplicationNS:   namespace,
		v2beta1.LabelOwnerApplicationName: name,
	}
}

// ensurePool creates the auto pool of w or brings its labels and size up to date.
func (r *AutoPoolReconciler) ensurePool(ctx context.Context, app *application, w poolWant) error {
	sel := appSelector(app.gvk.Kind, app.namespace, app.name)
	sel[v2beta1.LabelIPPoolInterface] = w.ifName
	sel[v2beta1.LabelIPPoolVersion] = versionLabel(w.version)
	var existing v2beta1.SpiderIPPoolList
	if err := r.reader.List(ctx, &existing, sel); err != nil {
		return fmt.Errorf("list auto IPPools of %s %s/%s: %w", app.gvk.Kind, app.namespace, app.name, err)
	}
	want, err := desiredIPs(app.ipNumber, app.replicas, r.DefaultRedundant)
	if err != nil {
		// Not retried: nothing sensible to size until the workload changes.
		r.warn(ctx, app, "InvalidAutoPoolSize", err)
		return nil
	}
	var subnet v2beta1.SpiderSubnet
	if err := r.client.Get(ctx, types.NamespacedName{Name: w.subnet}, &subnet); err != nil {
		if apierrors.IsNotFound(err) {
			return errSubnetMissing // subnets are not watched: look again later
		}
		return fmt.Errorf("get Subnet %q: %w", w.subnet, err)
	}
	if subnet.DeletionTimestamp != nil {
		return nil
	}
	var pool *v2beta1.SpiderIPPool
	for i := range existing.Items {
		if existing.Items[i].DeletionTimestamp == nil {
			pool = &existing.Items[i]
			break
		}
	}
	if pool == nil {
		return r.createPool(ctx, app, w, &subnet, want)
	}
	return r.updatePool(ctx, app, &subnet, pool, want)
}

func (r *AutoPoolReconciler) createPool(ctx context.Context, app *application, w poolWant, subnet *v2beta1.SpiderSubnet, want int) error {
	free, err := r.freeIPs(ctx, subnet)
	if err != nil {
		return err
	}
	ips := takeAddrs(free, want)
	if len(ips) < want {
		return fmt.Errorf("subnet %q has %d free IPs, %s %s/%s needs %d", subnet.Name, len(ips), app.gvk.Kind, app.namespace, app.name, want)
	}
	set, err := ip.ParseSet(ips, w.version)
	if err != nil {
		return err
	}
	// The subnet may be stored as written past the webhook ("10.6.0.1/16"); the pool gets the
	// canonical form the webhook would have given it.
	cidr, err := subnet.Spec.SubnetPrefix()
	if err != nil {
		return fmt.Errorf("SpiderSubnet %q: spec.subnet: %w", subnet.Name, err)
	}
	version := int64(w.version)
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{
			Name:   autoPoolName(w.version, app.name, w.ifName),
			Labels: r.poolLabels(app, w, subnet),
		},
		Spec: v2beta1.IPPoolSpec{
			IPVersion:   &version,
			Subnet:      ip.FormatPrefix(cidr),
			IPs:         set.Strings(),
			Gateway:     subnet.Spec.Gateway,
			Routes:      subnet.Spec.Routes,
			PodAffinity: &metav1.LabelSelector{MatchLabels: podAffinityLabels(app)},
		},
	}
	if err := controllerutil.SetControllerReference(subnet, pool, r.client.Scheme()); err != nil {
		return fmt.Errorf("own auto IPPool by Subnet %q: %w", subnet.Name, err)
	}
	if err := r.client.Create(ctx, pool); err != nil {
		return fmt.Errorf("create auto IPPool %q: %w", pool.Name, err)
	}
	return nil
}

func (r *AutoPoolReconciler) poolLabels(app *application, w poolWant, subnet *v2beta1.SpiderSubnet) map[string]string {
	return map[string]string{
		v2beta1.LabelOwnerApplicationGV:   gvLabel(app.gvk.GroupVersion()),
		v2beta1.LabelOwnerApplicationKind: app.gvk.Kind,
		v2beta1.LabelOwnerApplicationNS:   app.namespace,
		v2beta1.LabelOwnerApplicationName: app.name,
		v2beta1.LabelOwnerApplicationUID:  string(app.uid),
		v2beta1.LabelIPPoolReclaim:        strconv.FormatBool(app.reclaim),
		v2beta1.LabelIPPoolInterface:      w.ifName,
		v2beta1.LabelIPPoolVersion:        versionLabel(w.version),
		v2beta1.LabelOwnerSpiderSubnet:    subnet.Name,
	}
}

func podAffinityLabels(app *application) map[string]string {
	return map[string]string{
		v2beta1.AutoPoolPodAffinityAppAPIGrp: app.gvk.Group,
		v2beta1.AutoPoolPodAffinityAppAPIVer: app.gvk.Version,
		v2beta1.AutoPoolPodAffinityAppKind:   app.gvk.Kind,
		v2beta1.AutoPoolPodAffinityAppNS:     app.namespace,
		v2beta1.AutoPoolPodAffinityAppName:   app.name,
	}
}

// updatePool takes a kept pool over for this workload (uid, reclaim) and resizes it: growth takes
// free subnet addresses, shrinking gives back only addresses no pod holds.
func (r *AutoPoolReconciler) updatePool(ctx context.Context, app *application, subnet *v2beta1.SpiderSubnet, pool *v2beta1.SpiderIPPool, want int) error {
	patched := pool.DeepCopy()
	patched.Labels[v2beta1.LabelOwnerApplicationUID] = string(app.uid)
	patched.Labels[v2beta1.LabelIPPoolReclaim] = strconv.FormatBool(app.reclaim)

	version := ipam.PoolVersion(pool)
	current, err := ip.ParseSet(pool.Spec.IPs, version)
	if err != nil {
		return fmt.Errorf("auto IPPool %q: %w", pool.Name, err)
	}
	have := current.Count()
	switch {
	case have < int64(want):
		free, err := r.freeIPs(ctx, subnet)
		if err != nil {
			return err
		}
		more := takeAddrs(free, want-int(have))
		add, err := ip.ParseSet(more, version)
		if err != nil {
			return err
		}
		grown, err := current.Union(add)
		if err != nil {
			return err
		}
		patched.Spec.IPs = grown.Strings()
	case have > int64(want):
		allocs, err := blockstore.Allocations(ctx, r.reader, pool)
		if err != nil {
			return fmt.Errorf("auto IPPool %q: %w", pool.Name, err)
		}
		// Keep every allocated address and the lowest unallocated ones up to want, giving back
		// the highest: the pool stays compact at the start. The walk visits at most
		// want + len(allocs) addresses, whatever the pool's size (an IPv6 pool may hold 2^64).
		var kept []ip.Range
		for a := range allocs {
			if addr, err := netip.ParseAddr(a); err == nil && current.Contains(addr) {
				kept = append(kept, ip.Range{First: addr, Last: addr})
			}
		}
		needFree := want - len(kept)
		for _, rg := range current.Ranges() {
			for a := rg.First; needFree > 0; a = a.Next() {
				if _, used := allocs[ip.FormatAddr(a)]; !used {
					kept = append(kept, ip.Range{First: a, Last: a})
					needFree--
				}
				if a == rg.Last {
					break
				}
			}
			if needFree <= 0 {
				break
			}
		}
		keptSet, err := ip.NewSet(version, kept...)
		if err != nil {
			return err
		}
		keep := keptSet.Strings()
		shrunk, err := ip.ParseSet(keep, version)
		if err != nil {
			return err
		}
		patched.Spec.IPs = shrunk.Strings()
	}
	if slices.Equal(patched.Spec.IPs, pool.Spec.IPs) && patched.Labels[v2beta1.LabelOwnerApplicationUID] == pool.Labels[v2beta1.LabelOwnerApplicationUID] &&
		patched.Labels[v2beta1.LabelIPPoolReclaim] == pool.Labels[v2beta1.LabelIPPoolReclaim] {
		return nil
	}
	// Optimistic lock: a merge patch of spec.ips replaces the list, and another writer may have
	// just changed it.
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update auto IPPool %q: %w", pool.Name, err)
	}
	return nil
}

// reclaim deletes the reclaimable auto pools of a workload that is gone (or no longer asks for a
// subnet), once they hold no records; pools marked ippool-reclaim=false are kept for a workload of
// the same kind, namespace and name.
func (r *AutoPoolReconciler) reclaim(ctx context.Context, kind workloadKind, key types.NamespacedName) (reconcile.Result, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := r.reader.List(ctx, &pools, appSelector(kind.gvk.Kind, key.Namespace, key.Name)); err != nil {
		return reconcile.Result{}, fmt.Errorf("list auto IPPools of %s %s: %w", kind.gvk.Kind, key, err)
	}
	draining := false
	for i := range pools.Items {
		pool := &pools.Items[i]
		if pool.Labels[v2beta1.LabelIPPoolReclaim] == "false" || pool.DeletionTimestamp != nil {
			continue
		}
		allocs, err := blockstore.Allocations(ctx, r.reader, pool)
		if err != nil && ipblock.InBlocks(pool) {
			// Unlike undecodable status records, blocks that cannot be read may hold records.
			return reconcile.Result{}, fmt.Errorf("auto IPPool %q: %w", pool.Name, err)
		}
		if err == nil && len(allocs) > 0 {
			draining = true
			continue
		}
		if err := r.client.Delete(ctx, pool, client.Preconditions{ResourceVersion: &pool.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				draining = true // changed under us (a late allocation?): look again
				continue
			}
			return reconcile.Result{}, fmt.Errorf("delete auto IPPool %q: %w", pool.Name, err)
		}
	}
	if draining {
		return reconcile.Result{RequeueAfter: AutoPoolDrainRetry}, nil
	}
	return reconcile.Result{}, nil
}

// freeIPs is the subnet's usable set minus the addresses of every pool of the same CIDR, whoever
// owns it.
func (r *AutoPoolReconciler) freeIPs(ctx context.Context, subnet *v2beta1.SpiderSubnet) (ip.Set, error) {
	ips, err := ip.ParseSet(subnet.Spec.IPs, subnet.Spec.Version())
	if err != nil {
		return ip.Set{}, fmt.Errorf("SpiderSubnet %q: %w", subnet.Name, err)
	}
	exclude, err := ip.ParseSet(subnet.Spec.ExcludeIPs, ips.Version())
	if err != nil {
		return ip.Set{}, fmt.Errorf("SpiderSubnet %q: %w", subnet.Name, err)
	}
	free := ips.Subtract(exclude)
	var pools v2beta1.SpiderIPPoolList
	if err := r.reader.List(ctx, &pools); err != nil {
		return ip.Set{}, fmt.Errorf("list IPPools: %w", err)
	}
	for i := range pools.Items {
		if !v2beta1.SameCIDR(pools.Items[i].Spec.Subnet, subnet.Spec.Subnet) {
			continue
		}
		used, err := ip.ParseSet(pools.Items[i].Spec.IPs, free.Version())
		if err != nil {
			continue // the webhook rejects it; its addresses cannot be known
		}
		free = free.Subtract(used)
	}
	return free, nil
}

// takeAddrs returns up to n addresses of s, lowest first.
func takeAddrs(s ip.Set, n int) []string {
	out := make([]string, 0, min(n, 1024))
	for _, rg := range s.Ranges() {
		for a := rg.First; len(out) < n; a = a.Next() {
			out = append(out, ip.FormatAddr(a))
			if a == rg.Last {
				break
			}
		}
		if len(out) == n {
			break
		}
	}
	return out
}

// autoPoolName is auto<v>-<app>-<nic>-<5 random>, with the application name cut so that the
// whole stays a valid 63-character name; pools are found by labels, so the cut loses nothing.
func autoPoolName(version int, app, nic string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	prefix := fmt.Sprintf("auto%d-", version)
	suffix := "-" + strings.ToLower(nic) + "-" + string(b)
	if room := 63 - len(prefix) - len(suffix); len(app) > room {
		app = strings.TrimRight(app[:max(room, 0)], "-.")
	}
	return prefix + app + suffix
}

// warn records err on the workload: a Warning event when a recorder is set, and the log.
func (r *AutoPoolReconciler) warn(ctx context.Context, app *application, reason string, err error) {
	logf.FromContext(ctx).Info("auto IPPool not sized", "workload", app.gvk.Kind+" "+app.namespace+"/"+app.name, "reason", reason, "error", err.Error())
	if r.Recorder == nil {
		return
	}
	ref := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: app.gvk.GroupVersion().String(), Kind: app.gvk.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: app.namespace, Name: app.name, UID: app.uid},
	}
	r.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, reason, "SizeAutoIPPool", "%s", err.Error())
}
