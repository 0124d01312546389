package ipamtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// DefaultMaxRetries is how many conflicting writes Store.UpdatePool retries.
// It is high because tests drive many goroutines at one pool with injected
// conflicts and expect every request to get through.
const DefaultMaxRetries = 10000

// Store is an in-memory ipam.Store. Every pool carries a version that each
// write bumps, and writes are compare-and-swap on it, as the Kubernetes
// store's resourceVersion is; a conflict rate can be injected to exercise the
// retry path. It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	order     []string
	pools     map[string]*entry
	reserved  []*v2beta1.SpiderReservedIP
	rng       *rand.Rand
	rate      float64
	retries   int
	writes    int
	conflicts int
}

type entry struct {
	pool    *v2beta1.SpiderIPPool
	version uint64
}

var _ ipam.Store = (*Store)(nil)

// NewStore returns a store holding copies of pools, in that order.
func NewStore(pools ...*v2beta1.SpiderIPPool) *Store {
	s := &Store{
		pools:   make(map[string]*entry),
		rng:     rand.New(rand.NewPCG(1, 2)),
		retries: DefaultMaxRetries,
	}
	for _, p := range pools {
		s.Put(p)
	}
	return s
}

// SetConflictRate makes each write fail with a conflict with probability
// rate (0 to 1), drawn from a generator seeded with seed.
func (s *Store) SetConflictRate(rate float64, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = rate
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetMaxRetries bounds the retries of one UpdatePool call.
func (s *Store) SetMaxRetries(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries = n
}

// Put adds a copy of p, or replaces the pool of that name (keeping its
// place in the store order), bumping its version as an update from another
// writer would.
func (s *Store) Put(p *v2beta1.SpiderIPPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pools[p.Name]
	if !ok {
		e = &entry{}
		s.pools[p.Name] = e
		s.order = append(s.order, p.Name)
	}
	e.version++
	e.pool = p.DeepCopy()
	e.pool.ResourceVersion = strconv.FormatUint(e.version, 10)
}

// Delete removes the pool name.
func (s *Store) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pools[name]; !ok {
		return
	}
	delete(s.pools, name)
	for i, n := range s.order {
		if n == name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// PutReserved adds a copy of r.
func (s *Store) PutReserved(r *v2beta1.SpiderReservedIP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved = append(s.reserved, r.DeepCopy())
}

// Pool returns a copy of the pool name, or nil.
func (s *Store) Pool(name string) *v2beta1.SpiderIPPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pools[name]
	if !ok {
		return nil
	}
	return e.pool.DeepCopy()
}

// Stats returns the number of successful writes and of conflicts so far.
func (s *Store) Stats() (writes, conflicts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.conflicts
}

// Pools returns copies of every pool in store order.
func (s *Store) Pools(ctx context.Context) ([]*v2beta1.SpiderIPPool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*v2beta1.SpiderIPPool, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.pools[n].pool.DeepCopy())
	}
	return out, nil
}

// Holders implements ipam.Store exactly: the pools with a record of podUID.
func (s *Store) Holders(ctx context.Context, podUID string) ([]string, error) {
	pools, err := s.Pools(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pools {
		allocs, err := p.Status.Allocations()
		if err != nil {
			return nil, fmt.Errorf("IPPool %q: %w", p.Name, err)
		}
		for _, a := range allocs {
			if a.PodUID == podUID {
				out = append(out, p.Name)
				break
			}
		}
	}
	return out, nil
}

// Reserved returns the union of the reserved IPs of family version. An entry
// without ipVersion takes the family of its first address, as the webhook
// would have set it.
func (s *Store) Reserved(ctx context.Context, version int) (ip.Set, error) {
	if err := ctx.Err(); err != nil {
		return ip.Set{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all ip.Set
	for _, r := range s.reserved {
		set, err := ip.ParseSet(r.Spec.IPs, 0)
		if err != nil {
			return ip.Set{}, fmt.Errorf("SpiderReservedIP %q: %w", r.Name, err)
		}
		v := set.Version()
		if r.Spec.IPVersion != nil {
			v = int(*r.Spec.IPVersion)
		}
		if v != version {
			continue
		}
		if all, err = all.Union(set); err != nil {
			return ip.Set{}, fmt.Errorf("SpiderReservedIP %q: %w", r.Name, err)
		}
	}
	return all, nil
}

// UpdatePool implements ipam.Store.
func (s *Store) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		e, ok := s.pools[name]
		if !ok {
			s.mu.Unlock()
			return fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
		}
		pool, version, retries := e.pool.DeepCopy(), e.version, s.retries
		s.mu.Unlock()

		st, err := ipam.NewPoolState(pool)
		if err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		if !st.Changed() {
			return nil
		}
		if err := st.WriteStatus(&pool.Status); err != nil {
			return err
		}

		s.mu.Lock()
		cur, ok := s.pools[name]
		switch {
		case !ok:
			s.mu.Unlock()
			return fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
		case cur.version != version || (s.rate > 0 && s.rng.Float64() < s.rate):
			s.conflicts++
			s.mu.Unlock()
			if attempt >= retries {
				return fmt.Errorf("update IPPool %q: %w", name, ipam.ErrConflict)
			}
			continue
		}
		cur.version++
		pool.ResourceVersion = strconv.FormatUint(cur.version, 10)
		cur.pool = pool
		s.writes++
		s.mu.Unlock()
		return nil
	}
}
