package controller

import (
	"context"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

// returnOrphanBlocks deletes the empty SpiderIPBlocks that no agent will ever return: those of a
// node whose Node object is gone, and those of no node (written by the conversion, by this GC for a
// record outside any agent's blocks, or by the webhook to fence an unclaimed range). On the way it
// drops the fence entries no longer needed (dropFences); a block that keeps one is never deleted,
// whatever it holds. An agent returns its own empty blocks itself
// (blockstore.ReturnEmptyBlocks); without this, a departed node's blocks would keep their ranges
// claimed forever, and other nodes could only borrow from them. Records in such blocks are
// released by the scan like any other (their pods are gone with the node); the block goes at a
// later scan, once empty.
//
// Candidates come from the cache; the node's absence is confirmed against the API server, and
// each delete carries the block's UID and resourceVersion as preconditions, so a record written
// meanwhile (a borrower, a node that registered again) makes it fail and the block stays.
func (r *GCReconciler) returnOrphanBlocks(ctx context.Context) error {
	var list ipblock.SpiderIPBlockList
	if err := r.client.List(ctx, &list); err != nil {
		return fmt.Errorf("list SpiderIPBlocks: %w", err)
	}
	gone := map[string]bool{} // node name → its Node is absent, read once per scan
	for i := range list.Items {
		b := &list.Items[i]
		if b.DeletionTimestamp != nil {
			continue
		}
		if len(b.Spec.Fences) > 0 {
			fenced, err := r.dropFences(ctx, b)
			if err != nil {
				return err
			}
			if fenced {
				continue // a fenced block stays: deleted, its range could be claimed without them
			}
		}
		if len(b.Spec.Records) > 0 {
			continue
		}
		if node := b.Spec.Node; node != "" {
			absent, seen := gone[node]
			if !seen {
				err := r.reader.Get(ctx, client.ObjectKey{Name: node}, &corev1.Node{})
				switch {
				case err == nil:
				case apierrors.IsNotFound(err):
					absent = true
				default:
					return fmt.Errorf("read Node %q of SpiderIPBlock %q: %w", node, b.Name, err)
				}
				gone[node] = absent
			}
			if !absent {
				continue
			}
		}
		err := r.client.Delete(ctx, b, client.Preconditions{UID: ptr.To(b.UID), ResourceVersion: ptr.To(b.ResourceVersion)})
		switch {
		case err == nil:
			crlog.FromContext(ctx).Info("returned empty SpiderIPBlock of no running node", "block", b.Name, "pool", b.Spec.Pool, "node", b.Spec.Node, "cidr", b.Spec.CIDR)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// gone already, or written since the cache saw it empty: it stays for now
		default:
			return fmt.Errorf("delete SpiderIPBlock %q: %w", b.Name, err)
		}
	}
	return nil
}

// dropFences removes the fence entries of b that are no longer needed (blockstore.LiveFences: the
// pool's cached generation, this controller's clock), by compare-and-swap, and reports whether b
// still has fences. b is updated in place when written. A lost write leaves the entries for the
// next scan.
func (r *GCReconciler) dropFences(ctx context.Context, b *ipblock.SpiderIPBlock) (bool, error) {
	gen := int64(math.MaxInt64) // a pool that is gone has no agent allocating from it
	var pool v2beta1.SpiderIPPool
	switch err := r.client.Get(ctx, client.ObjectKey{Name: b.Spec.Pool}, &pool); {
	case err == nil && string(pool.UID) == b.Spec.PoolUID:
		gen = pool.Generation
	case err != nil && !apierrors.IsNotFound(err):
		return true, fmt.Errorf("read IPPool %q of SpiderIPBlock %q: %w", b.Spec.Pool, b.Name, err)
	}
	live := blockstore.LiveFences(b, gen, r.now())
	if len(live) == len(b.Spec.Fences) {
		return true, nil
	}
	updated := b.DeepCopy()
	updated.Spec.Fences = live
	err := r.client.Update(ctx, updated)
	switch {
	case err == nil:
		*b = *updated
		return len(live) > 0, nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return true, nil
	default:
		return true, fmt.Errorf("drop fences of SpiderIPBlock %q: %w", b.Name, err)
	}
}
