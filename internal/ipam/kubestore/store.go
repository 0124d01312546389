package kubestore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// Observer receives what the store does, for metrics. Implementations must be fast and safe for
// concurrent use.
type Observer interface {
	// ObserveCommit is called after every successful status write with the number of update
	// functions it carried and how long the write took.
	ObserveCommit(pool string, batchSize int, d time.Duration)
	// ObserveConflict is called for every write that lost a resourceVersion race.
	ObserveConflict(pool string)
}

// Options tunes a Store.
type Options struct {
	// NodeName seeds the per-node search offset.
	NodeName string
	// Unbatched turns group commit off: every UpdatePool call does its own live read and its own
	// write, which is what upstream does per IP. It exists as the benchmark's baseline.
	Unbatched bool
	// MaxBatch caps the update functions of one write; 0 means 256. The cap bounds the work redone
	// when a big batch loses a race.
	MaxBatch int
	// Observer may be nil.
	Observer Observer
}

// Store is an ipam.Store over the Kubernetes API. It is safe for concurrent use.
type Store struct {
	cache  client.Reader
	writer client.Client
	opts   Options
	seed   uint64

	mu     sync.Mutex
	queues map[string]*queue

	reservedMu  sync.Mutex
	reservedKey string
	reserved    map[int]ip.Set
}

var _ ipam.Store = (*Store)(nil)

// New returns a Store reading pools and reserved IPs through cache (an informer-backed reader) and
// writing pool status through writer, which must reach the API server directly.
func New(cache client.Reader, writer client.Client, opts Options) *Store {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	h := fnv.New64a()
	h.Write([]byte(opts.NodeName))
	return &Store{
		cache:  cache,
		writer: writer,
		opts:   opts,
		seed:   h.Sum64(),
		queues: map[string]*queue{},
	}
}

// SearchOffset is the position in a pool where this node starts looking for a free address; pass it
// as ipam.Config.SearchOffset. It depends on the node and the pool only, so one node keeps filling
// its own region of a pool while other nodes fill theirs.
func (s *Store) SearchOffset(pool string) uint64 {
	if s.opts.NodeName == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(pool))
	return h.Sum64() ^ s.seed
}

// Pools lists the cached pools ordered by name, which is the order the cluster-default rule and
// pattern expansion follow. The objects are the cache's own (no deep copy: a pool's status can be
// hundreds of kilobytes and every allocation lists every pool): callers must not modify them.
func (s *Store) Pools(ctx context.Context) ([]*v2beta1.SpiderIPPool, error) {
	var list v2beta1.SpiderIPPoolList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	out := make([]*v2beta1.SpiderIPPool, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	slices.SortFunc(out, func(a, b *v2beta1.SpiderIPPool) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Holders implements ipam.Store: a substring test on the cached pools' encoded records avoids
// decoding every pool on every request.
func (s *Store) Holders(ctx context.Context, podUID string) ([]string, error) {
	if podUID == "" {
		return nil, nil
	}
	pools, err := s.Pools(ctx)
	if err != nil {
		return nil, err
	}
	needle := `"podUid":"` + podUID + `"`
	var out []string
	for _, p := range pools {
		if p.Status.AllocatedIPs != nil && strings.Contains(*p.Status.AllocatedIPs, needle) {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// Reserved returns the union of every SpiderReservedIP of the family. The parsed sets are kept
// until a reserved-IP object changes, since every allocation asks for them.
func (s *Store) Reserved(ctx context.Context, version int) (ip.Set, error) {
	var list v2beta1.SpiderReservedIPList
	if err := s.cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return ip.Set{}, fmt.Errorf("list SpiderReservedIPs: %w", err)
	}
	var key strings.Builder
	for i := range list.Items {
		key.WriteString(string(list.Items[i].UID))
		key.WriteByte('@')
		key.WriteString(list.Items[i].ResourceVersion)
		key.WriteByte(',')
	}
	s.reservedMu.Lock()
	defer s.reservedMu.Unlock()
	if s.reservedKey != key.String() || s.reserved == nil {
		s.reserved = map[int]ip.Set{}
		s.reservedKey = key.String()
	}
	if set, ok := s.reserved[version]; ok {
		return set, nil
	}
	set, _ := ip.NewSet(version)
	for i := range list.Items {
		r := &list.Items[i]
		if r.Spec.IPVersion != nil && int(*r.Spec.IPVersion) != version {
			continue
		}
		entries, err := ip.ParseSet(r.Spec.IPs, 0)
		if err != nil {
			// The webhook rejects such objects; one that slipped in (webhook down) must not stop
			// every allocation, and cannot be honoured, so it is skipped.
			continue
		}
		if entries.IsEmpty() || entries.Version() != version {
			continue
		}
		if set, err = set.Union(entries); err != nil {
			return ip.Set{}, fmt.Errorf("SpiderReservedIP %q: %w", r.Name, err)
		}
	}
	s.reserved[version] = set
	return set, nil
}

// UpdatePool implements ipam.Store.
func (s *Store) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	if s.opts.Unbatched {
		return s.updateUnbatched(ctx, name, fn)
	}
	op := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	q := s.queue(name)
	q.mu.Lock()
	q.pending = append(q.pending, op)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go s.drain(name, q)
	}
	// The committer always answers: it checks each op's context itself, so a caller that gave up
	// still learns whether its change made it into a write that was already under way.
	return <-op.done
}

// op is one queued UpdatePool call.
type op struct {
	ctx  context.Context
	fn   func(*ipam.PoolState) error
	done chan error
}

// queue holds the pending calls of one pool and the newest copy of the pool this agent knows.
type queue struct {
	mu      sync.Mutex
	pending []*op
	running bool
	// latest is the pool as our last successful write (or live read) returned it. It is often newer
	// than the informer's copy, which lags our own writes.
	latest *v2beta1.SpiderIPPool
}

func (s *Store) queue(name string) *queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		q = &queue{}
		s.queues[name] = q
	}
	return q
}

// drain commits batches until the queue is empty. One drain runs per pool at a time; calls that
// arrive during a write form the next batch, so batches grow exactly when writes are the bottleneck.
func (s *Store) drain(name string, q *queue) {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		n := min(len(q.pending), s.opts.MaxBatch)
		batch := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		q.mu.Unlock()
		s.commit(name, q, batch)
	}
}

// commitWriteTimeout bounds one status write, independent of the callers' contexts: a write that
// has started must finish (or fail) so that its outcome can be reported truthfully.
const commitWriteTimeout = 30 * time.Second

// commit applies a batch to one snapshot and writes it, re-planning on conflicts until every op
// has an answer. A re-plan also takes in the calls queued meanwhile: under contention batches grow,
// so the agents that keep colliding need fewer writes in all.
func (s *Store) commit(name string, q *queue, batch []*op) {
	var lost string // resourceVersion of the last base that lost a race; "" = none
	// shrinkOnly: the last write was too large to store; only calls that add no records go in.
	shrinkOnly := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			batch = append(batch, q.take(s.opts.MaxBatch-len(batch))...)
		}
		live := batch[:0:0]
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.done <- giveUp(name, err)
				continue
			}
			live = append(live, o)
		}
		batch = live
		if len(batch) == 0 {
			return
		}
		pool, err := s.base(name, q, lost)
		if err == nil && ipblock.InBlocks(pool) {
			// Converted to blocks: writing its status now would put records where no agent
			// looks, and the controller's mirror would overwrite them.
			err = fmt.Errorf("IPPool %q: %w", name, ipam.ErrInBlocks)
		}
		if err != nil {
			for _, o := range batch {
				o.done <- err
			}
			return
		}
		state, err := ipam.NewPoolState(pool)
		if err != nil {
			for _, o := range batch {
				o.done <- err
			}
			return
		}
		results := make([]error, len(batch))
		for i, o := range batch {
			if shrinkOnly {
				results[i] = applyShrinkOnly(name, state, o.fn)
			} else {
				results[i] = state.Apply(o.fn)
			}
		}
		if !state.Changed() {
			for i, o := range batch {
				o.done <- results[i]
			}
			return
		}
		updated := pool.DeepCopy()
		if err := state.WriteStatus(&updated.Status); err != nil {
			for _, o := range batch {
				o.done <- fmt.Errorf("encode IPPool %q records: %w", name, err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitWriteTimeout)
		t0 := time.Now()
		err = s.writer.Status().Update(ctx, updated)
		cancel()
		switch {
		case err == nil:
			q.mu.Lock()
			q.latest = updated
			q.mu.Unlock()
			if s.opts.Observer != nil {
				s.opts.Observer.ObserveCommit(name, len(batch), time.Since(t0))
			}
			for i, o := range batch {
				o.done <- results[i]
			}
			return
		case apierrors.IsConflict(err):
			if s.opts.Observer != nil {
				s.opts.Observer.ObserveConflict(name)
			}
			lost = pool.ResourceVersion
			backoff(attempt)
		case apierrors.IsNotFound(err):
			for _, o := range batch {
				o.done <- fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
			}
			return
		case TooLarge(err) && !shrinkOnly:
			// The records outgrew what one object may hold (etcd's request limit). Releases must
			// not be held hostage by allocations: re-plan with the calls that do not add records,
			// and refuse the others with what to do.
			shrinkOnly = true
		default:
			if TooLarge(err) {
				err = fmt.Errorf("%w (IPPool %q holds more records than its status can store even without new ones: split its addresses over more IPPools)", err, name)
			}
			for _, o := range batch {
				o.done <- fmt.Errorf("update IPPool %q status: %w", name, err)
			}
			return
		}
	}
}

// TooLarge reports whether a write failed because the object is too big to store: the API
// server's own limit (413) or etcd's request limit, which reaches clients as an internal error.
func TooLarge(err error) bool {
	return apierrors.IsRequestEntityTooLargeError(err) || strings.Contains(err.Error(), "request is too large")
}

// errGrows marks a call that would add records to a pool that cannot take more.
var errGrows = errors.New("the IPPool's records have reached the size the API server can store")

// applyShrinkOnly applies fn unless it adds records to state; a call that does get ErrPoolExhausted
// with the pool's name and what to do.
func applyShrinkOnly(name string, state *ipam.PoolState, fn func(*ipam.PoolState) error) error {
	before := state.Len()
	err := state.Apply(func(st *ipam.PoolState) error {
		if err := fn(st); err != nil {
			return err
		}
		if st.Len() > before {
			return errGrows
		}
		return nil
	})
	if errors.Is(err, errGrows) {
		return fmt.Errorf("IPPool %q holds %d records, as many as its status can store: %w; "+
			"split its addresses over more IPPools (or let a SpiderSubnet create them) to allocate more", name, before, ipam.ErrPoolExhausted)
	}
	return err
}

// take removes up to n queued calls.
func (q *queue) take(n int) []*op {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.pending))
	if n <= 0 {
		return nil
	}
	out := slices.Clone(q.pending[:n])
	q.pending = slices.Delete(q.pending, 0, n)
	return out
}

// catchUpWait bounds how long a re-plan waits for the informer to deliver the write that beat us.
const catchUpWait = 200 * time.Millisecond

// base returns the pool to plan against, as a private copy: the newer of the cached copy and our
// last write. After a lost race (lost is the resourceVersion that lost) the winner's write is on
// its way to the informer: waiting a moment for it costs nothing, whereas a live read moves the
// whole pool (hundreds of kilobytes at scale) through the apiserver once more per conflict. Only
// if the cache does not move past lost in time is the pool read live.
func (s *Store) base(name string, q *queue, lost string) (*v2beta1.SpiderIPPool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitWriteTimeout)
	defer cancel()
	deadline := time.Now().Add(catchUpWait)
	for {
		var cached v2beta1.SpiderIPPool
		cacheErr := s.cache.Get(ctx, client.ObjectKey{Name: name}, &cached)
		q.mu.Lock()
		latest := q.latest
		q.mu.Unlock()
		var best *v2beta1.SpiderIPPool
		switch {
		case cacheErr != nil && latest == nil:
			if lost == "" {
				return nil, readError(name, cacheErr)
			}
		case cacheErr != nil:
			best = latest.DeepCopy()
		case latest != nil && newer(latest, &cached):
			best = latest.DeepCopy()
		default:
			best = &cached
		}
		if best != nil && (lost == "" || best.ResourceVersion != lost && !olderOrEqual(best.ResourceVersion, lost)) {
			return best, nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	var p v2beta1.SpiderIPPool
	if err := s.writer.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
		return nil, readError(name, err)
	}
	q.mu.Lock()
	q.latest = p.DeepCopy()
	q.mu.Unlock()
	return &p, nil
}

// olderOrEqual reports whether resourceVersion a is known to be at most b (see newer).
func olderOrEqual(a, b string) bool {
	ra, errA := strconv.ParseUint(a, 10, 64)
	rb, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && ra <= rb
}

// newer reports whether a's resourceVersion is greater than b's. Resource versions are opaque to
// clients; comparing them is only an optimisation here (choosing which copy to try first), so when
// they do not parse as the etcd revisions they are in practice, the cached copy is preferred and a
// wrong guess costs one conflict.
func newer(a, b *v2beta1.SpiderIPPool) bool {
	ra, errA := strconv.ParseUint(a.ResourceVersion, 10, 64)
	rb, errB := strconv.ParseUint(b.ResourceVersion, 10, 64)
	return errA == nil && errB == nil && ra > rb
}

func readError(name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
	}
	return fmt.Errorf("read IPPool %q: %w", name, err)
}

// giveUp is the error of a caller whose budget ran out before a write carrying its change
// succeeded (it kept losing races, or waited behind them).
func giveUp(name string, cause error) error {
	return fmt.Errorf("IPPool %q: no status write succeeded within the request's budget (%w): %w", name, cause, ipam.ErrConflict)
}

// backoff sleeps before re-planning after a lost race: exponential with full jitter, so that
// agents that collided spread out instead of colliding again in lock step. Calls queued during
// the sleep join the re-planned batch, so the wait buys fewer, fuller writes.
func backoff(attempt int) {
	ceiling := min(backoffBase<<min(attempt, 8), backoffMax)
	time.Sleep(rand.N(ceiling) + time.Millisecond)
}

const (
	backoffBase = 10 * time.Millisecond
	backoffMax  = 320 * time.Millisecond
)

// updateUnbatched is the baseline: a live read and a write per call, retried on conflict until ctx
// ends.
func (s *Store) updateUnbatched(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return giveUp(name, err)
		}
		var pool v2beta1.SpiderIPPool
		if err := s.writer.Get(ctx, client.ObjectKey{Name: name}, &pool); err != nil {
			return readError(name, err)
		}
		if ipblock.InBlocks(&pool) {
			return fmt.Errorf("IPPool %q: %w", name, ipam.ErrInBlocks)
		}
		state, err := ipam.NewPoolState(&pool)
		if err != nil {
			return err
		}
		if err := fn(state); err != nil {
			return err
		}
		if !state.Changed() {
			return nil
		}
		updated := pool.DeepCopy()
		if err := state.WriteStatus(&updated.Status); err != nil {
			return fmt.Errorf("encode IPPool %q records: %w", name, err)
		}
		t0 := time.Now()
		err = s.writer.Status().Update(ctx, updated)
		switch {
		case err == nil:
			if s.opts.Observer != nil {
				s.opts.Observer.ObserveCommit(name, 1, time.Since(t0))
			}
			return nil
		case apierrors.IsConflict(err):
			if s.opts.Observer != nil {
				s.opts.Observer.ObserveConflict(name)
			}
			backoff(attempt)
		case apierrors.IsNotFound(err):
			return fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return giveUp(name, err)
		default:
			return fmt.Errorf("update IPPool %q status: %w", name, err)
		}
	}
}
