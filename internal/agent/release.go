package agent

import (
	"context"
	"fmt"
	"net/netip"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// releaseArgs is a DEL of either form (one interface or all of them: both
// release every address of the pod UID, as upstream does).
type releaseArgs struct {
	namespace, name, uid string
	containerID, ifName  string
	// conflictIPs is IsReleaseConflictIPs: the plugin found an address in
	// use on the network and wants another one on the next ADD.
	conflictIPs bool
	// conflicts are the addresses another host answered for (ours, optional).
	conflicts []netip.Addr
}

// Outcomes of a release, for the log.
const (
	outcomeReleased      = "released"
	outcomeKeptForSts    = "kept for StatefulSet"
	outcomeKeptForVM     = "kept for KubeVirt VM"
	outcomeNothingToFree = "nothing held"
)

// release answers DELETE /v1/ipam/ip and /v1/ipam/ips (docs/design/behaviour.md#release-on-del). It
// releases every record of the pod UID (every interface) in the pools its
// SpiderEndpoint names or, without an endpoint of this UID, in the cached
// pools whose records mention the UID, then deletes the endpoint. An endpoint of another UID belongs to a newer
// incarnation and is left alone; release only ever removes records of uid,
// so a late DEL cannot free a newer pod's address. A StatefulSet pod that
// its StatefulSet will recreate keeps endpoint and addresses when
// EnableStatefulSet is on. Unknown pods and endpoints are not errors, and a
// repeated DEL succeeds.
func (s *Server) release(ctx context.Context, a *releaseArgs) (string, error) {
	if err := s.checkReady(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AllocateTimeout)
	defer cancel()
	key := client.ObjectKey{Namespace: a.namespace, Name: a.name}
	unlock, err := s.locks.lock(ctx, key.String())
	if err != nil {
		return "", err
	}
	defer unlock()

	ep, err := s.getEndpoint(ctx, key, fromCacheOrLive)
	if err != nil {
		return "", err
	}
	if ep != nil && ep.Status.Current.UID != a.uid {
		ep = nil
	}
	if ep == nil && s.cfg.EnableKubevirtStaticIP {
		// The pod of a KubeVirt VM: its VMI's endpoint names its UID (kubevirt.go).
		if ep, err = s.vmiEndpointOf(ctx, a.namespace, a.uid); err != nil {
			return "", err
		}
	}
	if vmi := workload.VMIOfEndpoint(ep); vmi != "" && s.cfg.EnableKubevirtStaticIP {
		keep, err := workload.VMWantsAddresses(ctx, s.live, a.namespace, vmi)
		if err != nil {
			return "", err
		}
		if keep {
			if a.conflictIPs {
				return "", &reasonError{ErrForbidden, fmt.Sprintf(
					"pod %s runs KubeVirt VM %s, which keeps its IP addresses: cannot release them for a conflict", key, vmi)}
			}
			return outcomeKeptForVM, nil
		}
	}
	// The endpoint names the StatefulSet: the DEL does not read the pod.
	if sts := workload.StatefulSetOf(nil, ep); sts != "" && s.cfg.EnableStatefulSet {
		keep, err := workload.StatefulSetWantsPod(ctx, s.live, a.namespace, sts, a.name)
		if err != nil {
			return "", err
		}
		if keep {
			if a.conflictIPs {
				return "", &reasonError{ErrForbidden, fmt.Sprintf(
					"pod %s belongs to StatefulSet %s and keeps its IP addresses: cannot release them for a conflict",
					key, sts)}
			}
			return outcomeKeptForSts, nil
		}
	}

	if a.conflictIPs && len(a.conflicts) > 0 && s.quarantine != nil {
		// Before the release: no allocation may hand them out in between.
		s.quarantine.Add(a.conflicts...)
		s.log.Warn("addresses in use outside Spiderpool held back from allocation",
			"pod", key.String(), "ips", a.conflicts, "for", s.cfg.ConflictQuarantine)
	}

	var ips []ipam.PoolIP
	if ep != nil {
		ips = endpointPools(ep)
	} else {
		// No endpoint names the pod's records: a crash between the pool
		// write and the endpoint write of an ADD, or an endpoint deleted by
		// hand. Find them by UID through the store's cache; a false positive
		// costs an update that changes nothing.
		holders, err := s.pools.Holders(ctx, a.uid)
		if err != nil {
			return "", fmt.Errorf("find the IPPools holding pod UID %s: %w", a.uid, err)
		}
		for _, name := range holders {
			ips = append(ips, ipam.PoolIP{Pool: name})
		}
	}
	outcome := outcomeNothingToFree
	if len(ips) > 0 {
		if err := s.ipam.Release(ctx, &ipam.ReleaseRequest{PodUID: a.uid, IPs: ips}); err != nil {
			return "", err
		}
		outcome = outcomeReleased
	}
	if ep != nil {
		if err := s.removeEndpoint(ctx, ep); err != nil {
			return "", err
		}
		outcome = outcomeReleased
	}
	return outcome, nil
}
