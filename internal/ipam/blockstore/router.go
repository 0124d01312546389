package blockstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
)

// Router is the ipam.Store of a cluster where pools of both formats exist (during and after the
// migration to blocks): each pool's updates go to the store of its format, the block store for a
// pool annotated ipblock.AnnoIPAMFormat=blocks and kubestore otherwise. kubestore refuses a pool
// converted under it (ipam.ErrInBlocks), and the Router then sends the update to the blocks.
type Router struct {
	blocks *Store           // nil when the SpiderIPBlock kind is not served
	status *kubestore.Store // pools in status format
}

var _ ipam.Store = (*Router)(nil)

// NewRouter returns a Router over the two stores. blocks may be nil when the cluster does not
// serve SpiderIPBlocks (a CRD not installed yet): pools in block format then fail with an error
// saying so.
func NewRouter(blocks *Store, status *kubestore.Store) *Router {
	return &Router{blocks: blocks, status: status}
}

// Pools implements ipam.Store.
func (r *Router) Pools(ctx context.Context) ([]*v2beta1.SpiderIPPool, error) {
	return r.status.Pools(ctx)
}

// Reserved implements ipam.Store.
func (r *Router) Reserved(ctx context.Context, version int) (ip.Set, error) {
	return r.status.Reserved(ctx, version)
}

// Holders implements ipam.Store: both formats' holders, in Pools order.
func (r *Router) Holders(ctx context.Context, podUID string) ([]string, error) {
	names, err := r.status.Holders(ctx, podUID)
	if err != nil || r.blocks == nil {
		return names, err
	}
	more, err := r.blocks.Holders(ctx, podUID)
	if err != nil {
		return nil, err
	}
	if len(more) == 0 {
		return names, nil
	}
	pools, err := r.Pools(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pools {
		if slices.Contains(names, p.Name) || slices.Contains(more, p.Name) {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// SearchOffset is the offset of the pool's store (see Store.SearchOffset and kubestore's).
func (r *Router) SearchOffset(pool string) uint64 {
	if r.blocks != nil {
		var p v2beta1.SpiderIPPool
		if err := r.blocks.pools.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err == nil && ipblock.InBlocks(&p) {
			return r.blocks.SearchOffset(pool)
		}
	}
	return r.status.SearchOffset(pool)
}

// maxFormatSwitches bounds how often one update follows a pool from one format to the other; a
// pool converts once, so more means a cache that keeps lagging.
const maxFormatSwitches = 3

// UpdatePool implements ipam.Store.
func (r *Router) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	live := false
	for range maxFormatSwitches {
		inBlocks, err := r.inBlocks(ctx, name, live)
		if err != nil {
			return err
		}
		if inBlocks {
			return r.blocks.UpdatePool(ctx, name, fn)
		}
		err = r.status.UpdatePool(ctx, name, fn)
		if !errors.Is(err, ipam.ErrInBlocks) {
			return err
		}
		if r.blocks == nil {
			return fmt.Errorf("IPPool %q keeps its records in SpiderIPBlocks, a kind this cluster does not serve: install the chart's CRDs: %w", name, err)
		}
		live = true // the cache has not seen the conversion yet
	}
	return fmt.Errorf("IPPool %q: its format kept changing under the update: %w", name, ipam.ErrConflict)
}

// inBlocks reads the pool's format from the cache, or live after the cache lagged.
func (r *Router) inBlocks(ctx context.Context, name string, live bool) (bool, error) {
	if r.blocks == nil {
		return false, nil
	}
	var p v2beta1.SpiderIPPool
	var err error
	if live {
		err = r.blocks.live.Get(ctx, client.ObjectKey{Name: name}, &p)
	} else {
		var pp *v2beta1.SpiderIPPool
		if pp, err = r.blocks.pool(ctx, name); err == nil {
			p = *pp
		}
	}
	if err != nil {
		if errors.Is(err, ipam.ErrPoolNotFound) {
			return false, nil // kubestore reports it in its own words
		}
		return false, client.IgnoreNotFound(err)
	}
	return ipblock.InBlocks(&p), nil
}

// Records returns every record of pool's blocks read through reader (which must hold all of the
// pool's blocks: the controller's informer, or a live client), keyed by address. A record outside
// its block's range, or an address recorded in two blocks, is an error naming it.
func Records(ctx context.Context, reader client.Reader, pool *v2beta1.SpiderIPPool) (map[netip.Addr]ipblock.BlockRecord, error) {
	var list ipblock.SpiderIPBlockList
	if err := reader.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: labelValue(pool.Name)}); err != nil {
		return nil, fmt.Errorf("list SpiderIPBlocks of IPPool %q: %w", pool.Name, err)
	}
	out := map[netip.Addr]ipblock.BlockRecord{}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Spec.PoolUID != string(pool.UID) {
			continue
		}
		prefix, err := netip.ParsePrefix(b.Spec.CIDR)
		if err != nil {
			return nil, fmt.Errorf("SpiderIPBlock %q: spec.cidr: %w", b.Name, err)
		}
		for key, rec := range b.Spec.Records {
			a, err := ip.ParseAddr(key)
			if err != nil || !prefix.Contains(a) {
				return nil, fmt.Errorf("SpiderIPBlock %q: spec.records: %q is not an address of %s", b.Name, key, prefix)
			}
			if _, dup := out[a]; dup {
				return nil, fmt.Errorf("IPPool %q: %s is recorded in two blocks", pool.Name, a)
			}
			out[a] = rec
		}
	}
	return out, nil
}
