package coordinator

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// podVeth is the pod end of the pair an underlay first NIC gets.
const podVeth = "veth0"

// hostInterfaceExclude are the host interfaces whose addresses the pod need not reach through
// veth0 (docs/design/behaviour.md#underlay-first-nic): container bridges, other pods' veths, loopback, tunnels.
var hostInterfaceExclude = func() []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, s := range []string{`^docker.*`, `^cbr.*`, `^dummy.*`, `^virbr.*`, `^lxcbr.*`, `^veth.*`, `^lo$`,
		`^cali.*`, `^flannel.*`, `^kube-ipvs.*`, `^cni.*`, `^vx-submariner`, `^cilium*`} {
		out = append(out, regexp.MustCompile(s))
	}
	return out
}()

// hostVethName is the host end of the pair: "veth" + the first 11 characters of the container ID.
func hostVethName(containerID string) string {
	id := containerID
	if len(id) > 11 {
		id = id[:11]
	}
	return "veth" + id
}

// underlay wires an underlay first NIC (docs/design/behaviour.md#underlay-first-nic). It runs in the host namespace and enters
// the pod's for the pod side.
type underlay struct {
	cfg   *Config
	args  *skel.CmdArgs
	prev  *types100.Result
	podNS ns.NetNS
	log   *slog.Logger
}

func (u *underlay) add() (err error) {
	nic := u.args.IfName
	podAddrs, gateways := nicAddrs(u.prev, nic)
	if len(podAddrs) == 0 {
		return fmt.Errorf("prevResult holds no address for %s", nic)
	}
	hasV4 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is4() })
	hasV6 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is6() })

	// Step 1 (host part): the host addresses the pod must reach directly.
	hostIPs, err := hostAddrs(gateways)
	if err != nil {
		return err
	}
	hostIPs = slices.DeleteFunc(hostIPs, func(a netip.Addr) bool { return (a.Is4() && !hasV4) || (a.Is6() && !hasV6) })
	if len(hostIPs) == 0 {
		u.log.Warn("no host address found for the pod's IP families; the pod will not reach its node directly")
	}

	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return fmt.Errorf("open the host netns: %w", err)
	}
	defer hostNS.Close()

	hostVeth := hostVethName(u.args.ContainerID)
	// A retried ADD finds the pair of the failed attempt.
	if err := netlinkx.DelLinkByName(hostVeth); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Removing the host end removes veth0 and every route through either end; the host
			// rule goes too when no other pod needs it.
			_ = netlinkx.DelLinkByName(hostVeth)
			_ = withHostLock(func() error { return releaseHostRules(u.cfg) })
		}
	}()

	podMAC, hostMAC := netlinkx.RandomMAC(), netlinkx.RandomMAC()
	table := policyTable(ModeUnderlay, true, 0)
	err = u.podNS.Do(func(ns.NetNS) error {
		return u.podSide(podMAC, hostMAC, hostVeth, hostNS, hostIPs, podAddrs, table, hasV4, hasV6)
	})
	if err != nil {
		return err
	}

	// Steps 5 and 7, host part: the pod's addresses are reached through the host veth, whatever
	// the node's other routes say, by a rule ahead of main.
	hv, err := netlinkx.LinkByName(hostVeth)
	if err != nil {
		return err
	}
	if err := routePodThroughHost(u.cfg, hv, podAddrs, podMAC); err != nil {
		return err
	}
	u.log.Info("underlay configured", "hostVeth", hostVeth, "hostIPs", hostIPs, "podIPs", podAddrs)
	return nil
}

// podSide runs in the pod's namespace: steps 1 (NIC up), 2 to 6 and 8 to 10 of docs/design/behaviour.md#underlay-first-nic.
func (u *underlay) podSide(podMAC, hostMAC net.HardwareAddr, hostVeth string, hostNS ns.NetNS, hostIPs []netip.Addr, podAddrs []netip.Prefix, table int, hasV4, hasV6 bool) error {
	nicName := u.args.IfName
	nic, err := setupNIC(u.cfg, nicName, podAddrs)
	if err != nil {
		return err
	}
	if err := netlinkx.DelLinkByName(podVeth); err != nil {
		return err
	}
	veth0, err := netlinkx.AddVeth(netlinkx.Veth{Name: podVeth, PeerName: hostVeth, MTU: u.cfg.VethMTU, MAC: podMAC, PeerMAC: hostMAC, PeerNS: hostNS, NoDAD: true})
	if err != nil {
		return err
	}
	if hasV6 {
		if err := netlinkx.SetSysctl("net/ipv6/conf/"+podVeth+"/disable_ipv6", "0"); err != nil {
			return err
		}
	}

	if u.cfg.VethLinkAddress.IsValid() && hasV4 {
		if err := netlinkx.AddAddr(veth0, netip.PrefixFrom(u.cfg.VethLinkAddress, u.cfg.VethLinkAddress.BitLen())); err != nil {
			return err
		}
	}

	// Traffic to the node leaves with the NIC's IPv4 address, the one the host routes back to
	// veth0: the kernel would otherwise prefer vethLinkAddress, which the host cannot reach. IPv6
	// source selection already prefers the NIC's global address over veth0's link-local one, and a
	// still-tentative address would be refused as a preferred source.
	var src4 netip.Addr
	if i := slices.IndexFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is4() }); i >= 0 {
		src4 = podAddrs[i].Addr()
	}
	for _, ip := range hostIPs {
		if err := netlinkx.SetNeigh(veth0, ip, hostMAC); err != nil {
			return err
		}
		var src netip.Addr
		if ip.Is4() {
			src = src4
		}
		for _, t := range []int{0, table} {
			if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.PrefixFrom(ip, ip.BitLen()), Src: src, Link: veth0, Table: t}); err != nil {
				return err
			}
		}
	}

	// Step 8: cluster CIDRs go to the node, where kube-proxy and the overlay live.
	for _, cidr := range slices.Concat(u.cfg.OverlayPodCIDR, u.cfg.ServiceCIDR, u.cfg.HijackCIDR) {
		i := slices.IndexFunc(hostIPs, func(a netip.Addr) bool { return a.Is4() == cidr.Addr().Is4() })
		if i < 0 {
			continue // the pod has no address of that family
		}
		var src netip.Addr
		if cidr.Addr().Is4() {
			src = src4
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: cidr, GW: hostIPs[i], Src: src, Link: veth0}); err != nil {
			return err
		}
	}

	if err := replyPath(veth0, hostIPs, table); err != nil {
		return err
	}

	// Step 10.
	return addPolicyRoutes(u.cfg, nic, 0, hasV4, hasV6)
}

// hostAddrs returns the host addresses to reach from the pod: first the source the host uses
// toward each of the pod's gateways, then the addresses of host interfaces not excluded. The first
// address of a family is the next hop of the hijacked CIDRs.
func hostAddrs(gateways []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, gw := range gateways {
		if src, ok := netlinkx.RouteSrc(gw); ok && !slices.Contains(out, src) {
			out = append(out, src)
		}
	}
	all, err := netlinkx.HostAddrs(hostInterfaceExclude)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range all {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// replyMark marks connections that enter the pod through veth0.
const replyMark = 0x1

// replyPath is step 9 of docs/design/behaviour.md#underlay-first-nic: a connection the node forwards into the pod through veth0
// (a NodePort with externalTrafficPolicy Local) is answered through veth0 too, not through the
// NIC's default route, which would bypass the node's conntrack and break the DNAT.
func replyPath(veth0 netlink.Link, hostIPs []netip.Addr, table int) error {
	mark := fmt.Sprintf("%#x", replyMark)
	rules := []netlinkx.IPTablesRule{
		{Table: "mangle", Chain: "PREROUTING", Spec: []string{"-i", podVeth, "-m", "conntrack", "--ctstate", "NEW", "-j", "MARK", "--set-xmark", mark}},
		{Table: "mangle", Chain: "PREROUTING", Spec: []string{"-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark"}},
		{Table: "mangle", Chain: "OUTPUT", Spec: []string{"-j", "CONNMARK", "--restore-mark"}},
	}
	for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
		i := slices.IndexFunc(hostIPs, func(a netip.Addr) bool { return netlinkx.Family(a) == fam })
		if i < 0 {
			continue // no address of the family to route replies to
		}
		if err := netlinkx.EnsureIPTablesRules(fam, rules); err != nil {
			return err
		}
		if err := netlinkx.EnsureRule(netlinkx.Rule{Family: fam, Mark: replyMark, Table: table, Priority: hostRulePriority}); err != nil {
			return err
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == netlinkx.FamilyV6 {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: def, GW: hostIPs[i], Link: veth0, Table: table}); err != nil {
			return err
		}
	}
	return nil
}

// podMACAddress is the prefix followed by the last four bytes of the pod's first IPv4 address,
// or of its first IPv6 address when it has none, so that a pod keeps its MAC with its IP
// (upstream's derivation is unverified; this is ours).
func podMACAddress(prefix net.HardwareAddr, addrs []netip.Prefix) net.HardwareAddr {
	ip := addrs[0].Addr()
	if i := slices.IndexFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Is4() }); i >= 0 {
		ip = addrs[i].Addr()
	}
	b := ip.AsSlice()
	mac := make(net.HardwareAddr, 0, 6)
	mac = append(mac, prefix[:2]...)
	return append(mac, b[len(b)-4:]...)
}

// setupNIC prepares the current NIC in the pod (docs/design/behaviour.md#underlay-first-nic): up, the MAC of
// podMACPrefix announced to the neighbours, txQueueLen, IPv6 enabled when the NIC has IPv6
// addresses, rp_filter. It returns the NIC as it is afterwards.
func setupNIC(cfg *Config, nicName string, podAddrs []netip.Prefix) (netlink.Link, error) {
	hasV4 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is4() })
	hasV6 := slices.ContainsFunc(podAddrs, func(p netip.Prefix) bool { return p.Addr().Is6() })
	nic, err := netlinkx.LinkByName(nicName)
	if err != nil {
		return nil, err
	}
	if err := netlinkx.LinkUp(nic); err != nil {
		return nil, err
	}
	if len(cfg.PodMACPrefix) > 0 {
		if err := netlinkx.SetMAC(nic, podMACAddress(cfg.PodMACPrefix, podAddrs)); err != nil {
			return nil, err
		}
		if nic, err = netlinkx.LinkByName(nicName); err != nil {
			return nil, err
		}
		for _, p := range podAddrs {
			if err := netlinkx.Announce(nic, p.Addr()); err != nil {
				return nil, err
			}
		}
	}
	if cfg.TxQueueLen > 0 {
		if err := netlinkx.SetTxQLen(nic, cfg.TxQueueLen); err != nil {
			return nil, err
		}
	}
	var sysctls [][2]string
	if hasV6 {
		for _, dev := range []string{"all", nicName} {
			sysctls = append(sysctls, [2]string{"net/ipv6/conf/" + dev + "/disable_ipv6", "0"})
		}
	}
	if cfg.PodRPFilter >= 0 && hasV4 {
		for _, dev := range []string{"all", nicName} {
			sysctls = append(sysctls, [2]string{"net/ipv4/conf/" + dev + "/rp_filter", fmt.Sprint(cfg.PodRPFilter)})
		}
	}
	for _, sc := range sysctls {
		if err := netlinkx.SetSysctl(sc[0], sc[1]); err != nil {
			return nil, err
		}
	}
	return nic, nil
}
