package blockstore

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
)

// Defaults of returning empty blocks (docs/design/ipam-blocks.md#release).
const (
	DefaultReturnAfter = 5 * time.Minute
	returnScan         = time.Minute
)

// ReturnEmptyBlocks deletes this node's blocks that have stayed empty for opts.ReturnAfter, until
// ctx is done, so that a node that once needed many blocks gives them back for other nodes to
// claim instead of borrow. Each delete carries the block's resourceVersion as a precondition: a
// borrower's record written meanwhile makes it fail, and the block stays.
func (s *Store) ReturnEmptyBlocks(ctx context.Context, log *slog.Logger) {
	if s.opts.AllBlocks || s.opts.ReturnAfter < 0 {
		return
	}
	t := time.NewTicker(returnScan)
	defer t.Stop()
	empty := map[string]emptySince{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n, err := s.returnEmpty(ctx, now, empty); err != nil {
				log.Warn("return empty SpiderIPBlocks", "error", err)
			} else if n > 0 {
				log.Info("returned empty SpiderIPBlocks", "count", n)
			}
		}
	}
}

// emptySince is when a block was first seen empty at one resourceVersion.
type emptySince struct {
	rv    string
	since time.Time
}

// returnEmpty is one scan of ReturnEmptyBlocks at now; empty carries what earlier scans saw. It
// returns the number of blocks deleted.
func (s *Store) returnEmpty(ctx context.Context, now time.Time, empty map[string]emptySince) (int, error) {
	var list ipblock.SpiderIPBlockList
	if err := s.blocks.List(ctx, &list); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	deleted := 0
	for i := range list.Items {
		b := &list.Items[i]
		// A fenced block stays until the controller's GC drops its fences: deleted, its range
		// could be claimed again without them.
		if b.Spec.Node != s.opts.NodeName || len(b.Spec.Records) > 0 || len(b.Spec.Fences) > 0 || b.DeletionTimestamp != nil {
			continue
		}
		seen[b.Name] = true
		e, ok := empty[b.Name]
		if !ok || e.rv != b.ResourceVersion {
			empty[b.Name] = emptySince{rv: b.ResourceVersion, since: now}
			continue
		}
		if now.Sub(e.since) < s.opts.ReturnAfter {
			continue
		}
		ok, err := s.returnBlock(ctx, b)
		if err != nil {
			return deleted, err
		}
		delete(empty, b.Name)
		if ok {
			deleted++
		}
	}
	for name := range empty {
		if !seen[name] {
			delete(empty, name)
		}
	}
	return deleted, nil
}

// returnBlock deletes block b, empty at its resourceVersion, while no round of its pool runs on
// this node (it takes the pool's committer role), and forgets it. It reports whether the block
// was deleted.
func (s *Store) returnBlock(ctx context.Context, b *ipblock.SpiderIPBlock) (bool, error) {
	q := s.queue(b.Spec.Pool)
	q.mu.Lock()
	if q.running {
		q.mu.Unlock()
		return false, nil // the pool is busy here: try at the next scan
	}
	q.running = true
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		start := len(q.pending) > 0
		if !start {
			q.running = false
		}
		q.mu.Unlock()
		if start {
			go s.drain(b.Spec.Pool, q)
		}
	}()
	if latest, ok := q.latest[b.Name]; ok && (len(latest.Spec.Records) > 0 || newer(latest, b)) {
		return false, nil // this node wrote it since the cache saw it empty
	}
	err := s.live.Delete(ctx, b, client.Preconditions{UID: ptr.To(b.UID), ResourceVersion: ptr.To(b.ResourceVersion)})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		delete(q.latest, b.Name)
		if prefix, perr := netip.ParsePrefix(b.Spec.CIDR); perr == nil {
			delete(q.claimed, prefix)
		}
		return err == nil, nil
	case apierrors.IsConflict(err):
		return false, nil // written meanwhile (a borrower): it stays
	default:
		return false, err
	}
}
