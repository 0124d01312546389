package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
// an interface it already lists for this pod UID is answered from it
// without touching any pool (a retried ADD). Otherwise the interface is
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
			// Another incarnation's endpoint: release its records and start
			// afresh. For a StatefulSet pod with ipam.enableStatefulSet this
			// is where the new incarnation should take over the old
			// addresses (SPEC.md 3.7); that reuse is not implemented yet, so
			// such a pod gets new addresses like a stateless one.
			if err := s.retire(ctx, ep); err != nil {
				return nil, s.abandon(ctx, key, args.PodUID, held, err)
			}
			ep = nil
		}
		if d := findNIC(ep, args.IfName); d != nil {
			final, entry = ep, d
			break
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
