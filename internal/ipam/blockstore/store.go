package blockstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
)

// Options tunes a Store.
type Options struct {
	// NodeName is the node whose blocks the store allocates from. Required unless AllBlocks.
	NodeName string
	// AllBlocks makes the store no node's: the reader given to New holds every block (the
	// controller's informer), views are complete, any usable address may be recorded, and a
	// record in a range nobody claimed creates a block of nobody. For the controller's GC and
	// PUT /v1/ipam/ip.
	AllBlocks bool
	// Bits is the block size as a power of two; 0 means blocks.DefaultBits.
	Bits int
	// MaxBatch caps the update functions of one round; 0 means 256.
	MaxBatch int
	// Observer may be nil. A commit is one round's block writes; a conflict is one lost block write.
	Observer kubestore.Observer
	// ReturnAfter is how long an own block must stay empty before ReturnEmptyBlocks deletes it;
	// 0 means DefaultReturnAfter, negative never.
	ReturnAfter time.Duration
}

// Store is an ipam.Store over SpiderIPBlocks. It is safe for concurrent use.
type Store struct {
	*kubestore.Store // Pools and Reserved

	pools  client.Reader // SpiderIPPools (informer)
	blocks client.Reader // this node's blocks: its own and those holding its pods' records (informer)
	live   client.Client
	opts   Options

	mu     sync.Mutex
	queues map[string]*queue
}

var _ ipam.Store = (*Store)(nil)

// New returns a Store reading pools and reserved IPs through cache, the node's blocks through
// nodeBlocks (an informer selecting the blocks labelled ipblock.HolderLabel(opts.NodeName)), and
// reading and writing blocks live through live.
func New(cache, nodeBlocks client.Reader, live client.Client, opts Options) (*Store, error) {
	if opts.NodeName == "" && !opts.AllBlocks {
		return nil, errors.New("block store: empty node name")
	}
	if opts.Bits == 0 {
		opts.Bits = blocks.DefaultBits
	}
	if opts.Bits < blocks.MinBits || opts.Bits > blocks.MaxBits {
		return nil, fmt.Errorf("block store: block size 2^%d: must be 2^%d to 2^%d addresses", opts.Bits, blocks.MinBits, blocks.MaxBits)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.ReturnAfter == 0 {
		opts.ReturnAfter = DefaultReturnAfter
	}
	return &Store{
		Store:  kubestore.New(cache, live, kubestore.Options{NodeName: opts.NodeName}),
		pools:  cache,
		blocks: nodeBlocks,
		live:   live,
		opts:   opts,
		queues: map[string]*queue{},
	}, nil
}

// SearchOffset is 0 for every pool: a node's own blocks fill in address order, so that the blocks
// it fills first are full and the last ones can be returned when they empty. Nodes are spread over
// a pool by the blocks they claim, not by where they search.
func (s *Store) SearchOffset(string) uint64 { return 0 }

// Holders implements ipam.Store from the node's cached blocks, which hold every record of the
// node's pods: its own blocks and the blocks labelled with its holder label.
func (s *Store) Holders(ctx context.Context, podUID string) ([]string, error) {
	if podUID == "" {
		return nil, nil
	}
	var list ipblock.SpiderIPBlockList
	if err := s.blocks.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list cached SpiderIPBlocks: %w", err)
	}
	seen := map[string]bool{}
	for i := range list.Items {
		b := &list.Items[i]
		if seen[b.Spec.Pool] {
			continue
		}
		for _, r := range b.Spec.Records {
			if r.PodUID == podUID {
				seen[b.Spec.Pool] = true
				break
			}
		}
	}
	pools, err := s.Pools(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pools {
		if seen[p.Name] {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// UpdatePool implements ipam.Store.
func (s *Store) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	q := s.queue(name)
	q.mu.Lock()
	q.pending = append(q.pending, o)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go s.drain(name, q)
	}
	return <-o.done
}

type op struct {
	ctx  context.Context
	fn   func(*ipam.PoolState) error
	done chan error
}

// queue holds one pool's pending calls and what this store knows of the pool's blocks.
type queue struct {
	mu      sync.Mutex
	pending []*op
	running bool

	// Only the committer (one goroutine per pool at a time) touches the fields below.

	// poolUID is the pool incarnation the fields below are about.
	poolUID string
	// latest holds this node's own blocks as its last write or live read returned them: often
	// newer than the informer's copy, which lags the node's own writes.
	latest map[string]*ipblock.SpiderIPBlock
	// claimed holds the ranges known to be claimed by some node.
	claimed map[netip.Prefix]bool
	// foreign holds other nodes' blocks this node wrote lately (borrowed, transferred to it), as
	// its write returned them: until the informer has them, they are the only copy that shows
	// the node's records there.
	foreign map[string]foreignCopy
}

// foreignCopy is another node's block as this node last wrote it.
type foreignCopy struct {
	block   *ipblock.SpiderIPBlock
	written time.Time
}

// foreignKeep bounds how long a written foreign block is kept beside the informer's copy.
const foreignKeep = 30 * time.Second

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

func (s *Store) drain(name string, q *queue) {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		s.commit(name, q, q.take(s.opts.MaxBatch))
	}
}

// ioTimeout bounds one API call of a round, independent of the callers' contexts: a write that
// has started must finish (or fail) so that its outcome can be reported truthfully.
const ioTimeout = 30 * time.Second

// round is what one commit has loaded beyond the node's informer, kept across its re-plans.
type round struct {
	fetched  map[string]*ipblock.SpiderIPBlock // blocks read live by name (misses, lost races)
	absent   map[netip.Prefix]bool             // ranges looked up live that have no block
	all      bool                              // every block of the pool was listed live
	borrowed map[string]bool                   // other nodes' blocks the round allocates from
}

// commit applies a batch to a view of the pool and writes the blocks it changed, re-planning until
// every call has an answer: after a miss (load the block and run again), a full view (claim or
// borrow a block and run again) or a lost block write (re-read it and run the calls that touched
// it again, with the calls queued meanwhile).
func (s *Store) commit(name string, q *queue, batch []*op) {
	r := &round{fetched: map[string]*ipblock.SpiderIPBlock{}, absent: map[netip.Prefix]bool{}, borrowed: map[string]bool{}}
	conflicts := 0
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
		if batch = live; len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		next, lost, err := s.round(ctx, name, q, r, batch)
		cancel()
		if err != nil {
			for _, o := range batch {
				o.done <- err
			}
			return
		}
		if batch = next; len(batch) == 0 {
			return
		}
		if lost {
			conflicts++
			backoff(conflicts)
		}
	}
}

// backoff sleeps before re-planning after a lost block write: exponential with full jitter, so
// that writers that collided (borrowers of one block) spread out instead of colliding again.
func backoff(n int) {
	ceiling := min(backoffBase<<min(n, 8), backoffMax)
	time.Sleep(rand.N(ceiling) + time.Millisecond)
}

const (
	backoffBase = 5 * time.Millisecond
	backoffMax  = 320 * time.Millisecond
)

// round plans and writes one attempt; it returns the calls to run again and whether a block write
// lost a race.
func (s *Store) round(ctx context.Context, name string, q *queue, r *round, batch []*op) (again []*op, lost bool, err error) {
	pool, err := s.pool(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if q.poolUID != string(pool.UID) {
		q.poolUID, q.latest, q.claimed, q.foreign = string(pool.UID), map[string]*ipblock.SpiderIPBlock{}, map[netip.Prefix]bool{}, map[string]foreignCopy{}
	}
	subnet, err := pool.Spec.SubnetPrefix()
	if err != nil {
		return nil, false, fmt.Errorf("IPPool %q: spec.subnet: %w", name, err)
	}
	layout, err := blocks.NewLayout(subnet, s.opts.Bits)
	if err != nil {
		return nil, false, fmt.Errorf("IPPool %q: %w", name, err)
	}
	v, err := s.view(ctx, pool, layout, q, r)
	if err != nil {
		return nil, false, err
	}
	state, err := ipam.NewPoolView(pool, v.View)
	if err != nil {
		return nil, false, err
	}
	results := make([]error, len(batch))
	touched := make([][]netip.Addr, len(batch))
	for i, o := range batch {
		mark := state.Mark()
		results[i] = state.Apply(o.fn)
		touched[i] = state.TouchedSince(mark)
	}
	if w := state.Wants(); len(w.Addrs) > 0 || len(w.Owners) > 0 {
		if err := s.load(ctx, pool, layout, r, w); err != nil {
			return nil, false, err
		}
		return batch, false, nil
	} else if w.Space {
		grown, err := s.grow(ctx, pool, layout, q, r)
		if err != nil {
			return nil, false, err
		}
		if grown {
			return batch, false, nil
		}
		// The pool has no free address anywhere: the calls that wanted one keep ErrPoolExhausted.
	}
	if !state.Changed() {
		for i, o := range batch {
			o.done <- results[i]
		}
		return nil, false, nil
	}

	// Write every block whose records changed (only blocks holding a touched address can have);
	// a call is answered once every block it touched is.
	changed := map[netip.Prefix]bool{}
	for _, ts := range touched {
		for _, a := range ts {
			if prefix, ok := layout.BlockOf(a); ok {
				changed[prefix] = true
			}
		}
	}
	failed := map[string]bool{}
	written := 0
	t0 := time.Now()
	for prefix := range changed {
		bname := blocks.Name(pool.Name, string(pool.UID), prefix)
		records := recordsIn(state, prefix)
		blk, exists := v.blocks[bname]
		if !exists {
			// A record in a range with no block (AllBlocks only: an agent allocates inside its
			// blocks) gets a block of nobody, created with it.
			if len(records) == 0 {
				continue
			}
			created, _ := s.rewrite(newBlock(pool, prefix, ""), records)
			err := s.live.Create(ctx, created)
			switch {
			case err == nil:
				written++
				q.claimed[prefix] = true
			case apierrors.IsAlreadyExists(err):
				failed[bname] = true
				r.fetched[bname] = nil
			default:
				return nil, false, fmt.Errorf("create SpiderIPBlock %q: %w", bname, err)
			}
			continue
		}
		updated, differs := s.rewrite(blk, records)
		if !differs {
			continue
		}
		err := s.live.Update(ctx, updated)
		switch {
		case err == nil:
			written++
			if updated.Spec.Node == s.opts.NodeName {
				q.latest[bname] = updated
			} else if !s.opts.AllBlocks {
				q.foreign[bname] = foreignCopy{block: updated, written: time.Now()}
			}
			if _, ok := r.fetched[bname]; ok {
				r.fetched[bname] = updated
			}
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			if s.opts.Observer != nil {
				s.opts.Observer.ObserveConflict(name)
			}
			failed[bname] = true
			delete(q.latest, bname)
			delete(q.foreign, bname)
			// Read it live for the re-plan: the winner's write may not have reached the informer.
			r.fetched[bname] = nil
		default:
			return nil, false, fmt.Errorf("update SpiderIPBlock %q: %w", bname, err)
		}
	}
	if written > 0 && s.opts.Observer != nil {
		s.opts.Observer.ObserveCommit(name, len(batch), time.Since(t0))
	}
	for i, o := range batch {
		if slices.ContainsFunc(touched[i], func(a netip.Addr) bool {
			b, ok := layout.BlockOf(a)
			return ok && failed[blocks.Name(pool.Name, string(pool.UID), b)]
		}) {
			again = append(again, o)
			continue
		}
		o.done <- results[i]
	}
	return again, len(failed) > 0, nil
}

// pool reads the pool from the cache, or live when the cache does not have it (yet).
func (s *Store) pool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	var p v2beta1.SpiderIPPool
	err := s.pools.Get(ctx, client.ObjectKey{Name: name}, &p)
	if apierrors.IsNotFound(err) {
		err = s.live.Get(ctx, client.ObjectKey{Name: name}, &p)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("IPPool %q: %w", name, ipam.ErrPoolNotFound)
	case err != nil:
		return nil, fmt.Errorf("read IPPool %q: %w", name, err)
	}
	return &p, nil
}

// poolView is a view and the blocks it was built from, by name.
type poolView struct {
	ipam.View
	blocks map[string]*ipblock.SpiderIPBlock
}

// view gathers the blocks the round plans against: the node's blocks of the pool from the
// informer (its own ones replaced by newer copies it wrote), and what the round loaded live.
func (s *Store) view(ctx context.Context, pool *v2beta1.SpiderIPPool, layout blocks.Layout, q *queue, r *round) (*poolView, error) {
	got := map[string]*ipblock.SpiderIPBlock{}
	if !r.all {
		var list ipblock.SpiderIPBlockList
		if err := s.blocks.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: pool.Name}); err != nil {
			return nil, fmt.Errorf("list cached SpiderIPBlocks of IPPool %q: %w", pool.Name, err)
		}
		for i := range list.Items {
			b := &list.Items[i]
			if b.Spec.PoolUID == string(pool.UID) {
				got[b.Name] = b
			}
		}
		for n, b := range q.latest {
			if c, ok := got[n]; !ok || newer(b, c) {
				got[n] = b
			}
		}
		for n, f := range q.foreign {
			c, ok := got[n]
			switch {
			case ok && !newer(f.block, c), time.Since(f.written) > foreignKeep:
				delete(q.foreign, n) // the informer caught up, or the block left its selection
			case len(f.block.Spec.Records) > 0:
				got[n] = f.block
			}
		}
	}
	for n, b := range r.fetched {
		if b == nil {
			var fresh ipblock.SpiderIPBlock
			err := s.live.Get(ctx, client.ObjectKey{Name: n}, &fresh)
			switch {
			case apierrors.IsNotFound(err):
				delete(r.fetched, n)
				delete(got, n)
				continue
			case err != nil:
				return nil, fmt.Errorf("read SpiderIPBlock %q: %w", n, err)
			}
			b = &fresh
			r.fetched[n] = b
			if b.Spec.Node == s.opts.NodeName {
				q.latest[n] = b
			}
		}
		got[n] = b
	}
	v := &poolView{View: ipam.View{
		Complete: r.all || s.opts.AllBlocks,
		// An agent serves its node's pods only, and every record of those is in its view
		// (holder labels, and foreign for its own lagging writes).
		OwnersComplete: !s.opts.AllBlocks,
		Records:        map[netip.Addr]ipam.Owner{},
	}, blocks: got}
	var alloc, fenced []ip.Range
	for n, b := range got {
		prefix, err := netip.ParsePrefix(b.Spec.CIDR)
		if err != nil || b.Name != blocks.Name(pool.Name, string(pool.UID), prefix) {
			// Not a block this code wrote; leaving it out of the view keeps its range unallocatable
			// (nothing is ever allocated outside the node's own, well-formed blocks).
			delete(got, n)
			continue
		}
		q.claimed[prefix] = true
		v.Loaded = append(v.Loaded, prefix)
		for key, rec := range b.Spec.Records {
			a, err := ip.ParseAddr(key)
			if err != nil || !prefix.Contains(a) {
				return nil, fmt.Errorf("SpiderIPBlock %q: records: %q is not an address of %s", n, key, prefix)
			}
			v.Records[a] = ipam.Owner{Pod: rec.Pod, PodUID: rec.PodUID}
		}
		if b.Spec.Node == s.opts.NodeName || r.borrowed[n] {
			alloc = append(alloc, ip.PrefixRange(prefix))
		}
		// Addresses a spec update newer than the cached pool is removing (fence.go). A range
		// with no block has no fence; the store allocates there only by creating its block,
		// which fails when the webhook fenced it first.
		fenced = append(fenced, fencedFor(b, prefix, pool.Generation)...)
	}
	for p := range r.absent {
		v.Loaded = append(v.Loaded, p)
	}
	version := 6
	if layout.Subnet.Addr().Is4() {
		version = 4
	}
	set, err := ip.NewSet(version, alloc...)
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: own blocks: %w", pool.Name, err)
	}
	if s.opts.AllBlocks {
		if set, err = pool.Spec.UsableIPs(); err != nil {
			return nil, fmt.Errorf("IPPool %q: %w", pool.Name, err)
		}
	}
	if len(fenced) > 0 {
		out, err := ip.NewSet(version, fenced...)
		if err != nil {
			return nil, fmt.Errorf("IPPool %q: fences: %w", pool.Name, err)
		}
		set = set.Subtract(out)
	}
	v.Allocatable = set
	return v, nil
}

// newer reports whether a's resourceVersion is greater than b's (see kubestore: an optimisation
// only; a wrong guess costs one conflict).
func newer(a, b *ipblock.SpiderIPBlock) bool {
	var ra, rb uint64
	_, errA := fmt.Sscan(a.ResourceVersion, &ra)
	_, errB := fmt.Sscan(b.ResourceVersion, &rb)
	return errA == nil && errB == nil && ra > rb
}

// load reads live what a round's functions asked for beyond the view.
func (s *Store) load(ctx context.Context, pool *v2beta1.SpiderIPPool, layout blocks.Layout, r *round, w ipam.Wants) error {
	if len(w.Owners) > 0 {
		// Every record of a pod UID: only a list of the pool's blocks can tell.
		var list ipblock.SpiderIPBlockList
		if err := s.live.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: pool.Name}); err != nil {
			return fmt.Errorf("list SpiderIPBlocks of IPPool %q: %w", pool.Name, err)
		}
		r.all = true
		for i := range list.Items {
			b := &list.Items[i]
			if b.Spec.PoolUID == string(pool.UID) {
				r.fetched[b.Name] = b
			}
		}
		return nil
	}
	for _, a := range w.Addrs {
		prefix, ok := layout.BlockOf(a)
		if !ok {
			// Outside the pool's subnet: no block can hold it. Loading its /32 (/128) as an empty
			// range answers the lookup: there is no record.
			r.absent[netip.PrefixFrom(a, a.BitLen())] = true
			continue
		}
		n := blocks.Name(pool.Name, string(pool.UID), prefix)
		var b ipblock.SpiderIPBlock
		err := s.live.Get(ctx, client.ObjectKey{Name: n}, &b)
		switch {
		case apierrors.IsNotFound(err):
			r.absent[prefix] = true
		case err != nil:
			return fmt.Errorf("read SpiderIPBlock %q: %w", n, err)
		default:
			r.fetched[n] = &b
		}
	}
	return nil
}

// fromWatchCache lets the apiserver answer a list from its watch cache. A consistent list
// (resourceVersion unset) waits for the cache to catch up with etcd, up to about 100 ms on an idle
// resource, which would be paid by every borrowing ADD.
var fromWatchCache = &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}

// maxClaimTries bounds the creates of one grow before the pool's blocks are listed: after a lost
// claim, the list (from the apiserver's watch cache, cheap) tells which blocks are left, where
// more blind creates would keep colliding with the other nodes filling the pool.
const maxClaimTries = 2

// maxListedClaimTries bounds the creates after the list, each on a block the list showed free;
// all of them lost means the pool is being claimed faster than this node can: ErrConflict.
const maxListedClaimTries = 8

// grow gives the node room in the pool: it claims an unclaimed block or, when the pool has none
// left, chooses another node's block to borrow from. It reports false when the pool has no free
// usable address anywhere.
func (s *Store) grow(ctx context.Context, pool *v2beta1.SpiderIPPool, layout blocks.Layout, q *queue, r *round) (bool, error) {
	usable, err := pool.Spec.UsableIPs()
	if err != nil {
		return false, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	if reserved, err := s.Reserved(ctx, usable.Version()); err == nil {
		usable = usable.Subtract(reserved)
	}
	// First from what this store knows is claimed: no list, one create.
	for range maxClaimTries {
		known := &blocks.Pool{Layout: layout, Usable: usable, Claimed: map[netip.Prefix]*blocks.Claimed{}}
		for p := range q.claimed {
			// Used is unknown here; treating the block as full makes the planner claim, not borrow.
			known.Claimed[p] = &blocks.Claimed{Prefix: p, Full: true}
		}
		plan := known.Plan(s.opts.NodeName)
		if plan.Step != blocks.Claim {
			break
		}
		ok, err := s.claim(ctx, pool, plan.Block, q)
		if err != nil || ok {
			return ok, err
		}
	}
	// Then from the apiserver's lists, which may lag (they are served from its watch cache,
	// without the wait for a consistent read): a block created meanwhile fails the create with
	// AlreadyExists, and a borrow from a block whose records changed loses its compare-and-swap,
	// so a stale list costs a retry, never an address. First the names only, which tell which
	// blocks are claimed (a pool of 65,536 addresses has 2,048 blocks: their records are not
	// needed to claim one).
	var names metav1.PartialObjectMetadataList
	names.SetGroupVersionKind(ipblock.SchemeGroupVersion.WithKind("SpiderIPBlockList"))
	if err := s.live.List(ctx, &names, client.MatchingLabels{ipblock.LabelPool: labelValue(pool.Name)}, fromWatchCache); err != nil {
		return false, fmt.Errorf("list SpiderIPBlocks of IPPool %q: %w", pool.Name, err)
	}
	byName := &blocks.Pool{Layout: layout, Usable: usable, Claimed: map[netip.Prefix]*blocks.Claimed{}}
	for i := range names.Items {
		if prefix, ok := blockPrefix(names.Items[i].Name, pool, layout); ok {
			q.claimed[prefix] = true
			byName.Claimed[prefix] = &blocks.Claimed{Prefix: prefix, Full: true}
		}
	}
	for range maxListedClaimTries {
		plan := byName.Plan(s.opts.NodeName)
		if plan.Step != blocks.Claim {
			break
		}
		ok, err := s.claim(ctx, pool, plan.Block, q)
		if err != nil || ok {
			return ok, err
		}
		byName.Claimed[plan.Block] = &blocks.Claimed{Prefix: plan.Block, Full: true}
	}
	// Every block is claimed (an exact-fit pool): the records decide whom to borrow from.
	var list ipblock.SpiderIPBlockList
	if err := s.live.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: labelValue(pool.Name)}, fromWatchCache); err != nil {
		return false, fmt.Errorf("list SpiderIPBlocks of IPPool %q: %w", pool.Name, err)
	}
	all := &blocks.Pool{Layout: layout, Usable: usable, Claimed: map[netip.Prefix]*blocks.Claimed{}}
	byPrefix := map[netip.Prefix]*ipblock.SpiderIPBlock{}
	for i := range list.Items {
		b := &list.Items[i]
		prefix, err := netip.ParsePrefix(b.Spec.CIDR)
		if err != nil || b.Spec.PoolUID != string(pool.UID) || b.Name != blocks.Name(pool.Name, string(pool.UID), prefix) {
			continue
		}
		q.claimed[prefix] = true
		byPrefix[prefix] = b
		c := &blocks.Claimed{Prefix: prefix, Node: b.Spec.Node}
		if c.Node == s.opts.NodeName || r.borrowed[b.Name] {
			// Our own blocks are full (that is why we are here), and so are the blocks the round
			// already borrows from: neither is a candidate.
			c.Node, c.Full = s.opts.NodeName, true
		} else {
			for key := range b.Spec.Records {
				if a, err := ip.ParseAddr(key); err == nil {
					c.Used = append(c.Used, a)
				}
			}
			ip.SortAddrs(c.Used)
		}
		all.Claimed[prefix] = c
	}
	for range maxListedClaimTries {
		plan := all.Plan(s.opts.NodeName)
		switch plan.Step {
		case blocks.Claim:
			ok, err := s.claim(ctx, pool, plan.Block, q)
			if err != nil || ok {
				return ok, err
			}
			all.Claimed[plan.Block] = &blocks.Claimed{Prefix: plan.Block, Full: true}
		case blocks.Borrow:
			b := byPrefix[plan.Block]
			r.borrowed[b.Name] = true
			r.fetched[b.Name] = b
			return true, nil
		default:
			return false, nil
		}
	}
	return false, fmt.Errorf("IPPool %q: every block this node tried to claim was claimed first: %w", pool.Name, ipam.ErrConflict)
}

// blockPrefix returns the range of the block named name of pool, from the address its name ends
// with; false for a name that is not one of the pool's blocks (or does not say its range plainly,
// as an IPv4-mapped IPv6 block: its create then tells).
func blockPrefix(name string, pool *v2beta1.SpiderIPPool, layout blocks.Layout) (netip.Prefix, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return netip.Prefix{}, false
	}
	tail := name[i+1:]
	for _, sep := range []string{".", ":"} {
		a, err := netip.ParseAddr(strings.ReplaceAll(tail, "-", sep))
		if err != nil {
			continue
		}
		if b, ok := layout.BlockOf(a); ok && blocks.Name(pool.Name, string(pool.UID), b) == name {
			return b, true
		}
	}
	return netip.Prefix{}, false
}

// claim creates the block of prefix for this node; false when another node was first.
func (s *Store) claim(ctx context.Context, pool *v2beta1.SpiderIPPool, prefix netip.Prefix, q *queue) (bool, error) {
	b := newBlock(pool, prefix, s.opts.NodeName)
	q.claimed[prefix] = true
	err := s.live.Create(ctx, b)
	switch {
	case err == nil:
		q.latest[b.Name] = b
		return true, nil
	case apierrors.IsAlreadyExists(err):
		return false, nil
	default:
		return false, fmt.Errorf("claim block %s of IPPool %q: %w", prefix, pool.Name, err)
	}
}

// NewBlock returns the SpiderIPBlock of prefix of pool for node ("" for a block of nobody) holding
// records, with the name, labels (pool, node, holder labels of the node and of every record's
// node) and owner reference the block store reads and writes. For the controller's conversion of
// a pool's status records into blocks.
func NewBlock(pool *v2beta1.SpiderIPPool, prefix netip.Prefix, node string, records map[netip.Addr]ipblock.BlockRecord) *ipblock.SpiderIPBlock {
	b := newBlock(pool, prefix, node)
	if len(records) > 0 {
		b.Spec.Records = make(map[string]ipblock.BlockRecord, len(records))
		for a, r := range records {
			b.Spec.Records[ip.FormatAddr(a)] = r
		}
	}
	setHolders(b)
	return b
}

// newBlock returns the block of prefix of pool for node ("" for nobody), without records.
func newBlock(pool *v2beta1.SpiderIPPool, prefix netip.Prefix, node string) *ipblock.SpiderIPBlock {
	b := &ipblock.SpiderIPBlock{
		ObjectMeta: metav1.ObjectMeta{
			Name:   blocks.Name(pool.Name, string(pool.UID), prefix),
			Labels: map[string]string{ipblock.LabelPool: labelValue(pool.Name)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v2beta1.SchemeGroupVersion.String(), Kind: "SpiderIPPool",
				Name: pool.Name, UID: pool.UID, Controller: ptr.To(true),
			}},
		},
		Spec: ipblock.SpiderIPBlockSpec{Pool: pool.Name, PoolUID: string(pool.UID), CIDR: prefix.String(), Node: node},
	}
	if node != "" {
		b.Labels[ipblock.LabelNode] = labelValue(node)
		b.Labels[ipblock.HolderLabel(node)] = "true"
	}
	return b
}

// labelValue returns v when it is a valid label value; pool and node names longer than 63 bytes
// are not, and are then not used for selection (the spec carries them whole).
func labelValue(v string) string {
	if len(v) > 63 {
		return ""
	}
	return v
}

// recordsIn returns the state's records inside prefix, a loaded block.
func recordsIn(state *ipam.PoolState, prefix netip.Prefix) map[netip.Addr]ipam.Owner {
	out := map[netip.Addr]ipam.Owner{}
	r := ip.PrefixRange(prefix)
	for a := r.First; ; a = a.Next() {
		if o, ok := state.Record(a); ok {
			out[a] = o
		}
		if a == r.Last {
			return out
		}
	}
}

// rewrite returns blk with records, and whether they changed. A record that is new or changed its
// holder names this node; the holder labels follow the records.
func (s *Store) rewrite(blk *ipblock.SpiderIPBlock, records map[netip.Addr]ipam.Owner) (*ipblock.SpiderIPBlock, bool) {
	next := make(map[string]ipblock.BlockRecord, len(records))
	for a, o := range records {
		key := ip.FormatAddr(a)
		rec := ipblock.BlockRecord{Pod: o.Pod, PodUID: o.PodUID, Node: s.opts.NodeName}
		if old, ok := blk.Spec.Records[key]; ok && old.Pod == o.Pod && old.PodUID == o.PodUID {
			rec.Node = old.Node
		}
		next[key] = rec
	}
	if maps.Equal(next, blk.Spec.Records) || len(next) == 0 && len(blk.Spec.Records) == 0 {
		return blk, false
	}
	updated := blk.DeepCopy()
	updated.Spec.Records = next
	setHolders(updated)
	return updated, true
}

// setHolders makes b's holder labels those of its node and of its records' nodes.
func setHolders(b *ipblock.SpiderIPBlock) {
	if b.Labels == nil {
		b.Labels = map[string]string{}
	}
	for k := range b.Labels {
		if strings.HasPrefix(k, ipblock.HolderLabelPrefix) {
			delete(b.Labels, k)
		}
	}
	if b.Spec.Node != "" {
		b.Labels[ipblock.HolderLabel(b.Spec.Node)] = "true"
	}
	for _, rec := range b.Spec.Records {
		if rec.Node != "" {
			b.Labels[ipblock.HolderLabel(rec.Node)] = "true"
		}
	}
}

// giveUp is the error of a caller whose budget ran out before a write carrying its change
// succeeded.
func giveUp(name string, cause error) error {
	return fmt.Errorf("IPPool %q: no block write succeeded within the request's budget (%w): %w", name, cause, ipam.ErrConflict)
}

// NodeSelector selects the blocks a node's informer must hold for New: the node's own blocks and
// the blocks holding records of its pods. Nothing else reaches the node.
func NodeSelector(node string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{ipblock.HolderLabel(node): "true"})
}
