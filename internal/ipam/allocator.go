package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Allocator allocates and releases the addresses of pod interfaces. It holds
// no state besides its Store and Config and is safe for concurrent use.
type Allocator struct {
	store Store
	cfg   Config
	specs specCache
}

// New returns an Allocator over store.
func New(store Store, cfg Config) *Allocator {
	return &Allocator{store: store, cfg: cfg}
}

// IPConfig is one address given to an interface.
type IPConfig struct {
	Version int          // 4 or 6
	Address netip.Prefix // the address with the pool subnet's prefix length
	Gateway netip.Addr   // the pool's gateway; zero when it has none or the NIC's gateway is cleaned
	Routes  []Route      // the pool's spec.routes
	Pool    string
	Vlan    int64
}

// Result is what one interface was given.
type Result struct {
	NIC string
	IPs []IPConfig // IPv4 first

	// Routes are the routes of the pod annotation ipam.spidernet.io/routes
	// whose gateway lies in the subnet of one of IPs; the others belong to
	// another interface of the pod.
	Routes []Route

	CleanGateway bool
}

// Allocate gives req.IfName one address of every enabled family that has
// candidate pools: it selects the candidate pools (Select), drops those the
// pod may not use (Filter) and tries the remaining pools of each family in
// order, taking the first that yields an address. A family with candidates
// that are all filtered out fails the request; a family without any is not
// allocated. Families are allocated concurrently and together: if
// one fails, the records the others created are released again. A retry for
// the same pod UID and interface returns the addresses already held (pools
// that, per the cache, hold a record of the UID are tried first).
//
// Errors: *FilterError and ErrNoCandidatePool when no pool is left to try,
// ErrPoolNotFound for unknown names, ErrInvalidAnnotation for annotations
// that do not parse, and *AllocationError (ErrPoolExhausted when every pool
// was full) when no candidate yielded an address.
func (a *Allocator) Allocate(ctx context.Context, req *Request) (*Result, error) {
	if req.PodUID == "" {
		return nil, errors.New("allocate: empty pod UID")
	}
	if err := checkIfName(req.IfName); err != nil {
		return nil, fmt.Errorf("allocate: %w", err)
	}
	pools, err := a.store.Pools(ctx)
	if err != nil {
		return nil, fmt.Errorf("list IPPools: %w", err)
	}
	sel, err := Select(req, &a.cfg, pools)
	if err != nil {
		return nil, err
	}
	var extra []Route
	if v, ok := req.PodAnnotations[v2beta1.AnnoPodRoutes]; ok {
		if extra, err = ParseRoutes(v); err != nil {
			return nil, err
		}
	}
	// Only the families Select found candidates for: an enabled family that
	// no rule names a pool of is skipped (docs/design/behaviour.md#pool-selection).
	versions := sel.Versions()
	candidates := make([][]*v2beta1.SpiderIPPool, len(versions))
	for i, v := range versions {
		if candidates[i], err = Filter(req, &a.cfg, v, sel.Pools(v)); err != nil {
			return nil, err
		}
	}

	outs := make([]familyOutcome, len(versions))
	if len(versions) == 1 {
		outs[0] = a.allocateFamily(ctx, req, versions[0], candidates[0], pools, sel.CleanGateway)
	} else {
		var wg sync.WaitGroup
		for i, v := range versions {
			wg.Go(func() { outs[i] = a.allocateFamily(ctx, req, v, candidates[i], pools, sel.CleanGateway) })
		}
		wg.Wait()
	}

	var errs []error
	for _, o := range outs {
		if o.err != nil {
			errs = append(errs, o.err)
		}
	}
	if len(errs) > 0 {
		// Undo what this call created, even if the caller has given up:
		// a record left behind would leak until garbage collection.
		rctx := context.WithoutCancel(ctx)
		for _, o := range outs {
			if o.err != nil || o.reused {
				continue
			}
			addr := o.ip.Address.Addr()
			err := a.store.UpdatePool(rctx, o.ip.Pool, func(st *PoolState) error {
				st.Release(addr, req.PodUID)
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("roll back %s of IPPool %q: %w", addr, o.ip.Pool, err))
			}
		}
		return nil, errors.Join(errs...)
	}

	res := &Result{NIC: req.IfName, CleanGateway: sel.CleanGateway}
	for _, o := range outs {
		res.IPs = append(res.IPs, o.ip)
	}
	for _, r := range extra {
		if slices.ContainsFunc(res.IPs, func(c IPConfig) bool { return c.Address.Masked().Contains(r.Gw) }) {
			res.Routes = append(res.Routes, r)
		}
	}
	return res, nil
}

type familyOutcome struct {
	ip     IPConfig
	reused bool
	err    error
}

// allocateFamily tries pools in order and returns the first address one
// yields; all is every pool (the list the candidates came from), for the
// overlap rule (overlap.go).
func (a *Allocator) allocateFamily(ctx context.Context, req *Request, version int, pools, all []*v2beta1.SpiderIPPool, cleanGateway bool) familyOutcome {
	reserved, err := a.store.Reserved(ctx, version)
	if err != nil {
		return familyOutcome{err: fmt.Errorf("read IPv%d reserved IPs: %w", version, err)}
	}
	if q := a.cfg.Quarantine.Set(version); !q.IsEmpty() {
		if reserved, err = reserved.Union(q); err != nil {
			return familyOutcome{err: fmt.Errorf("IPv%d quarantined IPs: %w", version, err)}
		}
	}
	pools = a.preferHolders(ctx, pools, req.PodUID)
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	var failures []PoolError
	for _, p := range pools {
		var out familyOutcome
		err := a.store.UpdatePool(ctx, p.Name, func(st *PoolState) error {
			if reason := unavailable(st.Pool()); reason != "" {
				return fmt.Errorf("%w: %s", ErrPoolUnavailable, reason)
			}
			gw, routes, err := routing(st.Pool())
			if err != nil {
				return err
			}
			poolReserved := reserved
			claimed, reason := a.specs.olderClaims(st, all)
			if reason != "" {
				return fmt.Errorf("%w: %s", ErrPoolUnavailable, reason)
			}
			if !claimed.IsEmpty() {
				if poolReserved, err = reserved.Union(claimed); err != nil {
					return err
				}
			}
			addr, reused, err := st.Allocate(Claim{
				Owner:      Owner{Pod: req.Pod(), PodUID: req.PodUID},
				Offset:     a.cfg.offset(st.Name()),
				Reserved:   poolReserved,
				MaxRecords: a.cfg.maxRecords(),
				Avoid:      req.OtherNICIPs,
			})
			if err != nil {
				return err
			}
			if cleanGateway {
				gw = netip.Addr{}
			}
			out = familyOutcome{
				ip: IPConfig{
					Version: version,
					Address: netip.PrefixFrom(addr, st.Subnet().Bits()),
					Gateway: gw,
					Routes:  routes,
					Pool:    st.Name(),
				},
				reused: reused,
			}
			return nil
		})
		if err == nil {
			return out
		}
		failures = append(failures, PoolError{Pool: p.Name, Err: err})
		if ctx.Err() != nil {
			break // every later pool would fail the same way
		}
	}
	return familyOutcome{err: &AllocationError{Version: version, NIC: req.IfName, Pools: names, Errs: failures}}
}

// preferHolders moves to the front the pools the store says hold a record
// of podUID, so that a retried request finds the address it already holds
// instead of taking a second one from an earlier pool that has room again.
func (a *Allocator) preferHolders(ctx context.Context, pools []*v2beta1.SpiderIPPool, podUID string) []*v2beta1.SpiderIPPool {
	names, err := a.store.Holders(ctx, podUID)
	if err != nil || len(names) == 0 {
		return pools // only an ordering hint: the fresh read in UpdatePool decides
	}
	holds := func(p *v2beta1.SpiderIPPool) bool { return slices.Contains(names, p.Name) }
	out := make([]*v2beta1.SpiderIPPool, 0, len(pools))
	for _, p := range pools {
		if holds(p) {
			out = append(out, p)
		}
	}
	for _, p := range pools {
		if !holds(p) {
			out = append(out, p)
		}
	}
	return out
}

// unavailable re-checks on the fresh read what the cached filters saw, so
// that a pool disabled or deleted in between is not allocated from.
func unavailable(p *v2beta1.SpiderIPPool) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "terminating"
	case p.Spec.Disable != nil && *p.Spec.Disable:
		return "disabled"
	}
	return ""
}

// routing parses a pool's gateway and routes.
func routing(p *v2beta1.SpiderIPPool) (netip.Addr, []Route, error) {
	var gw netip.Addr
	if p.Spec.Gateway != nil && *p.Spec.Gateway != "" {
		var err error
		if gw, err = ip.ParseAddr(*p.Spec.Gateway); err != nil {
			return netip.Addr{}, nil, fmt.Errorf("spec.gateway: %w", err)
		}
	}
	var routes []Route
	for i, r := range p.Spec.Routes {
		parsed, err := parseRoute(r.Dst, r.Gw)
		if err != nil {
			return netip.Addr{}, nil, fmt.Errorf("spec.routes[%d]: %w", i, err)
		}
		routes = append(routes, parsed)
	}
	return gw, routes, nil
}

// ReleaseRequest names the records to remove for one pod UID.
type ReleaseRequest struct {
	PodUID string
	IPs    []PoolIP
}

// PoolIP is an address of a pool. A zero Addr stands for every address the
// pod UID holds in Pool, for callers that lost track of which.
type PoolIP struct {
	Pool string
	Addr netip.Addr
}

// Release removes the records of req.IPs held by req.PodUID, one update per
// pool. It is idempotent: a pool that is gone, a record that is gone and a
// record now held by another UID (a newer pod incarnation) are skipped
// silently. It fails only when a pool could not be updated.
func (a *Allocator) Release(ctx context.Context, req *ReleaseRequest) error {
	if req.PodUID == "" {
		return errors.New("release: empty pod UID")
	}
	byPool := make(map[string][]netip.Addr)
	var order []string
	for _, pi := range req.IPs {
		if _, ok := byPool[pi.Pool]; !ok {
			order = append(order, pi.Pool)
		}
		byPool[pi.Pool] = append(byPool[pi.Pool], pi.Addr)
	}
	var errs []error
	for _, pool := range order {
		addrs := byPool[pool]
		err := a.store.UpdatePool(ctx, pool, func(st *PoolState) error {
			for _, addr := range addrs {
				if !addr.IsValid() {
					st.ReleaseOwner(req.PodUID)
					continue
				}
				st.Release(addr, req.PodUID)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrPoolNotFound) {
			errs = append(errs, fmt.Errorf("release from IPPool %q: %w", pool, err))
		}
	}
	return errors.Join(errs...)
}
