package spiderpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// detectTimeout bounds all probes of one ADD.
const detectTimeout = 5 * time.Second

// finding is one failed check.
type finding struct {
	ip     v1.IPConfig
	holder net.HardwareAddr // conflict: who answered for the address
	gw     string           // unreachable gateway
}

// detect runs the checks the agent turned on for the addresses it answered
// (ipam.enableIPConflictDetection, ipam.enableGatewayDetection): no other host may answer for a
// pod address, and the pod's gateway must answer. The probes go out of the pod's interface, which
// main plugins such as macvlan and ipvlan create in the pod's namespace before they call IPAM; the
// address itself is not configured yet and need not be. A main plugin that calls IPAM before its
// interface exists leaves nothing to probe from: the checks are skipped with a warning.
//
// On a conflict every address of the pod is released with the conflicting ones named, so that
// the agent keeps those out of its next answers and the runtime's retry gets another address. On
// an unreachable gateway this interface's allocation is released and the ADD fails.
func detect(c *call, resp *v1.IpamAddResponse) error {
	var probe []v1.IPConfig
	for _, ipc := range resp.IPs {
		if ipc.EnableIPConflictDetection || (ipc.EnableGatewayDetection && ipc.Gateway != "") {
			probe = append(probe, ipc)
		}
	}
	if len(probe) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, detectTimeout)
	defer cancel()

	var conflicts, unreachable []finding
	err := netlinkx.WithNetNSPath(c.args.Netns, func(ns.NetNS) error {
		link, err := netlinkx.LinkByName(c.args.IfName)
		if netlinkx.IsLinkNotFound(err) {
			c.log.Warn("interface not in the pod yet: IP conflict and gateway detection skipped", "ifName", c.args.IfName)
			return nil
		}
		if err != nil {
			return err
		}
		mac := link.Attrs().HardwareAddr
		if len(mac) != 6 {
			c.log.Warn("not an Ethernet interface: IP conflict and gateway detection skipped", "ifName", c.args.IfName)
			return nil
		}
		if err := netlinkx.LinkUp(link); err != nil {
			return err
		}
		for _, ipc := range probe {
			addr, err := parseRecorded(ipc.Address)
			if err != nil {
				return fmt.Errorf("address %q of the agent's answer: %w", ipc.Address, err)
			}
			if ipc.EnableIPConflictDetection {
				holder, err := netlinkx.ProbeDuplicate(ctx, link.Attrs().Index, mac, addr.Addr())
				switch {
				case err == nil:
					conflicts = append(conflicts, finding{ip: ipc, holder: holder})
					continue
				case !errors.Is(err, netlinkx.ErrNoAnswer):
					return fmt.Errorf("probe %s for a conflict: %w", addr.Addr(), err)
				}
			}
			if ipc.EnableGatewayDetection && ipc.Gateway != "" {
				gw, err := netip.ParseAddr(ipc.Gateway)
				if err != nil {
					return fmt.Errorf("gateway %q of the agent's answer: %w", ipc.Gateway, err)
				}
				_, err = netlinkx.Resolve(ctx, link.Attrs().Index, mac, addr.Addr(), gw)
				switch {
				case errors.Is(err, netlinkx.ErrNoAnswer):
					unreachable = append(unreachable, finding{ip: ipc, gw: ipc.Gateway})
				case err != nil:
					return fmt.Errorf("probe gateway %s: %w", gw, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return failAfterRelease(c, types.NewError(types.ErrInternal, "IP conflict / gateway detection on "+c.args.IfName+": "+err.Error(), ""))
	}

	pod, _ := c.pod() // parsed before Allocate
	if len(conflicts) > 0 {
		var ips, parts []string
		for _, f := range conflicts {
			addr, _ := parseRecorded(f.ip.Address)
			ips = append(ips, addr.Addr().String())
			parts = append(parts, fmt.Sprintf("%s (IPPool %s) is already used by %s", addr.Addr(), f.ip.IPPool, f.holder))
		}
		msg := fmt.Sprintf("ip conflict on %s: %s", c.args.IfName, strings.Join(parts, "; "))
		c.log.Error("IP conflict", "ifName", c.args.IfName, "conflicts", parts)
		err := c.agent.ReleaseAll(c.ctx, &v1.IpamBatchDelArgs{
			IsReleaseConflictIPs: true, ConflictIPs: ips,
			ContainerID: c.args.ContainerID, NetNamespace: c.args.Netns,
			PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: pod.UID,
		})
		if err != nil && !isNotFound(err) {
			return types.NewError(types.ErrInternal, msg+"; releasing the pod's addresses failed: "+err.Error(), "")
		}
		return types.NewError(types.ErrTryAgainLater, msg+"; the addresses are released and held back, a retry gets others", "")
	}
	if len(unreachable) > 0 {
		var parts []string
		for _, f := range unreachable {
			parts = append(parts, fmt.Sprintf("gateway %s of %s (IPPool %s)", f.gw, f.ip.Address, f.ip.IPPool))
		}
		return failAfterRelease(c, types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("unreachable: %s did not answer on %s", strings.Join(parts, ", "), c.args.IfName), ""))
	}
	return nil
}

// failAfterRelease gives the pod's addresses back before the ADD fails: the DEL it sends releases
// every address of the pod UID, as any DEL does, so the runtime's retry starts from nothing.
func failAfterRelease(c *call, cause *types.Error) error {
	pod, err := c.pod()
	if err != nil {
		return cause
	}
	if err := c.agent.Release(c.ctx, delArgs(c, pod)); err != nil && !isNotFound(err) {
		return types.NewError(cause.Code, cause.Msg+"; releasing the allocation again failed: "+err.Error(), "")
	}
	return cause
}
