package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// This file is the ADD, in the order it runs: add and addOnce, then the
// function of each step in turn, then the cleanup of addresses not kept.

// cleanupTimeout bounds the release of addresses a failed or retried ADD
// holds but does not keep; it runs even when the request's context is done.
const cleanupTimeout = 10 * time.Second

// maxWriteAttempts bounds the re-reads after write conflicts on one
// endpoint; only this agent writes a pod's endpoint while the pod runs
// here, so conflicts come from a lagging cache and one re-read settles them.
const maxWriteAttempts = 5

// addition is one ADD: the request, the pod it resolved to, and every
// address the IPAM core has handed out to it so far.
type addition struct {
	args *v1.IpamAddArgs
	key  client.ObjectKey
	pod  *corev1.Pod
	base *ipam.Request
	held []ipam.PoolIP
}

// add answers POST /v1/ipam/ip: the addresses of one interface of one pod.
//
// The pod's SpiderEndpoint is the record of what each interface was given.
// The steps:
//
//  1. Resolve the pod: the requested incarnation (UID), alive, on this node.
//  2. Read its endpoint and make it this incarnation's: a StatefulSet pod
//     takes over the endpoint of an earlier incarnation (statefulset.go);
//     any other earlier incarnation's endpoint is retired. An interface the
//     endpoint lists is answered from it once the live endpoint and the
//     pools confirm the entry (confirmEntry: a retried ADD, or the ADD after
//     a DEL the informer has not seen yet, which must not get the address
//     that DEL freed); a stale entry is dropped and the interface allocated
//     afresh.
//  3. Plan the interfaces to allocate: with ipam.spidernet.io/ippools, every
//     listed interface the endpoint lacks (docs/design/behaviour.md#dual-stack-and-multiple-nics).
//  4. Allocate them.
//  5. Persist them in the endpoint.
//  6. Answer from the endpoint's entry.
//
// Steps 2 to 5 are one attempt (addOnce). The endpoint is first read from
// the cache, which may lag behind this agent's own last write; an attempt
// that loses to the API (AlreadyExists, Conflict, an endpoint changed since
// it was read) is repeated against a live read, up to maxWriteAttempts.
// Addresses handed out on the way that the final endpoint does not record
// are released before answering, so neither a lost race nor a failure leaks
// one (and an address the endpoint records is never released, even if the
// IPAM core handed it out again).
func (s *Server) add(ctx context.Context, args *v1.IpamAddArgs) (_ *v1.IpamAddResponse, err error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AllocateTimeout)
	defer cancel()
	a := &addition{args: args, key: client.ObjectKey{Namespace: args.PodNamespace, Name: args.PodName}}
	unlock, err := s.locks.lock(ctx, a.key.String())
	if err != nil {
		return nil, err
	}
	defer unlock()

	// 1. Resolve the pod. The pods of a KubeVirt VM share the endpoint and
	// the records of its VMI (kubevirt.go).
	if a.pod, a.base, err = s.resolvePod(ctx, a.key, args); err != nil {
		return nil, err
	}
	if vmi := s.staticVMI(a.base.Controller); vmi != "" {
		a.key.Name, a.base.PodName = vmi, vmi
	}

	// Undo: on failure, release what the core handed out and the endpoint
	// does not keep.
	defer func() {
		if err != nil {
			err = s.abandon(ctx, a.key, args.PodUID, a.held, err)
		}
	}()

	// 2-5. The endpoint, the plan, the allocation and the write, attempted
	// again while the endpoint changes under us.
	var ep *v2beta1.SpiderEndpoint
	for attempt := 1; ; attempt++ {
		var again bool
		ep, again, err = s.addOnce(ctx, a, attempt)
		if !again || attempt == maxWriteAttempts {
			break
		}
	}
	if err != nil {
		return nil, err
	}

	// 6. Answer. An address handed out by an attempt the endpoint does not
	// record (a lost race) is released; the answer stands whatever happens,
	// since the pod's DEL releases whatever is left of its UID.
	if extra := unreferenced(a.held, ep); len(extra) > 0 {
		if err := s.releaseDetached(ctx, args.PodUID, extra); err != nil {
			s.log.Warn("release addresses handed out twice", keyPod, a.key.String(), keyPodUID, args.PodUID, keyError, err)
		}
	}
	return s.migrationTarget(withDNS(s.response(findNIC(ep, args.IfName)), a.pod), a), nil
}

// addOnce is one attempt of steps 2 to 5 of add. It reads the endpoint from
// the cache on the first attempt and from the API after. It returns the
// endpoint that records the interface, or again when the endpoint changed
// under it and another attempt should start from a live read, with err the
// cause, which add returns when no attempt is left. Every address the core
// hands out is added to a.held, also on failure.
func (s *Server) addOnce(ctx context.Context, a *addition, attempt int) (_ *v2beta1.SpiderEndpoint, again bool, _ error) {
	from, last := fromCache, attempt >= maxWriteAttempts
	switch {
	case attempt > 1:
		from = fromLive
	case s.mayTakeOver(a.base.Controller):
		// The endpoint to take over may have been written on another node, whose endpoints
		// this agent's informer does not hold: a miss is read live. Other pods' endpoints are
		// this node's, and a stale one of an earlier incarnation elsewhere surfaces as the
		// create's AlreadyExists, after which the next attempt reads live.
		from = fromCacheOrLive
	}

	// 2. The endpoint, made this incarnation's.
	ep, err := s.getEndpoint(ctx, a.key, from)
	if err != nil {
		return nil, false, err
	}
	if ep != nil && ep.Status.Current.UID != a.args.PodUID {
		if s.takesOver(a.base.Controller, ep) {
			if ep, err = s.takeOver(ctx, a.base, a.args.IfName, ep); err != nil {
				return nil, apierrors.IsNotFound(err) || apierrors.IsConflict(err), err
			}
		} else {
			// Another incarnation's endpoint: release its records and
			// start afresh.
			if err := s.retire(ctx, ep); err != nil {
				return nil, false, err
			}
			ep = nil
		}
	}
	// 2b. An interface the endpoint records, confirmed by the pools.
	if d := findNIC(ep, a.args.IfName); d != nil {
		err := s.confirmEntry(ctx, ep, d, from)
		switch {
		case err == nil:
			return ep, false, nil
		case errors.Is(err, errEndpointMoved):
			return nil, true, err
		case !errors.Is(err, errEntryStale) || last:
			return nil, false, err
		}
		s.log.Warn("allocating an interface afresh: its SpiderEndpoint entry is stale", keyPod, a.key.String(),
			keyPodUID, a.args.PodUID, "interface", a.args.IfName, keyError, err)
		if derr := s.dropEntry(ctx, a.key, a.args.PodUID, a.args.IfName); derr != nil {
			return nil, false, derr
		}
		return nil, true, err
	}

	// 3. Plan the interfaces.
	nics, err := nicsToAllocate(a.pod, a.args.IfName, ep)
	if err != nil {
		return nil, false, err
	}

	// 4. Allocate.
	details, got, err := s.allocate(ctx, a.base, a.args, nics, ep)
	a.held = append(a.held, got...)
	if err != nil {
		return nil, false, err
	}

	// 5. Persist.
	written, err := s.persist(ctx, a.key, a.pod, a.base.Controller, ep, details)
	if err != nil {
		return nil, apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err), err
	}
	return written, false, nil
}

// Step 1: the pod.

// resolvePod returns the pod key of args, which must be the requested
// incarnation, alive, and bound to this node or to none yet, and the
// request the IPAM core gets for it.
func (s *Server) resolvePod(ctx context.Context, key client.ObjectKey, args *v1.IpamAddArgs) (*corev1.Pod, *ipam.Request, error) {
	pod, err := s.pod(ctx, args.PodNamespace, args.PodName, args.PodUID)
	if err != nil {
		return nil, nil, err
	}
	if !workload.PodAlive(pod) {
		return nil, nil, deadPod(pod)
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != s.cfg.NodeName {
		return nil, nil, &reasonError{ErrInvalidRequest, fmt.Sprintf("pod %s runs on node %s, not on node %s of this agent",
			key, pod.Spec.NodeName, s.cfg.NodeName)}
	}
	base, err := s.request(ctx, pod, args)
	if err != nil {
		return nil, nil, err
	}
	// Checked before anything is allocated: the DNS annotation (dns.go)
	// and, for match_master_subnet, the master the request carries (master.go).
	if _, err := podDNS(pod); err != nil {
		return nil, nil, err
	}
	if base.Master, err = requestMaster(args); err != nil {
		return nil, nil, err
	}
	return pod, base, nil
}

// pod returns the pod namespace/name whose UID is uid. The cache may still
// hold an older incarnation of a recreated pod, so a UID mismatch there is
// checked against the API before it is believed.
func (s *Server) pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	pod := &corev1.Pod{}
	err := s.cache.Get(ctx, key, pod)
	switch {
	case err == nil && string(pod.UID) == uid:
		return pod, nil
	case err == nil || apierrors.IsNotFound(err):
		if err := s.live.Get(ctx, key, pod); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &reasonError{ErrNotFound, fmt.Sprintf("pod %s/%s not found", namespace, name)}
			}
			return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
		}
	default:
		return nil, fmt.Errorf("get pod %s/%s from cache: %w", namespace, name, err)
	}
	if string(pod.UID) != uid {
		return nil, &reasonError{ErrNotFound, fmt.Sprintf(
			"pod %s/%s has UID %s, not %s: the requested pod incarnation no longer exists", namespace, name, pod.UID, uid)}
	}
	return pod, nil
}

func deadPod(pod *corev1.Pod) error {
	// Upstream's text, typo included: users and tests search for it.
	return &reasonError{ErrDeadPod, fmt.Sprintf("dead Pod %s/%s, we cannot allocate IP addresees to it", pod.Namespace, pod.Name)}
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
	ctrl, err := workload.TopController(ctx, s.live, pod, &s.owners)
	if err != nil {
		// The owner itself stands in (TopController).
		s.log.Debug("look up owner of pod", keyPod, pod.Namespace+"/"+pod.Name, slog.String("owner", ctrl.Kind+"/"+ctrl.Name), keyError, err)
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
		Controller:           ctrl,
	}, nil
}

// Step 2: an entry of the endpoint, confirmed.

// An ADD that finds its interface in the pod's SpiderEndpoint answers with the addresses recorded
// there, but only once they are confirmed: the endpoint read from the informer may be one a DEL
// has already released and deleted (the kubelet's DEL then ADD of a sandbox re-creation, with the
// informer seconds behind), and answering from it would hand out an address the pool no longer
// records for the pod, which the next allocation on the node then gives to another pod.
var (
	// errEndpointMoved: the live endpoint differs from the one read; read it again live.
	errEndpointMoved = errors.New("the SpiderEndpoint changed since it was read")
	// errEntryStale: the pool no longer records the entry's address for the pod, or the address
	// is quarantined after an IP conflict; the entry must be replaced.
	errEntryStale = errors.New("the SpiderEndpoint entry is not backed by its pool")
)

// confirmEntry checks the entry d of ep for interface d.NIC: that the live endpoint still holds
// it (when ep was read from the cache), that no address is quarantined, and that each pool
// records each address for the pod's UID. The pool check runs through the store, whose view of a
// pool includes this agent's own writes (its DELs) before the informer has them.
func (s *Server) confirmEntry(ctx context.Context, ep *v2beta1.SpiderEndpoint, d *v2beta1.IPAllocationDetail, from readFrom) error {
	if from != fromLive {
		live, err := s.getEndpoint(ctx, client.ObjectKeyFromObject(ep), fromLive)
		if err != nil {
			return err
		}
		if live == nil || live.Status.Current.UID != ep.Status.Current.UID {
			return errEndpointMoved
		}
		if ld := findNIC(live, d.NIC); ld == nil || !reflect.DeepEqual(*ld, *d) {
			return errEndpointMoved
		}
	}
	uid := ep.Status.Current.UID
	for _, pi := range detailIPs(*d) {
		if s.quarantine.Holds(pi.Addr) {
			return fmt.Errorf("%w: %s is quarantined after an IP conflict", errEntryStale, pi.Addr)
		}
		err := s.pools.UpdatePool(ctx, pi.Pool, func(st *ipam.PoolState) error {
			if o, ok := st.Record(pi.Addr); !ok || o.PodUID != uid {
				return fmt.Errorf("%w: pool %s has no record of %s for pod UID %s", errEntryStale, pi.Pool, pi.Addr, uid)
			}
			return nil
		})
		if errors.Is(err, ipam.ErrPoolNotFound) {
			return fmt.Errorf("%w: pool %s of %s is gone", errEntryStale, pi.Pool, pi.Addr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dropEntry releases what the pool still records of interface nic's entry in the live endpoint
// key of pod UID uid and removes the entry from the endpoint (the endpoint itself when it was the
// last one), so that the next attempt allocates the interface afresh. An endpoint that is gone or
// of another UID is left alone.
func (s *Server) dropEntry(ctx context.Context, key client.ObjectKey, uid, nic string) error {
	ep, err := s.getEndpoint(ctx, key, fromLive)
	if err != nil || ep == nil || ep.Status.Current.UID != uid {
		return err
	}
	d := findNIC(ep, nic)
	if d == nil {
		return nil
	}
	if ips := detailIPs(*d); len(ips) > 0 {
		if err := s.ipam.Release(ctx, &ipam.ReleaseRequest{PodUID: ep.Status.Current.UID, IPs: ips}); err != nil {
			return fmt.Errorf("release the stale entry %s of SpiderEndpoint %s/%s: %w", nic, ep.Namespace, ep.Name, err)
		}
	}
	if len(ep.Status.Current.IPs) == 1 {
		return s.removeEndpoint(ctx, ep)
	}
	upd := ep.DeepCopy()
	upd.Status.Current.IPs = upd.Status.Current.IPs[:0]
	for _, e := range ep.Status.Current.IPs {
		if e.NIC != nic {
			upd.Status.Current.IPs = append(upd.Status.Current.IPs, e)
		}
	}
	if err := s.live.Update(ctx, upd); err != nil {
		return fmt.Errorf("drop the stale entry %s of SpiderEndpoint %s/%s: %w", nic, ep.Namespace, ep.Name, err)
	}
	return nil
}

// Step 3: the plan.

// nicsToAllocate returns the interfaces one ADD for ifName allocates: with
// ipam.spidernet.io/ippools naming ifName, every interface the annotation
// names pools for and ep does not record yet, in annotation order (the
// first NIC's call allocates them all, docs/design/behaviour.md#dual-stack-and-multiple-nics); otherwise ifName.
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

// Step 4: the allocation.

// allocate asks the core for each of nics in turn. The CNI configuration's
// defaults, clean_gateway and match_master_subnet belong to the asked
// interface only; the others take theirs from the annotation. Each call
// is told the addresses of the pod's other interfaces so that it never
// mistakes one of them for a retry of its own. It returns the entries allocated and every address
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
			req.DefaultIPv4Pools, req.DefaultIPv6Pools, req.CleanGateway, req.Master = nil, nil, false, nil
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

// detailOf records an allocation result as an endpoint entry: the
// addresses with their prefix, pools and gateways, and every route
// returned (the pools' routes, then those of ipam.spidernet.io/routes).
func detailOf(res *ipam.Result) v2beta1.IPAllocationDetail {
	d := v2beta1.IPAllocationDetail{NIC: res.NIC, CleanGateway: new(res.CleanGateway)}
	var routes []v2beta1.Route
	for _, c := range res.IPs {
		addr, pool := new(c.Address.String()), new(c.Pool)
		var gw *string
		if c.Gateway.IsValid() {
			gw = new(c.Gateway.String())
		}
		if c.Version == 4 {
			d.IPv4, d.IPv4Pool, d.IPv4Gateway = addr, pool, gw
		} else {
			d.IPv6, d.IPv6Pool, d.IPv6Gateway = addr, pool, gw
		}
		if c.Vlan != 0 && d.Vlan == nil {
			d.Vlan = new(c.Vlan)
		}
		for _, r := range c.Routes {
			routes = append(routes, v2beta1.Route{Dst: r.Dst.String(), Gw: r.Gw.String()})
		}
	}
	for _, r := range res.Routes {
		routes = append(routes, v2beta1.Route{Dst: r.Dst.String(), Gw: r.Gw.String()})
	}
	d.Routes = routes
	return d
}

// Step 5: the endpoint written.

// newEndpoint returns the endpoint of pod's first allocation. It is owned
// by the pod (not as controller, and without blocking the pod's deletion)
// so that the API garbage collector marks it for deletion with the pod;
// the finalizer keeps it until its addresses are released. A StatefulSet
// pod's endpoint has no owner when StatefulSet handling is on, because it
// must outlive the pod.
func (s *Server) newEndpoint(key client.ObjectKey, pod *corev1.Pod, ctrl ipam.Controller) *v2beta1.SpiderEndpoint {
	ep := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:  key.Namespace,
			Name:       key.Name,
			Finalizers: []string{v2beta1.Finalizer},
		},
		Status: v2beta1.WorkloadEndpointStatus{
			Current:             v2beta1.PodIPAllocation{UID: string(pod.UID), Node: s.cfg.NodeName},
			OwnerControllerType: ctrl.Kind,
			OwnerControllerName: ctrl.Name,
		},
	}
	if !(s.cfg.EnableStatefulSet && ctrl.Kind == workload.KindStatefulSet) && s.staticVMI(ctrl) == "" {
		ep.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         "v1",
			Kind:               workload.KindPod,
			Name:               pod.Name,
			UID:                pod.UID,
			Controller:         new(false),
			BlockOwnerDeletion: new(false),
		}}
	}
	return ep
}

// persist records the entries add in pod's endpoint: it creates the
// endpoint when ep is nil and updates ep otherwise, with ep's
// resourceVersion. A write that lost a race fails with an AlreadyExists or
// Conflict API error; the caller re-reads and re-plans.
func (s *Server) persist(ctx context.Context, key client.ObjectKey, pod *corev1.Pod, ctrl ipam.Controller, ep *v2beta1.SpiderEndpoint, add []v2beta1.IPAllocationDetail) (*v2beta1.SpiderEndpoint, error) {
	if ep == nil {
		ep = s.newEndpoint(key, pod, ctrl)
		ep.Status.Current.IPs = add
		if err := s.live.Create(ctx, ep); err != nil {
			return nil, fmt.Errorf("create SpiderEndpoint %s/%s: %w", ep.Namespace, ep.Name, err)
		}
		return ep, nil
	}
	upd := ep.DeepCopy()
	upd.Status.Current.IPs = append(upd.Status.Current.IPs, add...)
	upd.Status.Current.Node = s.cfg.NodeName
	if upd.DeletionTimestamp == nil {
		controllerutil.AddFinalizer(upd, v2beta1.Finalizer)
	}
	if err := s.live.Update(ctx, upd); err != nil {
		return nil, fmt.Errorf("update SpiderEndpoint %s/%s: %w", ep.Namespace, ep.Name, err)
	}
	return upd, nil
}

// Step 6: the answer.

// response is the answer for one interface, built from its endpoint entry
// whether it was allocated just now or earlier.
func (s *Server) response(d *v2beta1.IPAllocationDetail) *v1.IpamAddResponse {
	resp := &v1.IpamAddResponse{}
	var vlan int64
	if d.Vlan != nil {
		vlan = *d.Vlan
	}
	for _, fam := range []struct {
		version        int64
		addr, pool, gw *string
	}{{4, d.IPv4, d.IPv4Pool, d.IPv4Gateway}, {6, d.IPv6, d.IPv6Pool, d.IPv6Gateway}} {
		if fam.addr == nil || *fam.addr == "" {
			continue
		}
		c := v1.IPConfig{
			Version:                   fam.version,
			Address:                   *fam.addr,
			IPPool:                    deref(fam.pool),
			Gateway:                   deref(fam.gw),
			Nic:                       d.NIC,
			Vlan:                      vlan,
			EnableIPConflictDetection: s.cfg.EnableIPConflictDetection,
		}
		// Probing a gateway the interface was not given makes no sense.
		c.EnableGatewayDetection = s.cfg.EnableGatewayDetection && c.Gateway != ""
		if d.MAC != nil {
			c.Mac = *d.MAC
		}
		resp.IPs = append(resp.IPs, c)
	}
	for _, r := range d.Routes {
		resp.Routes = append(resp.Routes, v1.Route{IfName: d.NIC, Dst: r.Dst, Gw: r.Gw})
	}
	return resp
}

// Cleanup.

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
