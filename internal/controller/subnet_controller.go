package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// SubnetResync is how often a subnet is reconciled without any event (docs/design/behaviour.md#controller-reconcilers).
const SubnetResync = 300 * time.Second

// SubnetReconciler keeps a SpiderSubnet's status in line with the pools carved out of it, adopts
// the pools whose subnet equals its own (docs/design/behaviour.md#subnet-status-and-adoption) and holds its finalizer while it
// still controls a pool, so that a subnet cannot vanish from under pools that took its addresses.
//
// It never edits a pool's spec or records: it only writes the owner label and the controller
// reference, with the pool's resourceVersion, so an agent allocating at the same time is not undone.
type SubnetReconciler struct {
	client client.Client
}

var _ reconcile.Reconciler = (*SubnetReconciler)(nil)

// NewSubnetReconciler returns a reconciler writing through c.
func NewSubnetReconciler(c client.Client) *SubnetReconciler {
	return &SubnetReconciler{client: c}
}

// SetupWithManager registers the reconciler for SpiderSubnets and for the SpiderIPPools that share
// a subnet's CIDR. Pool updates that touch only the status (every allocation and release) are
// filtered out: they change nothing the subnet reports.
func (r *SubnetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := ctrl.NewControllerManagedBy(mgr).
		Named("spidersubnet").
		For(&v2beta1.SpiderSubnet{}).
		Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(r.subnetsOfPool),
			builder.WithPredicates(poolOwnershipChanged())).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up SpiderSubnet controller: %w", err)
	}
	return nil
}

// poolOwnershipChanged passes pool updates that can change a subnet's view of the pool: its spec
// (the generation), labels, owner references or deletion.
func poolOwnershipChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			if o == nil || n == nil {
				return true
			}
			return o.GetGeneration() != n.GetGeneration() ||
				!maps.Equal(o.GetLabels(), n.GetLabels()) ||
				!slices.EqualFunc(o.GetOwnerReferences(), n.GetOwnerReferences(), ownerRefEqual) ||
				(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
		},
	}
}

func ownerRefEqual(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.Kind == b.Kind && a.Name == b.Name &&
		(a.Controller != nil && *a.Controller) == (b.Controller != nil && *b.Controller)
}

// subnetsOfPool maps a pool to the subnets whose CIDR equals the pool's, and to the subnet that
// controls it, which is the same one unless something else went wrong; the reconcile sorts it out.
func (r *SubnetReconciler) subnetsOfPool(ctx context.Context, o client.Object) []reconcile.Request {
	pool, ok := o.(*v2beta1.SpiderIPPool)
	if !ok {
		return nil
	}
	names := map[string]bool{}
	if ref := metav1.GetControllerOf(pool); ref != nil && ref.Kind == subnetKind {
		names[ref.Name] = true
	}
	var subnets v2beta1.SpiderSubnetList
	if err := r.client.List(ctx, &subnets); err == nil {
		for i := range subnets.Items {
			if v2beta1.SameCIDR(subnets.Items[i].Spec.Subnet, pool.Spec.Subnet) {
				names[subnets.Items[i].Name] = true
			}
		}
	}
	// A failed cache list leaves only the owner: the others catch up at the next resync.
	out := make([]reconcile.Request, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
	return out
}

const subnetKind = "SpiderSubnet"

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets/finalizers,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;update;patch

// Reconcile adds the finalizer to a live subnet, adopts the unowned pools of its CIDR, and writes
// status.totalIPCount, status.controlledIPPools and status.allocatedIPCount when they changed. A
// deleted subnet adopts nothing and keeps its finalizer until no pool it controls is left.
func (r *SubnetReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var subnet v2beta1.SpiderSubnet
	if err := r.client.Get(ctx, req.NamespacedName, &subnet); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var pools v2beta1.SpiderIPPoolList
	if err := r.client.List(ctx, &pools); err != nil {
		return reconcile.Result{}, fmt.Errorf("list IPPools for subnet %q: %w", subnet.Name, err)
	}

	deleting := subnet.DeletionTimestamp != nil
	var controlled []*v2beta1.SpiderIPPool
	for i := range pools.Items {
		pool := &pools.Items[i]
		owner := metav1.GetControllerOf(pool)
		switch {
		case owner != nil && owner.UID == subnet.UID:
			if pool.Labels[v2beta1.LabelOwnerSpiderSubnet] != subnet.Name && !deleting {
				adopted, err := r.adopt(ctx, &subnet, pool)
				if err != nil {
					return conflictRequeue(err)
				}
				if adopted == nil {
					continue
				}
				pool = adopted
			}
			controlled = append(controlled, pool)
		case owner != nil, deleting, pool.DeletionTimestamp != nil, !v2beta1.SameCIDR(pool.Spec.Subnet, subnet.Spec.Subnet):
			// Another controller's pool is never taken over; a terminating subnet or pool is not
			// worth tying together for the moments either has left.
		default:
			adopted, err := r.adopt(ctx, &subnet, pool)
			if err != nil {
				return conflictRequeue(err)
			}
			if adopted != nil {
				controlled = append(controlled, adopted)
			}
		}
	}

	if deleting {
		if len(controlled) == 0 {
			return reconcile.Result{}, r.removeFinalizer(ctx, &subnet)
		}
		// Held: the deletion of the last pool (a watched event) brings us back here.
	} else if !slices.Contains(subnet.Finalizers, v2beta1.Finalizer) {
		patched := subnet.DeepCopy()
		patched.Finalizers = append(patched.Finalizers, v2beta1.Finalizer)
		if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(&subnet, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: time.Second}, nil
			}
			return reconcile.Result{}, client.IgnoreNotFound(fmt.Errorf("add finalizer to Subnet %q: %w", subnet.Name, err))
		}
		subnet = *patched
	}

	want, err := subnetStatus(&subnet.Spec, controlled)
	if err != nil {
		// The webhook rejects such specs; one that got in while it was down has no meaningful count.
		return reconcile.Result{RequeueAfter: SubnetResync}, nil
	}
	if subnetStatusEqual(subnet.Status, want) {
		return reconcile.Result{RequeueAfter: SubnetResync}, nil
	}
	patched := subnet.DeepCopy()
	patched.Status = want
	// Optimistic lock: the counts describe this version of the spec (ips may just have grown).
	if err := r.client.Status().Patch(ctx, patched, client.MergeFromWithOptions(&subnet, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, client.IgnoreNotFound(fmt.Errorf("update status of Subnet %q: %w", subnet.Name, err))
	}
	return reconcile.Result{RequeueAfter: SubnetResync}, nil
}

// adopt labels pool with the subnet's name and makes the subnet its controller. It returns the
// patched pool, or nil when the pool is gone.
func (r *SubnetReconciler) adopt(ctx context.Context, subnet *v2beta1.SpiderSubnet, pool *v2beta1.SpiderIPPool) (*v2beta1.SpiderIPPool, error) {
	patched := pool.DeepCopy()
	if patched.Labels == nil {
		patched.Labels = map[string]string{}
	}
	patched.Labels[v2beta1.LabelOwnerSpiderSubnet] = subnet.Name
	if err := controllerutil.SetControllerReference(subnet, patched, r.client.Scheme()); err != nil {
		return nil, fmt.Errorf("adopt IPPool %q into Subnet %q: %w", pool.Name, subnet.Name, err)
	}
	// Optimistic lock: another controller may be claiming the pool right now, and a merge patch of
	// ownerReferences replaces the whole list.
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("adopt IPPool %q into Subnet %q: %w", pool.Name, subnet.Name, err)
	}
	return patched, nil
}

func (r *SubnetReconciler) removeFinalizer(ctx context.Context, subnet *v2beta1.SpiderSubnet) error {
	if !slices.Contains(subnet.Finalizers, v2beta1.Finalizer) {
		return nil
	}
	patched := subnet.DeepCopy()
	patched.Finalizers = slices.DeleteFunc(patched.Finalizers, func(f string) bool { return f == v2beta1.Finalizer })
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(subnet, client.MergeFromWithOptimisticLock{})); err != nil {
		// A conflict is an update we have not seen yet; its event reconciles again.
		if apierrors.IsConflict(err) {
			return nil
		}
		return client.IgnoreNotFound(fmt.Errorf("remove finalizer of Subnet %q: %w", subnet.Name, err))
	}
	return nil
}

// conflictRequeue turns a lost race into a quick retry and passes other errors on.
func conflictRequeue(err error) (reconcile.Result, error) {
	if apierrors.IsConflict(err) {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return reconcile.Result{}, err
}

// subnetStatus computes the status of a subnet controlling pools. totalIPCount is |ips − excludeIPs|;
// controlledIPPools lists each pool's merged spec.ips; allocatedIPCount counts the distinct usable
// addresses of the pools (their ips − excludeIPs) that are usable addresses of the subnet, so a
// pool's excluded addresses or a stray address outside the subnet's ips never count as handed out.
// An error means the subnet's own spec cannot be read.
func subnetStatus(spec *v2beta1.SubnetSpec, pools []*v2beta1.SpiderIPPool) (v2beta1.SubnetStatus, error) {
	ips, err := ip.ParseSet(spec.IPs, spec.Version())
	if err != nil {
		return v2beta1.SubnetStatus{}, err
	}
	exclude, err := ip.ParseSet(spec.ExcludeIPs, ips.Version())
	if err != nil {
		return v2beta1.SubnetStatus{}, err
	}
	usable := ips.Subtract(exclude)

	shares := v2beta1.PoolIPPreAllocations{}
	var handed ip.Set
	for _, pool := range pools {
		share := v2beta1.PoolIPPreAllocation{IPs: []string{}, Application: applicationKey(pool.Labels)}
		// A pool spec the webhook would have rejected is listed without addresses rather than
		// failing the subnet: its owner still has to know it is there.
		if poolIPs, err := ip.ParseSet(pool.Spec.IPs, usable.Version()); err == nil {
			if s := poolIPs.Strings(); len(s) > 0 {
				share.IPs = s
			}
			if poolExclude, err := ip.ParseSet(pool.Spec.ExcludeIPs, poolIPs.Version()); err == nil {
				if handed, err = handed.Union(poolIPs.Subtract(poolExclude).Intersect(usable)); err != nil {
					return v2beta1.SubnetStatus{}, err
				}
			}
		}
		shares[pool.Name] = share
	}

	var status v2beta1.SubnetStatus
	if err := status.SetControlledPools(shares); err != nil {
		return v2beta1.SubnetStatus{}, err
	}
	total, allocated := usable.Count(), handed.Count()
	status.TotalIPCount, status.AllocatedIPCount = &total, &allocated
	return status, nil
}

// applicationKey is the "application" of an auto-created pool, built from its owner-application
// labels as upstream spells it: <group>_<version>_<kind>_<namespace>_<name>, where the gv label
// already has the "/" of the apiVersion replaced by "_" (label values cannot hold "/"). Pools made by
// hand carry no such labels and get none.
func applicationKey(labels map[string]string) *string {
	parts := []string{
		labels[v2beta1.LabelOwnerApplicationGV],
		labels[v2beta1.LabelOwnerApplicationKind],
		labels[v2beta1.LabelOwnerApplicationNS],
		labels[v2beta1.LabelOwnerApplicationName],
	}
	if slices.Contains(parts, "") {
		return nil
	}
	key := strings.Join(parts, "_")
	return &key
}

func subnetStatusEqual(a, b v2beta1.SubnetStatus) bool {
	return equalCount(a.TotalIPCount, b.TotalIPCount) && equalCount(a.AllocatedIPCount, b.AllocatedIPCount) &&
		(a.ControlledIPPools == nil) == (b.ControlledIPPools == nil) &&
		(a.ControlledIPPools == nil || *a.ControlledIPPools == *b.ControlledIPPools)
}
