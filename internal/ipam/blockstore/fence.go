package blockstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
)

// Fences (docs/design/ipam-blocks.md, "Removing addresses from a pool"). An agent plans against
// its cached pool, which may predate a spec update that removes addresses; the webhook's check
// that no record holds them, made against the blocks, would otherwise race such an agent's
// allocation. Fence closes the race: it records the removed addresses in the block of each
// affected range by compare-and-swap, so that either the agent's write comes first and the fence
// finds the record (the update is refused), or the fence comes first and the agent's next write
// of that block sees it.

// MaxFenceBlocks bounds the blocks one spec update may fence: the webhook answers within its
// timeout. 256 blocks of 32 addresses are 8,192 addresses.
const MaxFenceBlocks = 256

// FenceTTL is how long after its writing a fence entry is kept once the controller's cached pool
// has reached its generation; past FenceMaxAge it goes whatever that generation (the update it
// announced was never stored).
const (
	FenceTTL    = time.Minute
	FenceMaxAge = 10 * time.Minute
)

// fenceWorkers is how many blocks Fence writes at once.
const fenceWorkers = 8

// fenceTries bounds the compare-and-swap attempts on one block.
const fenceTries = 10

// ErrTooManyBlocks is Fence's answer to an update removing addresses from more than MaxFenceBlocks
// blocks.
var ErrTooManyBlocks = errors.New("too many address blocks")

// HeldError is Fence's answer when a record holds an address being removed: an agent wrote it after
// the webhook's check.
type HeldError struct {
	Addr   netip.Addr
	Record ipblock.BlockRecord
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("IP %s is allocated to Pod %s (uid %s)", e.Addr, e.Record.Pod, e.Record.PodUID)
}

// Removed returns the addresses that the update of oldPool to newPool takes out of its usable set
// (spec.ips minus spec.excludeIPs); an empty set when the update removes nothing or either spec
// does not parse (validation reports that).
func Removed(oldPool, newPool *v2beta1.SpiderIPPool) ip.Set {
	before, err := oldPool.Spec.UsableIPs()
	if err != nil {
		return ip.Set{}
	}
	after, err := newPool.Spec.UsableIPs()
	if err != nil || after.Version() != before.Version() {
		return ip.Set{}
	}
	return before.Subtract(after)
}

// Fence writes, into the block of every range holding an address of removed, a fence entry for the
// pool's next generation (oldPool's plus one), creating a block of nobody for a range no node has
// claimed; r reads blocks live, w writes them. It returns ErrTooManyBlocks (wrapped) past
// MaxFenceBlocks, writing nothing, and a *HeldError when a block records one of the addresses.
// A fence written before an error stays: it only holds addresses back until the GC drops it.
func Fence(ctx context.Context, r client.Reader, w client.Writer, oldPool *v2beta1.SpiderIPPool, removed ip.Set, now time.Time) error {
	if removed.IsEmpty() {
		return nil
	}
	subnet, err := oldPool.Spec.SubnetPrefix()
	if err != nil {
		return fmt.Errorf("IPPool %q: spec.subnet: %w", oldPool.Name, err)
	}
	layout, err := blocks.NewLayout(subnet, blocks.DefaultBits)
	if err != nil {
		return fmt.Errorf("IPPool %q: %w", oldPool.Name, err)
	}
	var affected []netip.Prefix
	for b := range layout.Blocks(removed) {
		if len(affected) == MaxFenceBlocks {
			return fmt.Errorf("the update removes addresses from more than %d blocks of %d addresses: %w", MaxFenceBlocks, 1<<blocks.DefaultBits, ErrTooManyBlocks)
		}
		affected = append(affected, b)
	}
	gen := oldPool.Generation + 1
	errs := make([]error, len(affected))
	var g errgroup.Group
	g.SetLimit(fenceWorkers)
	for i, b := range affected {
		g.Go(func() error {
			errs[i] = fenceBlock(ctx, r, w, oldPool, b, blocks.Usable(b, removed), gen, now)
			return nil
		})
	}
	_ = g.Wait() // the errors are in errs, so that a HeldError can be told first
	var held *HeldError
	for _, err := range errs {
		if errors.As(err, &held) {
			return held // the answer the user needs, before any other
		}
	}
	return errors.Join(errs...)
}

// fenceBlock adds a fence entry of fenced (addresses of range b) for generation gen to the block of
// b, creating it for nobody when absent.
func fenceBlock(ctx context.Context, r client.Reader, w client.Writer, pool *v2beta1.SpiderIPPool, b netip.Prefix, fenced ip.Set, gen int64, now time.Time) error {
	name := blocks.Name(pool.Name, string(pool.UID), b)
	e := ipblock.BlockFence{PoolGeneration: gen, IPs: fenced.Strings(), Since: metav1.NewTime(now)}
	for range fenceTries {
		var blk ipblock.SpiderIPBlock
		err := r.Get(ctx, client.ObjectKey{Name: name}, &blk)
		if apierrors.IsNotFound(err) {
			created := newBlock(pool, b, "")
			created.Spec.Fences = []ipblock.BlockFence{e}
			err = w.Create(ctx, created)
			if apierrors.IsAlreadyExists(err) {
				continue // claimed meanwhile: fence the claimant's block
			}
			if err != nil {
				return fmt.Errorf("create SpiderIPBlock %q: %w", name, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read SpiderIPBlock %q: %w", name, err)
		}
		if blk.Spec.PoolUID != string(pool.UID) {
			return fmt.Errorf("SpiderIPBlock %q belongs to pool UID %s, not %s", name, blk.Spec.PoolUID, pool.UID)
		}
		for key, rec := range blk.Spec.Records {
			if a, err := ip.ParseAddr(key); err == nil && fenced.Contains(a) {
				return &HeldError{Addr: a, Record: rec}
			}
		}
		blk.Spec.Fences = append(blk.Spec.Fences, e)
		err = w.Update(ctx, &blk)
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			continue // written meanwhile (perhaps a record of one of the addresses), or returned
		default:
			return fmt.Errorf("fence SpiderIPBlock %q: %w", name, err)
		}
	}
	return fmt.Errorf("fence SpiderIPBlock %q: every one of %d compare-and-swap writes lost", name, fenceTries)
}

// fencedFor returns the addresses of b that a store planning against a pool at generation gen must
// not allocate: those of the entries of a later generation. An entry that does not parse fences
// the block's whole range.
func fencedFor(b *ipblock.SpiderIPBlock, prefix netip.Prefix, gen int64) []ip.Range {
	var out []ip.Range
	for _, f := range b.Spec.Fences {
		if f.PoolGeneration <= gen {
			continue
		}
		set, err := ip.ParseSet(f.IPs, ip.Version(prefix.Addr()))
		if err != nil {
			return []ip.Range{ip.PrefixRange(prefix)}
		}
		out = append(out, set.Ranges()...)
	}
	return out
}

// LiveFences returns b's fence entries still needed at now, for a pool whose cached generation
// is gen: those younger than FenceTTL, and those younger than FenceMaxAge of a generation the
// pool has not reached.
func LiveFences(b *ipblock.SpiderIPBlock, gen int64, now time.Time) []ipblock.BlockFence {
	var out []ipblock.BlockFence
	for _, f := range b.Spec.Fences {
		age := now.Sub(f.Since.Time)
		if age < FenceTTL || (f.PoolGeneration > gen && age < FenceMaxAge) {
			out = append(out, f)
		}
	}
	return out
}
