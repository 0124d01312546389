package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

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

// dropEntry releases what the pool still records of interface nic's entry for the endpoint's
// UID and removes the entry from the endpoint (the endpoint itself when it was the last one), so
// that the ADD allocates the interface afresh.
func (s *Server) dropEntry(ctx context.Context, ep *v2beta1.SpiderEndpoint, nic string) error {
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
