package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

var (
	_ admission.Defaulter[*v2beta1.SpiderIPPool] = (*IPPoolWebhook)(nil)
	_ admission.Validator[*v2beta1.SpiderIPPool] = (*IPPoolWebhook)(nil)
)

// IPPoolWebhook defaults and validates SpiderIPPools.
type IPPoolWebhook struct {
	// Reader lists the other pools and the subnets. Setup gives it the manager's cache: the overlap
	// rule may then miss a pool created a moment before, which allocation catches (see Setup).
	Reader                 client.Reader
	EnableIPv4, EnableIPv6 bool
	// EnableSpiderSubnet is ipam.spiderSubnet.enable: a pool created without a gateway or routes
	// takes them from the SpiderSubnet of its CIDR.
	EnableSpiderSubnet bool
	// BlockReader reads the SpiderIPBlocks of a pool in block format, whose status is only a
	// mirror: the API reader, so that an update never removes an address a block records.
	BlockReader client.Reader
	// BlockWriter writes the fences of an update that removes addresses from a pool in block
	// format (blockstore.Fence).
	BlockWriter client.Writer
	// now is the clock of the fences; nil means time.Now.
	now func() time.Time
}

// Default implements admission.Defaulter.
func (w *IPPoolWebhook) Default(ctx context.Context, pool *v2beta1.SpiderIPPool) error {
	v2beta1.DefaultSpiderIPPool(pool)
	if w.EnableSpiderSubnet && (pool.Spec.Gateway == nil || pool.Spec.Routes == nil) {
		return w.inherit(ctx, pool)
	}
	return nil
}

// inherit fills the gateway and the routes a pool leaves unset from the SpiderSubnet of the same
// CIDR, as the pools a subnet creates itself get them. Set fields, even to an empty list of
// routes, are the user's and stay: an empty list is dropped by the JSON encoding, though, and so
// inherits too. A pool of no subnet keeps what it has.
func (w *IPPoolWebhook) inherit(ctx context.Context, pool *v2beta1.SpiderIPPool) error {
	var subnets v2beta1.SpiderSubnetList
	if err := w.Reader.List(ctx, &subnets); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("list SpiderSubnets: %w", err))
	}
	for i := range subnets.Items {
		s := &subnets.Items[i]
		if s.DeletionTimestamp != nil || !v2beta1.SameCIDR(s.Spec.Subnet, pool.Spec.Subnet) {
			continue
		}
		if pool.Spec.Gateway == nil && s.Spec.Gateway != nil {
			gw := *s.Spec.Gateway
			pool.Spec.Gateway = &gw
		}
		if pool.Spec.Routes == nil && s.Spec.Routes != nil {
			pool.Spec.Routes = append([]v2beta1.Route(nil), s.Spec.Routes...)
		}
		return nil
	}
	return nil
}

// ValidateCreate implements admission.Validator.
func (w *IPPoolWebhook) ValidateCreate(ctx context.Context, pool *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	errs := v2beta1.ValidateSpiderIPPool(pool, w.EnableIPv4, w.EnableIPv6)
	if len(errs) == 0 {
		var err error
		if errs, err = w.validateAgainstCluster(ctx, pool); err != nil {
			return nil, err
		}
	}
	return nil, invalid(pool, errs)
}

// ValidateUpdate implements admission.Validator.
func (w *IPPoolWebhook) ValidateUpdate(ctx context.Context, oldPool, newPool *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	// Metadata-only updates (labels, the finalizer the controller removes once the pool is empty)
	// are not judged by rules the stored spec may predate: a pool must always be able to go away.
	if apiequality.Semantic.DeepEqual(oldPool.Spec, newPool.Spec) {
		return nil, nil
	}
	errs, err := w.validateUpdate(ctx, oldPool, newPool)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 || !ipblock.InBlocks(oldPool) {
		return nil, invalid(newPool, errs)
	}
	// A pool in block format: the check above read the blocks, but an agent whose cached pool
	// predates this update may allocate a removed address before the update is stored. The fences
	// stop that (blockstore.Fence), or find the record such an agent wrote meanwhile.
	if req, rerr := admission.RequestFromContext(ctx); rerr == nil && req.DryRun != nil && *req.DryRun {
		return nil, nil // no side effects on a dry run (sideEffects: NoneOnDryRun)
	}
	if w.BlockWriter == nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("IPPool %q is in block format and this webhook cannot write SpiderIPBlocks", oldPool.Name))
	}
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	err = blockstore.Fence(ctx, w.BlockReader, w.BlockWriter, oldPool, blockstore.Removed(oldPool, newPool), now())
	var held *blockstore.HeldError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &held):
		// Judge again from the records as they are now, for the usual message.
		if errs, err = w.validateUpdate(ctx, oldPool, newPool); err != nil {
			return nil, err
		} else if len(errs) > 0 {
			return nil, invalid(newPool, errs)
		}
		return nil, apierrors.NewConflict(v2beta1.SchemeGroupVersion.WithResource("spiderippools").GroupResource(), newPool.Name,
			fmt.Errorf("%s while the update was checked; retry", held))
	case errors.Is(err, blockstore.ErrTooManyBlocks):
		p := field.NewPath("spec", "excludeIPs")
		if !slices.Equal(oldPool.Spec.IPs, newPool.Spec.IPs) {
			p = field.NewPath("spec", "ips")
		}
		return nil, invalid(newPool, field.ErrorList{field.Forbidden(p, fmt.Sprintf(
			"%v; remove the addresses in several updates of at most %d addresses each", err, blockstore.MaxFenceBlocks<<blocks.DefaultBits))})
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("fence the addresses removed from IPPool %q: %w", oldPool.Name, err))
	}
}

// validateUpdate applies the update rules, judging a pool in block format against its blocks.
func (w *IPPoolWebhook) validateUpdate(ctx context.Context, oldPool, newPool *v2beta1.SpiderIPPool) (field.ErrorList, error) {
	if ipblock.InBlocks(oldPool) {
		// The records are in the blocks: judge the update against them, not the mirror.
		allocs, err := blockstore.Allocations(ctx, w.BlockReader, oldPool)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("read the records of IPPool %q: %w", oldPool.Name, err))
		}
		oldPool = oldPool.DeepCopy()
		if err := oldPool.Status.SetAllocations(allocs); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("IPPool %q: %w", oldPool.Name, err))
		}
	}
	errs := v2beta1.ValidateSpiderIPPoolUpdate(newPool, oldPool, w.EnableIPv4, w.EnableIPv6)
	if len(errs) > 0 {
		return errs, nil
	}
	return w.validateAgainstCluster(ctx, newPool)
}

// ValidateDelete implements admission.Validator. Deletion is never refused: the finalizer keeps a
// pool with allocations until the controller has released them.
func (w *IPPoolWebhook) ValidateDelete(context.Context, *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	return nil, nil
}

// validateAgainstCluster applies the rules that need the other pools and the SpiderSubnets.
func (w *IPPoolWebhook) validateAgainstCluster(ctx context.Context, pool *v2beta1.SpiderIPPool) (field.ErrorList, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := w.Reader.List(ctx, &pools); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list SpiderIPPools: %w", err))
	}
	errs := v2beta1.ValidateIPPoolOverlap(pool, pools.Items)
	var subnets v2beta1.SpiderSubnetList
	if err := w.Reader.List(ctx, &subnets); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list SpiderSubnets: %w", err))
	}
	for i := range subnets.Items {
		errs = append(errs, v2beta1.ValidatePoolInSubnet(pool, &subnets.Items[i])...)
	}
	return errs, nil
}

// invalid turns errs into the Invalid status kubectl prints as "spec.ips[0]: Invalid value: ...",
// or nil when there is nothing to report.
func invalid(obj client.Object, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" {
		// Decoded objects may come without TypeMeta; the kind is then recovered from the Go type.
		gvk = kindOf(obj)
	}
	return apierrors.NewInvalid(gvk.GroupKind(), obj.GetName(), errs)
}
