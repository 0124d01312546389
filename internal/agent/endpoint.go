package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// getCachedOrLive reads key into obj from the cache and, when the cache has
// not seen it yet (new objects race the informers), from the API.
func (s *Server) getCachedOrLive(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := s.cache.Get(ctx, key, obj)
	if !apierrors.IsNotFound(err) {
		return err
	}
	return s.live.Get(ctx, key, obj)
}

// readFrom says where getEndpoint reads.
type readFrom int

const (
	fromCache       readFrom = iota // the informer only: fast, may lag
	fromCacheOrLive                 // the API when the informer has not seen it
	fromLive                        // the API: after a write conflict
)

// getEndpoint returns the SpiderEndpoint key, or nil when there is none.
func (s *Server) getEndpoint(ctx context.Context, key client.ObjectKey, from readFrom) (*v2beta1.SpiderEndpoint, error) {
	ep := &v2beta1.SpiderEndpoint{}
	var err error
	switch from {
	case fromCache:
		err = s.cache.Get(ctx, key, ep)
	case fromCacheOrLive:
		err = s.getCachedOrLive(ctx, key, ep)
	case fromLive:
		err = s.live.Get(ctx, key, ep)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get SpiderEndpoint %s: %w", key, err)
	}
	return ep, nil
}

// findNIC returns the entry of interface nic, or nil.
func findNIC(ep *v2beta1.SpiderEndpoint, nic string) *v2beta1.IPAllocationDetail {
	if ep == nil {
		return nil
	}
	for i := range ep.Status.Current.IPs {
		if ep.Status.Current.IPs[i].NIC == nic {
			return &ep.Status.Current.IPs[i]
		}
	}
	return nil
}

// endpointIPs returns the addresses an endpoint records with their pools;
// entries that do not parse are skipped.
func endpointIPs(ep *v2beta1.SpiderEndpoint) []ipam.PoolIP {
	if ep == nil {
		return nil
	}
	var out []ipam.PoolIP
	for _, d := range ep.Status.Current.IPs {
		out = append(out, detailIPs(d)...)
	}
	return out
}

// detailIPs returns the addresses of one endpoint entry with their pools;
// entries that do not parse are skipped.
func detailIPs(d v2beta1.IPAllocationDetail) []ipam.PoolIP {
	var out []ipam.PoolIP
	for _, fam := range [][2]*string{{d.IPv4, d.IPv4Pool}, {d.IPv6, d.IPv6Pool}} {
		addr, ok := parseAddrPrefix(fam[0])
		if !ok || fam[1] == nil || *fam[1] == "" {
			continue
		}
		out = append(out, ipam.PoolIP{Pool: *fam[1], Addr: addr})
	}
	return out
}

// endpointPools returns the pools an endpoint names, each with a zero
// address: releasing them frees every record the endpoint's UID holds
// there, including any an interrupted ADD left behind.
func endpointPools(ep *v2beta1.SpiderEndpoint) []ipam.PoolIP {
	var out []ipam.PoolIP
	for _, d := range ep.Status.Current.IPs {
		for _, pool := range []*string{d.IPv4Pool, d.IPv6Pool} {
			if pi := (ipam.PoolIP{Pool: deref(pool)}); pi.Pool != "" && !slices.Contains(out, pi) {
				out = append(out, pi)
			}
		}
	}
	return out
}

// parseAddrPrefix reads "addr/prefix" (or a bare address) from an endpoint.
func parseAddrPrefix(s *string) (netip.Addr, bool) {
	if s == nil || *s == "" {
		return netip.Addr{}, false
	}
	if p, err := netip.ParsePrefix(*s); err == nil {
		return p.Addr(), true
	}
	a, err := ip.ParseAddr(*s)
	return a, err == nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// removeEndpoint removes the finalizer of ep and deletes it. An endpoint
// that is already gone, or that was replaced by another object of the same
// name meanwhile, is left alone.
func (s *Server) removeEndpoint(ctx context.Context, ep *v2beta1.SpiderEndpoint) error {
	cur := ep
	for attempt := 0; controllerutil.ContainsFinalizer(cur, v2beta1.Finalizer); attempt++ {
		upd := cur.DeepCopy()
		controllerutil.RemoveFinalizer(upd, v2beta1.Finalizer)
		err := s.live.Update(ctx, upd)
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		if !apierrors.IsConflict(err) || attempt+1 >= maxWriteAttempts {
			return fmt.Errorf("remove finalizer of SpiderEndpoint %s/%s: %w", ep.Namespace, ep.Name, err)
		}
		fresh, err := s.getEndpoint(ctx, client.ObjectKeyFromObject(ep), fromLive)
		if err != nil {
			return err
		}
		if fresh == nil || fresh.UID != ep.UID {
			return nil
		}
		cur = fresh
	}
	uid := ep.UID
	err := s.live.Delete(ctx, ep, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete SpiderEndpoint %s/%s: %w", ep.Namespace, ep.Name, err)
	}
	return nil
}

// retire releases the records of an endpoint left by another incarnation
// of the pod (matching that incarnation's UID only) and removes the
// endpoint, so that the current pod starts afresh.
func (s *Server) retire(ctx context.Context, ep *v2beta1.SpiderEndpoint) error {
	if pools := endpointPools(ep); len(pools) > 0 {
		if err := s.ipam.Release(ctx, &ipam.ReleaseRequest{PodUID: ep.Status.Current.UID, IPs: pools}); err != nil {
			return fmt.Errorf("release addresses of stale SpiderEndpoint %s/%s (UID %s): %w",
				ep.Namespace, ep.Name, ep.Status.Current.UID, err)
		}
	}
	return s.removeEndpoint(ctx, ep)
}

// workloadEndpoint answers GET /v1/workloadendpoint.
func (s *Server) workloadEndpoint(ctx context.Context, namespace, name string) (*v1.WorkloadEndpoint, error) {
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	ep, err := s.endpointOfPod(ctx, client.ObjectKey{Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	if ep == nil {
		return nil, &reasonError{ErrNotFound, fmt.Sprintf("SpiderEndpoint %s/%s not found", namespace, name)}
	}
	we := &v1.WorkloadEndpoint{
		PodNamespace: namespace,
		PodName:      name,
		PodUID:       ep.Status.Current.UID,
		Node:         ep.Status.Current.Node,
		Interfaces:   make([]v1.InterfaceEndpoint, 0, len(ep.Status.Current.IPs)),
	}
	for _, d := range ep.Status.Current.IPs {
		ie := v1.InterfaceEndpoint{
			Interface:   d.NIC,
			IPv4:        deref(d.IPv4),
			IPv6:        deref(d.IPv6),
			Mac:         deref(d.MAC),
			IPv4Pool:    deref(d.IPv4Pool),
			IPv6Pool:    deref(d.IPv6Pool),
			IPv4Gateway: deref(d.IPv4Gateway),
			IPv6Gateway: deref(d.IPv6Gateway),
		}
		if d.Vlan != nil {
			ie.Vlan = *d.Vlan
		}
		for _, r := range d.Routes {
			ie.Routes = append(ie.Routes, v1.Route{IfName: d.NIC, Dst: r.Dst, Gw: r.Gw})
		}
		we.Interfaces = append(we.Interfaces, ie)
	}
	return we, nil
}

// referenced returns the addresses ep records.
func referenced(ep *v2beta1.SpiderEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, pi := range endpointIPs(ep) {
		out = append(out, pi.Addr)
	}
	return out
}

// unreferenced returns the entries of held whose address ep does not record.
func unreferenced(held []ipam.PoolIP, ep *v2beta1.SpiderEndpoint) []ipam.PoolIP {
	keep := referenced(ep)
	var out []ipam.PoolIP
	for _, h := range held {
		if !slices.Contains(keep, h.Addr) && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
