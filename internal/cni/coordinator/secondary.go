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

// secondary wires an underlay secondary NIC (net1...) of a pod whose first NIC already has veth0
// (docs/design/behaviour.md#underlay-secondary-nic): the node reaches the NIC's addresses through the
// same veth pair, and with tunePodRoutes the NIC's own routes go to its policy table.
type secondary struct {
	cfg   *Config
	args  *skel.CmdArgs
	prev  *types100.Result
	podNS ns.NetNS
	log   *slog.Logger
}

func (s *secondary) add() error {
	nicName := s.args.IfName
	podAddrs, gateways := nicAddrs(s.prev, nicName)
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

	hostVeth := hostVethName(s.args.ContainerID)
	hv, err := netlinkx.LinkByName(hostVeth)
	if err != nil {
		return fmt.Errorf("the host end of the pod's veth0: %w (did the first NIC run coordinator in underlay mode?)", err)
	}

	var veth0MAC net.HardwareAddr
	var table int
	err = s.podNS.Do(func(ns.NetNS) error {
		veth0, err := netlinkx.LinkByName(podVeth)
		if err != nil {
			return err
		}
		veth0MAC = veth0.Attrs().HardwareAddr
		nic, err := setupNIC(s.cfg, nicName, podAddrs)
		if err != nil {
			return err
		}
		if table, err = nicTable(ModeUnderlay); err != nil {
			return err
		}
		var src4 netip.Addr
		if i := slices.IndexFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is4() }); i >= 0 {
			src4 = podAddrs[i].Addr()
		}
		for _, ip := range hostIPs {
			var src netip.Addr
			if ip.Is4() {
				src = src4
			}
			if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.PrefixFrom(ip, ip.BitLen()), Src: src, Link: veth0, Table: table}); err != nil {
				return err
			}
		}
		for _, cidr := range slices.Concat(s.cfg.OverlayPodCIDR, s.cfg.ServiceCIDR, s.cfg.HijackCIDR) {
			i := slices.IndexFunc(hostIPs, func(a netip.Addr) bool { return a.Is4() == cidr.Addr().Is4() })
			if i < 0 {
				continue
			}
			if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: cidr, GW: hostIPs[i], Link: veth0, Table: table}); err != nil {
				return err
			}
		}
		if s.cfg.TunePodRoutes {
			if err := tuneRoutes(s.cfg, nic, podAddrs, table); err != nil {
				return err
			}
		}
		return addPolicyRoutes(s.cfg, nic, table, hasV4, hasV6)
	})
	if err != nil {
		return err
	}

	if err := routePodThroughHost(s.cfg, hv, podAddrs, veth0MAC); err != nil {
		return err
	}
	s.log.Info("underlay secondary NIC configured", "table", table, "hostVeth", hostVeth, "podIPs", podAddrs)
	return nil
}

// nicTable numbers the current NIC's table from the pod's links that are up (docs/design/behaviour.md#policy-tables).
func nicTable(mode Mode) (int, error) {
	links, err := netlinkx.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list pod links: %w", err)
	}
	up := 0
	for _, l := range links {
		if l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().Flags&net.FlagLoopback == 0 {
			up++
		}
	}
	return policyTable(mode, false, up), nil
}

// tuneRoutes is docs/design/behaviour.md#route-tuning: the NIC that keeps the default route in main is the current default one
// unless podDefaultRouteNic names the current NIC; the other one's routes go to the table, with
// a rule for its source addresses.
func tuneRoutes(cfg *Config, nic netlink.Link, podAddrs []netip.Prefix, table int) error {
	moved, srcs := nic, podAddrs
	switch want := cfg.PodDefaultRouteNIC; {
	case want == "":
	case want == nic.Attrs().Name:
		// The current NIC takes the default route: the first NIC's routes move instead.
		first, err := netlinkx.LinkByName(cfg.PodDefaultCNINIC)
		if err != nil {
			return fmt.Errorf("podDefaultRouteNic %s: the first NIC: %w", want, err)
		}
		addrs, err := netlinkx.Addrs(first, netlinkx.FamilyAll)
		if err != nil {
			return err
		}
		srcs = slices.DeleteFunc(addrs, func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() })
		moved = first
	default:
		if _, err := netlinkx.LinkByName(want); err != nil {
			return fmt.Errorf("podDefaultRouteNic %s: %w", want, err)
		}
	}

	for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
		routes, err := netlinkx.Routes(fam, 0, moved)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() || r.Dst != nil && r.Dst.IP.IsMulticast() {
				continue
			}
			if err := netlinkx.CopyRoute(r, table); err != nil {
				return err
			}
			if r.Dst == nil || isDefault(r.Dst) {
				if err := netlinkx.DelRoute(r); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range srcs {
		ip := p.Addr()
		if err := netlinkx.EnsureRule(netlinkx.Rule{Src: netip.PrefixFrom(ip, ip.BitLen()), Table: table, Priority: -1}); err != nil {
			return err
		}
	}
	return nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
