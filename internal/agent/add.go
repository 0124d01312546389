package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// cleanupTimeout bounds the release of addresses a failed or retried ADD
// holds but does not keep; it runs even when the request's context is done.
const cleanupTimeout = 10 * time.Second

// add answers POST /v1/ipam/ip: the addresses of one interface of one pod.
//
// The pod's SpiderEndpoint is the record of what each interface was given:
// an interface it already lists for this pod UID is answered from it once
// the live endpoint and the pools confirm it (confirmEntry; a retried ADD,
// or the ADD after a DEL the informer has not seen yet, which must not get
// the address that DEL freed); a stale entry is dropped and the interface
// allocated afresh. Otherwise the interface is
// allocated (with ipam.spidernet.io/ippools, every listed interface the
// endpoint lacks, SPEC.md 3.6) and the endpoint written. The endpoint is
// read from the cache, which may lag behind this agent's own last write; a
// write that loses to the API (AlreadyExists, Conflict) re-reads the
// endpoint from the API and re-plans. Addresses handed out on the way that
// the final endpoint does not record are released before answering, so
// neither a lost race nor a failure leaks one (and an address the endpoint
// records is never released, even if the IPAM core handed it out again).
func (s *Server) add(ctx context.Context, args *v1.IpamAddArgs) (*v1.IpamAddResponse, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AllocateTimeout)
	defer cancel()
	key := client.ObjectKey{Namespace: args.PodNamespace, Name: args.PodName}
	unlock, err := s.locks.lock(ctx, key.String())
	if err != nil {
		return nil, err
	}
	defer unlock()

	pod, err := s.pod(ctx, args.PodNamespace, args.PodName, args.PodUID)
	if err != nil {
		return nil, err
	}
	if !alive(pod) {
		return nil, deadPod(pod)
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != s.cfg.NodeName {
		return nil, &reasonError{ErrInvalidRequest, fmt.Sprintf("pod %s runs on node %s, not on node %s of this agent",
			key, pod.Spec.NodeName, s.cfg.NodeName)}
	}
	base, err := s.request(ctx, pod, args)
	if err != nil {
		return nil, err
	}

	var (
		held  []ipam.PoolIP // every address the core handed out to this request
		final *v2beta1.SpiderEndpoint
		entry *v2beta1.IPAllocationDetail
		from  = fromCache
	)
	for attempt := 1; ; attempt++ {
		ep, err := s.getEndpoint(ctx, key, from)
		if err != nil {
			return nil, s.abandon(ctx, key, args.PodUID, held, err)
		}
		if ep != nil && ep.Status.Current.UID != args.PodUID {
			if s.takesOver(base.Controller, ep) {
				// A StatefulSet pod's new incarnation keeps the addresses
				// of the old one (SPEC.md 3.7).
				taken, err := s.takeOver(ctx, base, args.IfName, ep)
				if err != nil {
					if (apierrors.IsNotFound(err) || apierrors.IsConflict(err)) && attempt < maxWriteAttempts {
						from = fromLive
						continue
					}
					return nil, s.abandon(ctx, key, args.PodUID, held, err)
				}
				ep = taken
			} else {
				// Another incarnation's endpoint: release its records and
				// start afresh.
				if err := s.retire(ctx, ep); err != nil {
					return nil, s.abandon(ctx, key, args.PodUID, held, err)
				}
				ep = nil
			}
		}
		if d := findNIC(ep, args.IfName); d != nil {
			err := s.confirmEntry(ctx, ep, d, from)
			if err == nil {
				final, entry = ep, d
				break
			}
			if errors.Is(err, errEndpointMoved) && attempt < maxWriteAttempts {
				from = fromLive
				continue
			}
			if !errors.Is(err, errEntryStale) || attempt >= maxWriteAttempts {
				return nil, s.abandon(ctx, key, args.PodUID, held, err)
			}
			s.log.Warn("allocating an interface afresh: its SpiderEndpoint entry is stale", keyPod, key.String(),
				keyPodUID, args.PodUID, "interface", args.IfName, keyError, err)
			live, lerr := s.getEndpoint(ctx, key, fromLive)
			if lerr == nil && live != nil && live.Status.Current.UID == args.PodUID {
				lerr = s.dropEntry(ctx, live, args.IfName)
			}
			if lerr != nil {
				return nil, s.abandon(ctx, key, args.PodUID, held, lerr)
			}
			from = fromLive
			continue
		}
		nics, err := nicsToAllocate(pod, args.IfName, ep)
		if err != nil {
			return nil, s.abandon(ctx, key, args.PodUID, held, err)
		}
		details, got, err := s.allocate(ctx, base, args, nics, ep)
		held = append(held, got...)
		if err != nil {
			return nil, s.abandon(ctx, key, args.PodUID, held, err)
		}
		written, err := s.persist(ctx, pod, base.Controller, ep, details)
		if err != nil {
			if (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < maxWriteAttempts {
				from = fromLive
				continue
			}
			return nil, s.abandon(ctx, key, args.PodUID, held, err)
		}
		final, entry = written, findNIC(written, args.IfName)
		break
	}
	if extra := unreferenced(held, final); len(extra) > 0 {
		// The answer stands; the pod's DEL releases whatever is left of its UID.
		if err := s.releaseDetached(ctx, args.PodUID, extra); err != nil {
			s.log.Warn("release addresses handed out twice", keyPod, key.String(), keyPodUID, args.PodUID, keyError, err)
		}
	}
	return s.response(entry), nil
}

// abandon releases what a failed ADD was handed and does not keep, and
// returns cause (joined with a failure to release). The endpoint is read
// from the API so that addresses it records stay held; if it cannot be
// read nothing is released: the DEL the runtime sends after a failed ADD
// releases every record of the pod UID anyway.
func (s *Server) abandon(ctx context.Context, key client.ObjectKey, uid string, held []ipam.PoolIP, cause error) error {
	if len(held) == 0 {
		return cause
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	ep, err := s.getEndpoint(rctx, key, fromLive)
	if err != nil {
		return errors.Join(cause, fmt.Errorf("not releasing %d address(es) after the failure: %w", len(held), err))
	}
	if ep != nil && ep.Status.Current.UID != uid {
		ep = nil
	}
	if err := s.releaseDetached(rctx, uid, unreferenced(held, ep)); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// releaseDetached releases ips of uid even if ctx is already done.
func (s *Server) releaseDetached(ctx context.Context, uid string, ips []ipam.PoolIP) error {
	if len(ips) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.ipam.Release(rctx, &ipam.ReleaseRequest{PodUID: uid, IPs: ips}); err != nil {
		return fmt.Errorf("release unused addresses: %w", err)
	}
	return nil
}

// request gathers what the IPAM core needs about the pod from the caches.
func (s *Server) request(ctx context.Context, pod *corev1.Pod, args *v1.IpamAddArgs) (*ipam.Request, error) {
	ns := &corev1.Namespace{}
	if err := s.getCachedOrLive(ctx, client.ObjectKey{Name: pod.Namespace}, ns); err != nil {
		return nil, fmt.Errorf("get namespace %s: %w", pod.Namespace, err)
	}
	node := &corev1.Node{}
	if err := s.getCachedOrLive(ctx, client.ObjectKey{Name: s.cfg.NodeName}, node); err != nil {
		return nil, fmt.Errorf("get node %s: %w", s.cfg.NodeName, err)
	}
	return &ipam.Request{
		PodNamespace:         pod.Namespace,
		PodName:              pod.Name,
		PodUID:               string(pod.UID),
		PodLabels:            pod.Labels,
		PodAnnotations:       pod.Annotations,
		NodeName:             s.cfg.NodeName,
		NodeLabels:           node.Labels,
		NamespaceLabels:      ns.Labels,
		NamespaceAnnotations: ns.Annotations,
		IfName:               args.IfName,
		DefaultIPv4Pools:     args.DefaultIPv4IPPool,
		DefaultIPv6Pools:     args.DefaultIPv6IPPool,
		CleanGateway:         args.CleanGateway,
		Controller:           s.topController(ctx, pod),
	}, nil
}

// nicsToAllocate returns the interfaces one ADD for ifName allocates: with
// ipam.spidernet.io/ippools naming ifName, every interface the annotation
// names pools for and ep does not record yet, in annotation order (the
// first NIC's call allocates them all, SPEC.md 3.6); otherwise ifName.
func nicsToAllocate(pod *corev1.Pod, ifName string, ep *v2beta1.SpiderEndpoint) ([]string, error) {
	v, ok := pod.Annotations[v2beta1.AnnoPodIPPools]
	if !ok {
		return []string{ifName}, nil
	}
	list, err := ipam.ParseInterfacePools(v)
	if err != nil {
		return nil, err
	}
	named := func(e ipam.InterfacePools) bool { return len(e.IPv4) > 0 || len(e.IPv6) > 0 }
	if !slices.ContainsFunc(list, func(e ipam.InterfacePools) bool { return e.Interface == ifName && named(e) }) {
		return []string{ifName}, nil
	}
	var out []string
	for _, e := range list {
		if named(e) && findNIC(ep, e.Interface) == nil {
			out = append(out, e.Interface)
		}
	}
	return out, nil
}

// allocate asks the core for each of nics in turn. The CNI configuration's
// defaults and clean_gateway belong to the asked interface only; the
// others take theirs from the annotation. Each call is told the addresses
// of the pod's other interfaces so that it never mistakes one of them for
// a retry of its own. It returns the entries allocated and every address
// handed out, also when it fails half way.
func (s *Server) allocate(ctx context.Context, base *ipam.Request, args *v1.IpamAddArgs, nics []string, ep *v2beta1.SpiderEndpoint) ([]v2beta1.IPAllocationDetail, []ipam.PoolIP, error) {
	var (
		details []v2beta1.IPAllocationDetail
		held    []ipam.PoolIP
		others  = referenced(ep)
	)
	for _, nic := range nics {
		req := *base
		req.IfName = nic
		if nic != args.IfName {
			req.DefaultIPv4Pools, req.DefaultIPv6Pools, req.CleanGateway = nil, nil, false
		}
		req.OtherNICIPs = slices.Clone(others)
		res, err := s.ipam.Allocate(ctx, &req)
		if err != nil {
			return details, held, err
		}
		for _, c := range res.IPs {
			addr := c.Address.Addr()
			held = append(held, ipam.PoolIP{Pool: c.Pool, Addr: addr})
			others = append(others, addr)
		}
		details = append(details, detailOf(res))
	}
	return details, held, nil
}

// takesOver reports whether the pod controlled by ctrl takes over the
// addresses of ep, the endpoint of an earlier incarnation: only with
// ipam.enableStatefulSet, for an apps/v1 StatefulSet, and not when the
// endpoint is already being deleted (whoever deletes it releases its UID's
// records).
func (s *Server) takesOver(ctrl ipam.Controller, ep *v2beta1.SpiderEndpoint) bool {
	return s.cfg.EnableStatefulSet && ctrl.Kind == kindStatefulSet && ctrl.APIVersion == appsv1.SchemeGroupVersion.String() && ep.DeletionTimestamp == nil
}

// takeOver hands the addresses of ep, the endpoint of an earlier
// incarnation of a StatefulSet pod, to the pod of base (SPEC.md 3.7). An
// interface keeps its addresses when each recorded pool is still among the
// candidates the pod would be given now (ipam.Select and ipam.Filter) and
// the old UID still holds the record: the record is rewritten to the new
// UID (one UpdatePool per pool), and the endpoint's UID and node are
// rewritten keeping those interfaces. Whatever else the old UID holds in
// the endpoint's pools is released afterwards, so the interfaces dropped
// get new addresses through the ordinary allocation. A retry finds the
// records already moved and goes on. If the endpoint cannot be written the
// records moved are moved back, and the error (a Conflict or NotFound when
// the endpoint changed meanwhile) is returned. After the takeover the old
// UID holds none of the kept addresses, so its late DEL frees nothing of
// the new pod (invariant 8).
func (s *Server) takeOver(ctx context.Context, base *ipam.Request, ifName string, ep *v2beta1.SpiderEndpoint) (*v2beta1.SpiderEndpoint, error) {
	pools, err := s.pools.Pools(ctx)
	if err != nil {
		return nil, fmt.Errorf("list IPPools: %w", err)
	}
	oldOwner := ipam.Owner{Pod: base.Pod(), PodUID: ep.Status.Current.UID}
	newOwner := ipam.Owner{Pod: base.Pod(), PodUID: base.PodUID}

	// Plan: the addresses of every interface whose pools still qualify.
	var (
		keep   []v2beta1.IPAllocationDetail
		byPool = map[string][]netip.Addr{}
		order  []string
	)
	for _, d := range ep.Status.Current.IPs {
		ips, ok := s.stillCandidate(base, ifName, d, pools)
		if !ok {
			continue
		}
		keep = append(keep, d)
		for _, pi := range ips {
			if _, seen := byPool[pi.Pool]; !seen {
				order = append(order, pi.Pool)
			}
			byPool[pi.Pool] = append(byPool[pi.Pool], pi.Addr)
		}
	}

	// Move the records; an address the old UID no longer holds is lost,
	// and so is its interface.
	var moved, lost []ipam.PoolIP
	for _, pool := range order {
		var m, l []ipam.PoolIP
		err := s.pools.UpdatePool(ctx, pool, func(st *ipam.PoolState) error {
			m, l = nil, nil
			for _, a := range byPool[pool] {
				switch o, ok := st.Record(a); {
				case ok && o.PodUID == newOwner.PodUID: // moved by an earlier attempt
				case st.Transfer(a, oldOwner, newOwner):
					m = append(m, ipam.PoolIP{Pool: pool, Addr: a})
				default:
					l = append(l, ipam.PoolIP{Pool: pool, Addr: a})
				}
			}
			return nil
		})
		if errors.Is(err, ipam.ErrPoolNotFound) {
			for _, a := range byPool[pool] {
				lost = append(lost, ipam.PoolIP{Pool: pool, Addr: a})
			}
			continue
		}
		if err != nil {
			err = fmt.Errorf("take over addresses of pod UID %s in IPPool %q: %w", oldOwner.PodUID, pool, err)
			return nil, errors.Join(err, s.transferBack(ctx, moved, newOwner, oldOwner))
		}
		moved, lost = append(moved, m...), append(lost, l...)
	}
	var stray []ipam.PoolIP // moved, but its interface lost another address
	if len(lost) > 0 {
		keep = slices.DeleteFunc(keep, func(d v2beta1.IPAllocationDetail) bool {
			ips := detailIPs(d)
			if !slices.ContainsFunc(ips, func(pi ipam.PoolIP) bool { return slices.Contains(lost, pi) }) {
				return false
			}
			for _, pi := range ips {
				if !slices.Contains(lost, pi) {
					stray = append(stray, pi)
				}
			}
			return true
		})
	}

	upd := ep.DeepCopy()
	upd.OwnerReferences = nil // the endpoint outlives the pod (newEndpoint)
	upd.Status.Current.UID = base.PodUID
	upd.Status.Current.Node = s.cfg.NodeName
	upd.Status.Current.IPs = keep
	upd.Status.OwnerControllerType, upd.Status.OwnerControllerName = base.Controller.Kind, base.Controller.Name
	controllerutil.AddFinalizer(upd, v2beta1.Finalizer)
	if err := s.live.Update(ctx, upd); err != nil {
		err = fmt.Errorf("take over SpiderEndpoint %s/%s: %w", ep.Namespace, ep.Name, err)
		return nil, errors.Join(err, s.transferBack(ctx, moved, newOwner, oldOwner))
	}

	// The old UID's leftovers (interfaces not kept, records of an
	// interrupted ADD) and the addresses moved in vain. A failure here
	// leaves records of pods that are gone, which garbage collection
	// reclaims; the answer stands.
	release := func(uid string, ips []ipam.PoolIP) {
		if len(ips) == 0 {
			return
		}
		if err := s.releaseDetached(ctx, uid, ips); err != nil {
			s.log.Warn("release addresses not taken over", keyPod, base.Pod(), keyPodUID, uid, keyError, err)
		}
	}
	release(oldOwner.PodUID, endpointPools(ep))
	release(newOwner.PodUID, stray)
	return upd, nil
}

// stillCandidate reports whether interface d of an earlier incarnation's
// endpoint may keep its addresses under the pod's current request, and
// returns them. Each enabled family that has candidate pools needs an
// address whose pool is still a candidate that passes the filters; an
// address of a disabled family drops the interface. For an interface other than ifName the CNI configuration
// is unknown here: when its pools would come from that configuration or
// the cluster defaults, only the filters are checked on the recorded pool.
func (s *Server) stillCandidate(base *ipam.Request, ifName string, d v2beta1.IPAllocationDetail, pools []*v2beta1.SpiderIPPool) ([]ipam.PoolIP, bool) {
	req := *base
	req.IfName = d.NIC
	if d.NIC != ifName {
		req.DefaultIPv4Pools, req.DefaultIPv6Pools, req.CleanGateway = nil, nil, false
	}
	cfg := s.cfg.ipamConfig()
	sel, selErr := ipam.Select(&req, &cfg, pools)
	if selErr != nil && d.NIC == ifName {
		return nil, false
	}
	decisive := selErr == nil && (d.NIC == ifName || sel.Rule < ipam.RuleCNIConfig)
	var out []ipam.PoolIP
	for _, fam := range []struct {
		version    int
		enabled    bool
		addr, pool *string
	}{{4, cfg.EnableIPv4, d.IPv4, d.IPv4Pool}, {6, cfg.EnableIPv6, d.IPv6, d.IPv6Pool}} {
		addr, ok := parseAddrPrefix(fam.addr)
		if !fam.enabled {
			if ok { // an address of a disabled family drops the interface
				return nil, false
			}
			continue
		}
		if !ok {
			// An enabled family no rule gives a pool of is skipped (IPv4-only pools under the
			// chart's default enableIPv6=true); one the pod's rules do give a pool of now needs
			// an address the old incarnation did not have.
			if decisive && len(sel.Pools(fam.version)) > 0 {
				return nil, false
			}
			continue
		}
		name := deref(fam.pool)
		var cands []*v2beta1.SpiderIPPool
		if decisive {
			cands = sel.Pools(fam.version)
		} else if i := slices.IndexFunc(pools, func(p *v2beta1.SpiderIPPool) bool { return p.Name == name }); i >= 0 {
			cands = pools[i : i+1]
		}
		if !slices.ContainsFunc(cands, func(p *v2beta1.SpiderIPPool) bool { return p.Name == name }) {
			return nil, false
		}
		kept, err := ipam.Filter(&req, &cfg, fam.version, cands)
		if err != nil || !slices.ContainsFunc(kept, func(p *v2beta1.SpiderIPPool) bool { return p.Name == name }) {
			return nil, false
		}
		out = append(out, ipam.PoolIP{Pool: name, Addr: addr})
	}
	return out, len(out) > 0
}

// transferBack undoes the moves of a takeover that failed, so that the old
// incarnation's endpoint and records agree again. It runs even when ctx is
// done.
func (s *Server) transferBack(ctx context.Context, moved []ipam.PoolIP, from, to ipam.Owner) error {
	if len(moved) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	byPool := map[string][]netip.Addr{}
	var order []string
	for _, pi := range moved {
		if _, seen := byPool[pi.Pool]; !seen {
			order = append(order, pi.Pool)
		}
		byPool[pi.Pool] = append(byPool[pi.Pool], pi.Addr)
	}
	var errs []error
	for _, pool := range order {
		err := s.pools.UpdatePool(rctx, pool, func(st *ipam.PoolState) error {
			for _, a := range byPool[pool] {
				st.Transfer(a, from, to)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
			errs = append(errs, fmt.Errorf("give addresses back to pod UID %s in IPPool %q: %w", to.PodUID, pool, err))
		}
	}
	return errors.Join(errs...)
}
