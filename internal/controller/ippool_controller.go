package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// IPPoolResync is how often a pool is reconciled without any event (docs/design/behaviour.md#controller-reconcilers).
const IPPoolResync = 300 * time.Second

// IPPoolReconciler keeps a SpiderIPPool's counters and finalizer right. It never touches the
// allocation records: those belong to the agents, which write them with resourceVersion CAS, and a
// controller that rewrote them could lose an allocation made in between.
type IPPoolReconciler struct {
	client client.Client
}

var _ reconcile.Reconciler = (*IPPoolReconciler)(nil)

// NewIPPoolReconciler returns a reconciler writing through c.
func NewIPPoolReconciler(c client.Client) *IPPoolReconciler {
	return &IPPoolReconciler{client: c}
}

// SetupWithManager registers the reconciler for SpiderIPPools.
func (r *IPPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderIPPool{}).
		Named("spiderippool").
		Complete(r)
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=get;update;patch

// Reconcile sets status.totalIPCount from the spec, repairs status.allocatedIPCount when it does not
// match the records, adds the finalizer to live pools and removes it from deleted pools once no
// record is left, so that a pool with allocations stays Terminating until its pods are gone.
func (r *IPPoolReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pool v2beta1.SpiderIPPool
	if err := r.client.Get(ctx, req.NamespacedName, &pool); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	allocs, err := pool.Status.Allocations()
	if err != nil {
		// Never "repair" records we cannot read: that is how allocations get lost.
		return reconcile.Result{}, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}

	if pool.DeletionTimestamp != nil {
		if len(allocs) > 0 || !slices.Contains(pool.Finalizers, v2beta1.Finalizer) {
			return reconcile.Result{}, nil // the agents' releases bring us back here
		}
		patched := pool.DeepCopy()
		patched.Finalizers = slices.DeleteFunc(patched.Finalizers, func(f string) bool { return f == v2beta1.Finalizer })
		if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(&pool, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(fmt.Errorf("remove finalizer of IPPool %q: %w", pool.Name, err))
		}
		return reconcile.Result{}, nil
	}

	if !slices.Contains(pool.Finalizers, v2beta1.Finalizer) {
		patched := pool.DeepCopy()
		patched.Finalizers = append(patched.Finalizers, v2beta1.Finalizer)
		if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(&pool, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer to IPPool %q: %w", pool.Name, err)
		}
		pool = *patched
	}

	usable, err := pool.Spec.UsableIPs()
	if err != nil {
		// The webhook rejects such specs; one that got in while it was down has no meaningful count.
		return reconcile.Result{RequeueAfter: IPPoolResync}, nil
	}
	total := usable.Count()
	want := pool.DeepCopy()
	want.Status.TotalIPCount = &total
	count := int64(len(allocs))
	want.Status.AllocatedIPCount = &count
	if equalCount(pool.Status.TotalIPCount, want.Status.TotalIPCount) && equalCount(pool.Status.AllocatedIPCount, want.Status.AllocatedIPCount) {
		return reconcile.Result{RequeueAfter: IPPoolResync}, nil
	}
	// Optimistic lock: the count must describe the records of the same version, and an agent may be
	// writing records right now. A conflict just means another reconcile with fresh data.
	if err := r.client.Status().Patch(ctx, want, client.MergeFromWithOptions(&pool, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, client.IgnoreNotFound(fmt.Errorf("update counters of IPPool %q: %w", pool.Name, err))
	}
	return reconcile.Result{RequeueAfter: IPPoolResync}, nil
}

func equalCount(a, b *int64) bool {
	return a != nil && b != nil && *a == *b
}
