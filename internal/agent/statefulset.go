package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// A StatefulSet pod's new incarnation keeps the addresses of the old one (docs/design/behaviour.md#statefulset-fixed-ips): when
// add finds the endpoint of an earlier incarnation, takesOver decides and takeOver moves the
// addresses to the new pod UID; every other earlier incarnation's endpoint is retired.

// takesOver reports whether the pod controlled by ctrl takes over the
// addresses of ep, the endpoint of an earlier incarnation: with
// ipam.enableStatefulSet, for an apps/v1 StatefulSet; with
// ipam.enableKubevirtStaticIP, for a KubeVirt VMI's next pod (kubevirt.go);
// and never when the endpoint is already being deleted (whoever deletes it
// releases its UID's records). The version is checked exactly, as it always was here, while
// workload.StatefulSetOf (the GC's and spiderpoolctl's test) accepts any
// version of the apps group; the StatefulSet controller writes apps/v1.
func (s *Server) takesOver(ctrl ipam.Controller, ep *v2beta1.SpiderEndpoint) bool {
	return ep.DeletionTimestamp == nil && s.mayTakeOver(ctrl)
}

// mayTakeOver reports whether a pod of ctrl takes over the endpoint of an earlier incarnation
// (takesOver, whatever the endpoint).
func (s *Server) mayTakeOver(ctrl ipam.Controller) bool {
	return (s.cfg.EnableStatefulSet && ctrl.Kind == workload.KindStatefulSet && ctrl.APIVersion == appsv1.SchemeGroupVersion.String()) ||
		s.staticVMI(ctrl) != "" // a KubeVirt VM's next pod (kubevirt.go)
}

// takeOver hands the addresses of ep, the endpoint of an earlier
// incarnation of a StatefulSet pod, to the pod of base (docs/design/behaviour.md#statefulset-fixed-ips). An
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
