package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

// IPPoolResync is how often a pool is reconciled without any event (docs/design/behaviour.md#controller-reconcilers).
const IPPoolResync = 300 * time.Second

// IPPoolReconciler keeps a SpiderIPPool's counters and finalizer right. It never touches the
// allocation records of a pool in status format: those belong to the agents, which write them with
// resourceVersion CAS, and a controller that rewrote them could lose an allocation made in between.
// For a pool in block format it writes the status as a mirror of the blocks, and it converts pools
// to block format when configured to (ipblock_format.go).
type IPPoolReconciler struct {
	client client.Client
	blocks BlockFormat
	log    logr.Logger
	clock  mirrorClock
	drafts drafts
}

var _ reconcile.Reconciler = (*IPPoolReconciler)(nil)

// NewIPPoolReconciler returns a reconciler writing through c; bf says what it does with block
// format (the zero value: nothing, the kind is not served).
func NewIPPoolReconciler(c client.Client, bf BlockFormat) *IPPoolReconciler {
	return &IPPoolReconciler{client: c, blocks: bf, log: logr.Discard()}
}

// SetupWithManager registers the reconciler for SpiderIPPools and, when blocks are served, for
// the blocks of each pool.
func (r *IPPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.log = mgr.GetLogger().WithName("spiderippool")
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderIPPool{}).
		Named("spiderippool")
	if r.blocks.Served {
		b = b.Watches(&ipblock.SpiderIPBlock{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if blk, ok := o.(*ipblock.SpiderIPBlock); ok && blk.Spec.Pool != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: blk.Spec.Pool}}}
			}
			return nil
		}))
	}
	return b.Complete(r)
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=internal.spiderpool-go.io,resources=spideripblocks,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch

// Reconcile sets status.totalIPCount from the spec, repairs status.allocatedIPCount when it does not
// match the records (for a pool in block format: mirrors the blocks' records into the status),
// adds the finalizer to live pools and removes it from deleted pools once no record is left, so
// that a pool with allocations stays Terminating until its pods are gone. With conversion on, a
// pool in status format is first converted to block format.
func (r *IPPoolReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pool v2beta1.SpiderIPPool
	if err := r.client.Get(ctx, req.NamespacedName, &pool); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	inBlocks := ipblock.InBlocks(&pool)
	if inBlocks && !r.blocks.Served {
		return reconcile.Result{}, fmt.Errorf("IPPool %q keeps its records in SpiderIPBlocks, a kind this cluster does not serve: install the chart's CRDs", pool.Name)
	}
	if !inBlocks && r.blocks.Served && r.blocks.Convert && pool.DeletionTimestamp == nil {
		ready, err := r.agentsCurrent(ctx)
		if err != nil {
			return reconcile.Result{}, err
		}
		if !ready {
			r.log.V(1).Info("IPPool conversion waits for the agents' rollout", "pool", pool.Name)
			return reconcile.Result{RequeueAfter: 10 * time.Second}, nil
		}
		// Converted or not (an agent wrote meanwhile), look again at the pool as it is now.
		if _, err := r.convert(ctx, &pool); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{RequeueAfter: time.Millisecond}, nil
	}
	var allocs v2beta1.PoolIPAllocations
	var err error
	if inBlocks {
		// From the cache, except where a lagging cache would do harm: the finalizer below.
		allocs, err = blockstore.Allocations(ctx, r.client, &pool)
	} else {
		allocs, err = pool.Status.Allocations()
	}
	if err != nil {
		// Never "repair" records we cannot read: that is how allocations get lost.
		return reconcile.Result{}, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}

	if pool.DeletionTimestamp != nil {
		if len(allocs) == 0 && inBlocks && r.blocks.Live != nil {
			if allocs, err = blockstore.Allocations(ctx, r.blocks.Live, &pool); err != nil {
				return reconcile.Result{}, fmt.Errorf("IPPool %q: %w", pool.Name, err)
			}
		}
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
	if inBlocks {
		after, err := r.mirror(ctx, &pool, allocs, total)
		return reconcile.Result{RequeueAfter: after}, err
	}
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
