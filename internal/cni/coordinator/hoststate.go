package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// hostLockPath serialises the coordinator runs of a node around the state they share: the host
// rule "from all lookup hostRuleTable", added by the first pod and removed with the last one.
// Without it a DEL that finds the table empty could remove the rule under an ADD that has just
// made sure of it. A variable so that tests can point it elsewhere.
var hostLockPath = "/run/spidernet/coordinator.lock"

// withHostLock runs f holding the node-wide coordinator lock. The kernel drops the lock when the
// process dies, so a killed plugin never wedges the node.
func withHostLock(f func() error) error {
	if err := os.MkdirAll(filepath.Dir(hostLockPath), 0o755); err != nil {
		return fmt.Errorf("coordinator lock: %w", err)
	}
	fd, err := unix.Open(hostLockPath, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("coordinator lock %s: %w", hostLockPath, err)
	}
	defer unix.Close(fd)
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("coordinator lock %s: %w", hostLockPath, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck // closing the fd releases it anyway
	return f()
}

// routePodThroughHost is the host part of docs/design/behaviour.md#host-side-routes, shared by every mode: each pod
// address is reached through hostLink (the host veth, or the overlay CNI's veth peer), whatever the
// node's other routes say, by a rule ahead of main and a /32 (/128) route in the host rule table,
// with a static neighbour entry so that the first packet needs no resolution.
func routePodThroughHost(cfg *Config, hostLink netlink.Link, podAddrs []netip.Prefix, podMAC net.HardwareAddr) error {
	return withHostLock(func() (err error) {
		// Half-routed addresses would send traffic for the pod nowhere: on failure the routes
		// added so far go, and the host rule too when no other pod needs it.
		defer func() {
			if err != nil {
				_ = unrouteLocked(cfg, hostLink, podAddrs)
			}
		}()
		for _, p := range podAddrs {
			ip := p.Addr()
			if err := netlinkx.SetNeigh(hostLink, ip, podMAC); err != nil {
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
			rule := netlinkx.Rule{Family: netlinkx.Family(ip), Table: cfg.HostRuleTable, Priority: hostRulePriority}
			if err := netlinkx.EnsureRule(rule); err != nil {
				return err
			}
		}
		return nil
	})
}

// unroutePod undoes routePodThroughHost for podAddrs: their routes in the host rule table (through
// hostLink, or through any link when hostLink is nil) go, and so does the host rule of a family
// whose table is left empty. Missing routes and rules are fine: DEL and rollback both use it.
func unroutePod(cfg *Config, hostLink netlink.Link, podAddrs []netip.Prefix) error {
	return withHostLock(func() error { return unrouteLocked(cfg, hostLink, podAddrs) })
}

// unrouteLocked is unroutePod's work, holding the lock; it also drops the static neighbour entries
// routePodThroughHost set on hostLink.
func unrouteLocked(cfg *Config, hostLink netlink.Link, podAddrs []netip.Prefix) error {
	for _, p := range podAddrs {
		ip := p.Addr()
		if err := netlinkx.DelRoutesTo(netip.PrefixFrom(ip, ip.BitLen()), cfg.HostRuleTable, hostLink); err != nil {
			return err
		}
		if hostLink != nil {
			if err := netlinkx.DelNeigh(hostLink, ip); err != nil {
				return err
			}
		}
	}
	return releaseHostRules(cfg)
}

// releaseHostRules removes the host rule of each family whose host rule table holds no route any
// more: the last pod of the node is gone. Call it holding the lock.
func releaseHostRules(cfg *Config) error {
	for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
		routes, err := netlinkx.Routes(fam, cfg.HostRuleTable, nil)
		if err != nil {
			return err
		}
		if len(routes) > 0 {
			continue
		}
		if err := netlinkx.DelRule(netlinkx.Rule{Family: fam, Table: cfg.HostRuleTable, Priority: hostRulePriority}); err != nil {
			return err
		}
	}
	return nil
}
