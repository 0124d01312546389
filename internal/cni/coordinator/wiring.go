package coordinator

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// routePodThroughHost is the host part of SPEC.md 5.4 steps 5 and 7, shared by every mode: each pod
// address is reached through hostLink (the host veth, or the overlay CNI's veth peer), whatever the
// node's other routes say, by a rule ahead of main and a /32 (/128) route in the host rule table,
// with a static neighbour entry so that the first packet needs no resolution.
func routePodThroughHost(cfg *Config, hostLink netlink.Link, podAddrs []netip.Prefix, podMAC net.HardwareAddr) error {
	for _, p := range podAddrs {
		ip := p.Addr()
		if err := netlinkx.SetNeigh(hostLink, ip, podMAC); err != nil {
			return err
		}
		rule := netlinkx.Rule{Family: netlinkx.Family(ip), Table: cfg.HostRuleTable, Priority: hostRulePriority}
		if err := netlinkx.EnsureRule(rule); err != nil {
			return err
		}
		host := netip.PrefixFrom(ip, ip.BitLen())
		// A stale route of an earlier pod with this IP would point at a dead or foreign veth.
		if err := netlinkx.DelRoutesTo(host, cfg.HostRuleTable, nil); err != nil {
			return err
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: host, Link: hostLink, Table: cfg.HostRuleTable}); err != nil {
			return err
		}
	}
	return nil
}

// addPolicyRoutes is SPEC.md 5.4 step 10: the configured policyRoutes of the families the pod has,
// through nic, in table (0 = main).
func addPolicyRoutes(cfg *Config, nic netlink.Link, table int, hasV4, hasV6 bool) error {
	for _, r := range cfg.PolicyRoutes {
		if (r.GW.Is4() && !hasV4) || (r.GW.Is6() && !hasV6) {
			continue
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: r.Dst, GW: r.GW, Link: nic, Table: table}); err != nil {
			return err
		}
	}
	return nil
}
