package ipam

import (
	"context"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Store is the storage the core needs. It is implemented over the Kubernetes
// API in internal/ipam/kubestore (resourceVersion compare-and-swap, group
// commit of concurrent updates of one pool, bounded retries) and in memory in
// internal/ipam/ipamtest. The core never changes a pool except through
// UpdatePool. Implementations must be safe for concurrent use: the two
// families of a dual-stack request are allocated in parallel.
type Store interface {
	// Pools returns a cached view of every pool. The order is the store
	// order that the cluster-default rule and pattern expansion follow.
	// Callers must not modify the pools.
	Pools(ctx context.Context) ([]*v2beta1.SpiderIPPool, error)

	// Reserved returns the union of the SpiderReservedIP addresses of
	// family version (4 or 6).
	Reserved(ctx context.Context, version int) (ip.Set, error)

	// Holders returns the names of the pools whose records, per the store's cache, may include
	// one of podUID, in Pools order. A false positive costs an update that changes nothing; a
	// miss (cache lag) only loses an ordering hint, so callers must not rely on it for
	// correctness.
	Holders(ctx context.Context, podUID string) ([]string, error)

	// UpdatePool decodes a fresh read of the named pool (NewPoolState),
	// calls fn on it and, when fn succeeds and the state Changed, persists
	// the records (WriteStatus) with compare-and-swap on the version read.
	// On a write conflict it re-reads and calls fn again, so fn must be a
	// pure function of the state it is given (it may record its outcome in
	// variables it captures; the last call wins). fn's error is returned
	// unchanged and nothing is written; a Store batching several functions
	// into one write runs each through PoolState.Apply. A pool that does not
	// exist gives an error wrapping ErrPoolNotFound, and giving up after
	// repeated conflicts one wrapping ErrConflict.
	UpdatePool(ctx context.Context, name string, fn func(*PoolState) error) error
}
