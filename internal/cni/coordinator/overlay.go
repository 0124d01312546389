package coordinator

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// overlay wires a secondary NIC of a pod whose first NIC comes from an overlay CNI (docs/design/behaviour.md#overlay-mode):
// like underlay, but the pod reaches the node through the first NIC, a veth whose host end
// (cali..., lxc...) the overlay CNI created.
type overlay struct {
	cfg   *Config
	args  *skel.CmdArgs
	prev  *types100.Result
	podNS ns.NetNS
	log   *slog.Logger
}

func (o *overlay) add() error {
	nicName, firstName := o.args.IfName, o.cfg.PodDefaultCNINIC
	podAddrs, gateways := nicAddrs(o.prev, nicName)
	if len(podAddrs) == 0 {
		return fmt.Errorf("prevResult holds no address for %s", nicName)
	}
	hasV4 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is4() })
	hasV6 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is6() })
	hostIPs, err := hostAddrs(gateways)
	if err != nil {
		return err
	}
	hostIPs = slices.DeleteFunc(hostIPs, func(a netip.Addr) bool { return (a.Is4() && !hasV4) || (a.Is6() && !hasV6) })

	var peerIndex, table int
	var firstMAC net.HardwareAddr
	err = o.podNS.Do(func(ns.NetNS) error {
		first, err := netlinkx.LinkByName(firstName)
		if err != nil {
			return err
		}
		if peerIndex, err = netlinkx.VethPeerIndex(first); err != nil {
			return fmt.Errorf("overlay mode needs the first NIC from the overlay CNI to be a veth: %w", err)
		}
		firstMAC = first.Attrs().HardwareAddr
		if _, err := setupNIC(o.cfg, nicName, podAddrs); err != nil {
			return err
		}
		table, err = nicTable(ModeOverlay)
		return err
	})
	if err != nil {
		return err
	}
	hostPeer, err := netlinkx.LinkByIndex(peerIndex)
	if err != nil {
		return fmt.Errorf("the host end of the pod's %s: %w", firstName, err)
	}
	// The first coordinated secondary NIC also takes the node and cluster routes into main:
	// before it, the overlay's default route covered them.
	firstSecondary := table == firstNICTable+1
	tables := []int{table}
	if firstSecondary {
		tables = append(tables, 0)
	}

	err = o.podNS.Do(func(ns.NetNS) error {
		first, err := netlinkx.LinkByName(firstName)
		if err != nil {
			return err
		}
		nic, err := netlinkx.LinkByName(nicName)
		if err != nil {
			return err
		}
		for _, ip := range hostIPs {
			if err := netlinkx.SetNeigh(first, ip, hostPeer.Attrs().HardwareAddr); err != nil {
				return err
			}
			for _, t := range tables {
				if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.PrefixFrom(ip, ip.BitLen()), Link: first, Table: t}); err != nil {
					return err
				}
			}
		}
		for _, cidr := range slices.Concat(o.cfg.OverlayPodCIDR, o.cfg.ServiceCIDR, o.cfg.HijackCIDR) {
			i := slices.IndexFunc(hostIPs, func(a netip.Addr) bool { return a.Is4() == cidr.Addr().Is4() })
			if i < 0 {
				continue
			}
			for _, t := range tables {
				if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: cidr, GW: hostIPs[i], Link: first, Table: t}); err != nil {
					return err
				}
			}
		}
		if o.cfg.TunePodRoutes {
			if firstSecondary {
				if err := replyThroughFirst(first); err != nil {
					return err
				}
			}
			if err := tuneRoutes(o.cfg, nic, podAddrs, table); err != nil {
				return err
			}
		}
		return addPolicyRoutes(o.cfg, nic, table, hasV4, hasV6)
	})
	if err != nil {
		return err
	}

	if err := routePodThroughHost(o.cfg, hostPeer, podAddrs, firstMAC); err != nil {
		return err
	}
	o.log.Info("overlay secondary NIC configured", "table", table, "hostPeer", hostPeer.Attrs().Name, "podIPs", podAddrs)
	return nil
}

// replyThroughFirst keeps the overlay NIC's replies on it once the default route may change:
// a request that came in through it (from its address) is answered by its default route, copied
// into table 100 (docs/design/behaviour.md#overlay-mode).
func replyThroughFirst(first netlink.Link) error {
	addrs, err := netlinkx.Addrs(first, netlinkx.FamilyAll)
	if err != nil {
		return err
	}
	for _, p := range addrs {
		ip := p.Addr()
		if ip.IsLinkLocalUnicast() {
			continue
		}
		if err := netlinkx.EnsureRule(netlinkx.Rule{Src: netip.PrefixFrom(ip, ip.BitLen()), Table: firstNICTable, Priority: -1}); err != nil {
			return err
		}
	}
	for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
		routes, err := netlinkx.Routes(fam, 0, first)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || isDefault(r.Dst) {
				if err := netlinkx.CopyRoute(r, firstNICTable); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
