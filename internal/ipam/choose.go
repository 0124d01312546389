package ipam

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Owner is who holds an address, as a pool record stores it.
type Owner struct {
	Pod    string // "namespace/name"
	PodUID string
}

// Claim asks a pool for one address.
type Claim struct {
	Owner

	// Offset is where the search starts in the pool's free set (wrapping);
	// 0 takes the lowest free address.
	Offset uint64

	// Reserved holds the SpiderReservedIP addresses of the pool's family,
	// which are never handed out.
	Reserved ip.Set

	// MaxRecords refuses a new record when the pool already holds this many;
	// <= 0 means DefaultMaxRecords.
	MaxRecords int

	// Avoid lists addresses the owner holds for other interfaces, so that
	// they are not mistaken for a retry of this one.
	Avoid []netip.Addr
}

// PoolState is a decoded, fresh snapshot of one pool handed to the function
// of Store.UpdatePool. The function changes records only through Allocate and
// Release; the Store then persists the records with WriteStatus when Changed
// reports true. A PoolState is not safe for concurrent use.
type PoolState struct {
	pool    *v2beta1.SpiderIPPool
	version int
	subnet  netip.Prefix
	usable  ip.Set
	records map[netip.Addr]Owner
	used    []netip.Addr            // keys of records, ascending, as ip.Set.FirstFree wants them
	byUID   map[string][]netip.Addr // addresses of each pod UID, ascending; built on first use

	journal []change // every mutation, so that Apply can undo a failed function
	dirty   int      // mutations not undone

	view *view // nil: the state holds every record of the pool
}

// view is what a PoolState decoded by NewPoolView knows beyond its records: which ranges it holds
// every record of, where new addresses may come from, and what the functions run on it asked for
// that it does not hold.
type view struct {
	loaded   []netip.Prefix // ranges whose records are all present, sorted
	complete bool           // loaded covers every range holding a record of the pool
	owners   bool           // the records include every record of any pod UID asked about
	alloc    ip.Set         // where Allocate may take a new address

	misses     []netip.Addr // addresses consulted outside loaded
	wantOwners []string     // pod UIDs ReleaseOwner searched for while the view was not complete
	space      bool         // Allocate found alloc full
}

// View describes the part of a pool a PoolState is decoded over by NewPoolView.
type View struct {
	// Loaded lists the ranges (a block-based Store's blocks) whose records are all in Records.
	Loaded []netip.Prefix
	// Complete says that Loaded covers every range of the pool that holds a record, so that an
	// address outside Loaded is known to be free and no lookup can miss.
	Complete bool
	// OwnersComplete says that Records include every record of any pod UID a function names
	// (the agent's view: its node's pods are the only ones it serves), so that ReleaseOwner
	// needs nothing more.
	OwnersComplete bool
	// Records are the records of the Loaded ranges. They must include every record of the pod
	// UIDs the functions allocate for: a retried Allocate finds the address its UID holds only
	// among them (the block store's holder labels put every record of a node's pods in its
	// cache).
	Records map[netip.Addr]Owner
	// Allocatable is where Allocate may take a new address: the store's part of the pool (its own
	// blocks, or a block it borrows from). It must lie inside Loaded; it is intersected with the
	// pool's usable addresses.
	Allocatable ip.Set
}

// Wants is what the functions run on a view asked for that the view does not hold: the Store
// loads it and runs them again on a wider view.
type Wants struct {
	// Addrs are addresses outside the loaded ranges that a function looked up, released or
	// transferred.
	Addrs []netip.Addr
	// Owners are pod UIDs whose every record a function asked for (ReleaseOwner) while the view
	// was not complete.
	Owners []string
	// Space reports that Allocate found no free address in the view's allocatable part, while the
	// pool may have some elsewhere.
	Space bool
}

// IsZero reports whether nothing is wanted.
func (w Wants) IsZero() bool { return len(w.Addrs) == 0 && len(w.Owners) == 0 && !w.Space }

// change is one journal entry: addr's record before the mutation.
type change struct {
	addr netip.Addr
	prev Owner
	had  bool
}

// NewPoolState decodes pool: its subnet, its usable set (ips minus
// excludeIPs) and the records of status.allocatedIPs. pool is kept, not
// copied, and must not be changed while the state is in use.
func NewPoolState(pool *v2beta1.SpiderIPPool) (*PoolState, error) {
	usable, err := pool.Spec.UsableIPs()
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	subnet, err := pool.Spec.SubnetPrefix() // masked: "10.6.0.1/16" written past the webhook is 10.6.0.0/16
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: spec.subnet: %w", pool.Name, err)
	}
	allocs, err := pool.Status.Allocations()
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	s := &PoolState{
		pool:    pool,
		version: usable.Version(),
		subnet:  subnet,
		usable:  usable,
		records: make(map[netip.Addr]Owner, len(allocs)),
		used:    make([]netip.Addr, 0, len(allocs)),
	}
	for key, a := range allocs {
		addr, err := ip.ParseAddr(key)
		if err != nil {
			return nil, fmt.Errorf("IPPool %q: status.allocatedIPs: %w", pool.Name, err)
		}
		if _, dup := s.records[addr]; dup {
			// Two spellings of one IPv6 address; keeping either would make
			// allocatedIPCount disagree with the keys.
			return nil, fmt.Errorf("IPPool %q: status.allocatedIPs: address %s recorded twice", pool.Name, addr)
		}
		s.records[addr] = Owner{Pod: a.NamespacedName, PodUID: a.PodUID}
		s.used = append(s.used, addr)
	}
	ip.SortAddrs(s.used)
	return s, nil
}

// NewPoolView decodes a view of pool over part of its records, for a Store that keeps a pool's
// records in several objects (internal/ipam/blockstore): the records of v.Loaded, new addresses
// from v.Allocatable only. A function run on it that consults an address outside v.Loaded sees no
// record there and the view notes the miss (Wants): the Store must then load the missing part and
// run the function again on a wider view before it writes anything. pool's own
// status.allocatedIPs is ignored.
func NewPoolView(pool *v2beta1.SpiderIPPool, v View) (*PoolState, error) {
	usable, err := pool.Spec.UsableIPs()
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	subnet, err := pool.Spec.SubnetPrefix()
	if err != nil {
		return nil, fmt.Errorf("IPPool %q: spec.subnet: %w", pool.Name, err)
	}
	alloc, _ := ip.NewSet(usable.Version())
	if !v.Allocatable.IsEmpty() {
		alloc = usable.Intersect(v.Allocatable)
	}
	loaded := slices.Clone(v.Loaded)
	slices.SortFunc(loaded, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	s := &PoolState{
		pool:    pool,
		version: usable.Version(),
		subnet:  subnet,
		usable:  usable,
		records: make(map[netip.Addr]Owner, len(v.Records)),
		used:    make([]netip.Addr, 0, len(v.Records)),
		view:    &view{loaded: loaded, complete: v.Complete, owners: v.OwnersComplete, alloc: alloc},
	}
	for addr, o := range v.Records {
		if !s.inLoaded(addr) {
			return nil, fmt.Errorf("IPPool %q: record of %s outside the loaded ranges", pool.Name, addr)
		}
		s.records[addr] = o
		s.used = append(s.used, addr)
	}
	ip.SortAddrs(s.used)
	return s, nil
}

// inLoaded reports whether a view holds every record of addr's range.
func (s *PoolState) inLoaded(addr netip.Addr) bool {
	i, _ := slices.BinarySearchFunc(s.view.loaded, addr, func(p netip.Prefix, a netip.Addr) int {
		if p.Contains(a) {
			return 0
		}
		return p.Addr().Compare(a)
	})
	return i < len(s.view.loaded) && s.view.loaded[i].Contains(addr)
}

// known reports whether the state can answer for addr; a view notes a miss when it cannot.
func (s *PoolState) known(addr netip.Addr) bool {
	if s.view == nil || s.view.complete || s.inLoaded(addr) {
		return true
	}
	if !slices.Contains(s.view.misses, addr) {
		s.view.misses = append(s.view.misses, addr)
	}
	return false
}

// Wants returns what the functions run on a view asked for beyond it; zero for a whole-pool state.
func (s *PoolState) Wants() Wants {
	if s.view == nil {
		return Wants{}
	}
	return Wants{Addrs: slices.Clone(s.view.misses), Owners: slices.Clone(s.view.wantOwners), Space: s.view.space}
}

// IsView reports whether the state was decoded by NewPoolView.
func (s *PoolState) IsView() bool { return s.view != nil }

// Mark returns a position in the state's history of changes, for TouchedSince.
func (s *PoolState) Mark() int { return len(s.journal) }

// TouchedSince returns the addresses whose records the functions applied since mark changed (and
// did not undo), each once; a change may have been reverted by a later one.
func (s *PoolState) TouchedSince(mark int) []netip.Addr {
	mark = min(max(mark, 0), len(s.journal))
	seen := make(map[netip.Addr]bool, len(s.journal)-mark)
	var out []netip.Addr
	for _, c := range s.journal[mark:] {
		if !seen[c.addr] {
			seen[c.addr] = true
			out = append(out, c.addr)
		}
	}
	return out
}

// Pool returns the snapshot the state was decoded from; read only.
func (s *PoolState) Pool() *v2beta1.SpiderIPPool { return s.pool }

// Name returns the pool's name.
func (s *PoolState) Name() string { return s.pool.Name }

// Version returns the pool's family, 4 or 6.
func (s *PoolState) Version() int { return s.version }

// Subnet returns spec.subnet.
func (s *PoolState) Subnet() netip.Prefix { return s.subnet }

// Usable returns spec.ips minus spec.excludeIPs.
func (s *PoolState) Usable() ip.Set { return s.usable }

// Len returns the number of records.
func (s *PoolState) Len() int { return len(s.records) }

// Record returns the holder of addr. In a view, an address outside the loaded ranges has no record
// and is noted as a miss.
func (s *PoolState) Record(addr netip.Addr) (Owner, bool) {
	if !s.known(addr) {
		return Owner{}, false
	}
	o, ok := s.records[addr]
	return o, ok
}

// All yields the records in ascending address order (a view's: those of its loaded ranges).
func (s *PoolState) All() iter.Seq2[netip.Addr, Owner] {
	return func(yield func(netip.Addr, Owner) bool) {
		for _, a := range s.used {
			if !yield(a, s.records[a]) {
				return
			}
		}
	}
}

// Allocate gives c.Owner an address of the pool and reports whether it was
// one the owner already held. Retries are idempotent: if c.PodUID already
// holds an address here (other than those in c.Avoid) that address is
// returned without a change. Otherwise the first address of usable minus
// c.Reserved that is not recorded, searching from c.Offset and wrapping, is
// recorded for c.Owner. It fails with an error wrapping ErrPoolExhausted when
// no address is free or the pool holds c.MaxRecords records (a pool in status
// format: a view of a pool in blocks has no cap).
func (s *PoolState) Allocate(c Claim) (addr netip.Addr, reused bool, err error) {
	if c.PodUID == "" {
		return netip.Addr{}, false, errors.New("allocate: empty pod UID")
	}
	for _, a := range s.held(c.PodUID) {
		if !slices.Contains(c.Avoid, a) {
			return a, true, nil
		}
	}
	limit := c.MaxRecords
	if limit <= 0 {
		limit = DefaultMaxRecords
	}
	free := s.usable
	if s.view != nil {
		// A pool in blocks has no status to outgrow: MaxRecords, which exists because of the
		// status's size, does not apply.
		free = s.view.alloc
	} else if len(s.records) >= limit {
		return netip.Addr{}, false, fmt.Errorf("IPPool %q holds %d IP records, the maximum: %w", s.pool.Name, len(s.records), ErrPoolExhausted)
	}
	free = free.Subtract(c.Reserved)
	a, ok := free.FirstFree(s.used, c.Offset)
	if !ok {
		if s.view != nil {
			s.view.space = true
		}
		return netip.Addr{}, false, ErrPoolExhausted
	}
	s.set(a, c.Owner, true)
	return a, false, nil
}

// Release removes the record of addr if podUID holds it, and reports whether
// it did. A missing record or another holder is not an error: release must
// be idempotent and must never free an address a newer pod incarnation got.
func (s *PoolState) Release(addr netip.Addr, podUID string) bool {
	if !s.known(addr) {
		return false
	}
	o, ok := s.records[addr]
	if !ok || o.PodUID != podUID {
		return false
	}
	s.set(addr, Owner{}, false)
	return true
}

// Transfer rewrites the record of addr from from.PodUID to to, and reports
// whether it did. It moves only a record that from.PodUID holds: a missing
// record or another holder (the address was released and handed to someone
// else meanwhile) is left alone, so that a StatefulSet pod's new incarnation
// never takes an address it lost. Once moved, the old UID holds nothing at
// addr and a late release of it cannot free the address (invariant 8). The
// change is journaled like Allocate's, so Apply undoes it.
func (s *PoolState) Transfer(addr netip.Addr, from, to Owner) bool {
	if !s.known(addr) {
		return false
	}
	o, ok := s.records[addr]
	if !ok || from.PodUID == "" || o.PodUID != from.PodUID || to.PodUID == "" {
		return false
	}
	if o != to {
		s.set(addr, to, true)
	}
	return true
}

// ReleaseOwner removes every record of podUID and returns their addresses.
func (s *PoolState) ReleaseOwner(podUID string) []netip.Addr {
	if s.view != nil && !s.view.complete && !s.view.owners && !slices.Contains(s.view.wantOwners, podUID) {
		s.view.wantOwners = append(s.view.wantOwners, podUID)
	}
	out := slices.Clone(s.held(podUID))
	for _, a := range out {
		s.set(a, Owner{}, false)
	}
	return out
}

// held returns the addresses podUID holds, ascending; callers must not modify the slice. The
// index is built on first use: a pool's view may hold thousands of records, and every Allocate
// asks.
func (s *PoolState) held(podUID string) []netip.Addr {
	if s.byUID == nil {
		s.byUID = make(map[string][]netip.Addr, len(s.records))
		for _, a := range s.used { // ascending, so each list is too
			uid := s.records[a].PodUID
			s.byUID[uid] = append(s.byUID[uid], a)
		}
	}
	return s.byUID[podUID]
}

// Apply runs fn on s and undoes fn's changes if it fails, so that a Store
// committing several functions in one write (group commit) keeps the changes
// of those that succeeded only.
func (s *PoolState) Apply(fn func(*PoolState) error) error {
	mark, dirty := len(s.journal), s.dirty
	if err := fn(s); err != nil {
		for i := len(s.journal) - 1; i >= mark; i-- {
			c := s.journal[i]
			s.put(c.addr, c.prev, c.had)
		}
		s.journal, s.dirty = s.journal[:mark], dirty
		return err
	}
	return nil
}

// Changed reports whether the records differ from the decoded ones, i.e.
// whether the Store has something to write.
func (s *PoolState) Changed() bool { return s.dirty > 0 }

// WriteStatus encodes the records into status.allocatedIPs and sets
// status.allocatedIPCount in the same write, as docs/design/ipam-invariants.md (invariant 2) requires.
func (s *PoolState) WriteStatus(st *v2beta1.IPPoolStatus) error {
	if s.view != nil {
		return fmt.Errorf("IPPool %q: a view of part of the pool cannot be written as its status", s.pool.Name)
	}
	allocs := make(v2beta1.PoolIPAllocations, len(s.records))
	for a, o := range s.records {
		// FormatAddr, not String: an IPv6 record in the IPv4-mapped block must be
		// written in the form that NewPoolState parses back.
		allocs[ip.FormatAddr(a)] = v2beta1.PoolIPAllocation{NamespacedName: o.Pod, PodUID: o.PodUID}
	}
	return st.SetAllocations(allocs)
}

// set records (present) or removes addr, journaling the previous state.
func (s *PoolState) set(addr netip.Addr, o Owner, present bool) {
	prev, had := s.records[addr]
	s.journal = append(s.journal, change{addr: addr, prev: prev, had: had})
	s.dirty++
	s.put(addr, o, present)
}

// put changes the records and keeps used sorted.
func (s *PoolState) put(addr netip.Addr, o Owner, present bool) {
	prev, had := s.records[addr]
	if s.byUID != nil {
		if had {
			s.byUID[prev.PodUID] = slices.DeleteFunc(s.byUID[prev.PodUID], func(a netip.Addr) bool { return a == addr })
		}
		if present {
			l := s.byUID[o.PodUID]
			j, _ := slices.BinarySearchFunc(l, addr, netip.Addr.Compare)
			s.byUID[o.PodUID] = slices.Insert(l, j, addr)
		}
	}
	i, _ := slices.BinarySearchFunc(s.used, addr, netip.Addr.Compare)
	switch {
	case present && !had:
		s.used = slices.Insert(s.used, i, addr)
		s.records[addr] = o
	case present:
		s.records[addr] = o
	case had:
		s.used = slices.Delete(s.used, i, i+1)
		delete(s.records, addr)
	}
}
