// Package netsim builds an underlay network out of network namespaces on one Linux machine: a
// switch namespace whose bridge plays the underlay switch and the subnets' gateway, node
// namespaces wired to it by veth pairs (one per node NIC), and further namespaces for pods and
// outside clients. Every namespace it makes is named with the lab's prefix under /run/netns, so a
// crashed run can be cleaned up by prefix (Cleanup).
package netsim

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// NetNSDir is where named network namespaces are bind-mounted (the iproute2 convention).
const NetNSDir = "/run/netns"

// Subnet is one underlay subnet; its gateway address lives on the switch's bridge.
type Subnet struct {
	CIDR    netip.Prefix
	Gateway netip.Addr
}

// Config describes a lab.
type Config struct {
	// Prefix names every namespace of the lab (keep it short: link names derive from it too).
	Prefix  string
	Subnets []Subnet
}

// Lab is a running underlay: the switch namespace and what was attached to it.
type Lab struct {
	cfg    Config
	Switch ns.NetNS

	mu     sync.Mutex
	names  []string // namespaces made, in creation order
	ports  int      // switch ports made, for unique port names
	closed bool
}

// NIC is a node's (or an outside host's) interface on the switch.
type NIC struct {
	Name string       // inside the namespace, e.g. eth0
	Addr netip.Prefix // address and the subnet's prefix length
}

// Node is a namespace attached to the switch.
type Node struct {
	Name   string // the node's name (its namespace is Prefix-Name)
	NSPath string
	NS     ns.NetNS
	NICs   []NIC
}

// New creates the switch namespace with bridge br0 carrying every subnet's gateway, forwarding
// between the subnets.
func New(cfg Config) (lab *Lab, err error) {
	if cfg.Prefix == "" || len(cfg.Prefix) > 10 || strings.ContainsAny(cfg.Prefix, "/ ") {
		return nil, fmt.Errorf("netsim: prefix %q must be 1 to 10 characters without '/' or spaces", cfg.Prefix)
	}
	for _, s := range cfg.Subnets {
		if !s.CIDR.IsValid() || !s.CIDR.Contains(s.Gateway) {
			return nil, fmt.Errorf("netsim: gateway %s is not inside subnet %s", s.Gateway, s.CIDR)
		}
	}
	l := &Lab{cfg: cfg}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()
	sw, _, err := l.NewNS("switch")
	if err != nil {
		return nil, err
	}
	l.Switch = sw
	err = sw.Do(func(ns.NetNS) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge br0: %w", err)
		}
		link, err := netlinkx.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := netlinkx.LinkUp(link); err != nil {
			return err
		}
		for _, s := range cfg.Subnets {
			if err := netlinkx.AddAddr(link, netip.PrefixFrom(s.Gateway, s.CIDR.Bits())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: switch: %w", err)
	}
	return l, nil
}

// Prefix returns the lab's namespace prefix.
func (l *Lab) Prefix() string { return l.cfg.Prefix }

// NSPath returns the path of the lab's namespace called name.
func (l *Lab) NSPath(name string) string { return filepath.Join(NetNSDir, l.cfg.Prefix+"-"+name) }

// NewNS creates the lab's namespace called name with loopback up, IPv4 and IPv6 forwarding on and
// IPv6 duplicate address detection off (nothing in a lab needs either delay), and returns it with
// its path. The lab removes it on Close.
func (l *Lab) NewNS(name string) (ns.NetNS, string, error) {
	full := l.cfg.Prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", full).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("netsim: ip netns add %s: %v: %s", full, err, strings.TrimSpace(string(out)))
	}
	l.mu.Lock()
	l.names = append(l.names, full)
	l.mu.Unlock()
	path := filepath.Join(NetNSDir, full)
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, "", fmt.Errorf("netsim: open %s: %w", path, err)
	}
	err = n.Do(func(ns.NetNS) error {
		lo, err := netlinkx.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlinkx.LinkUp(lo); err != nil {
			return err
		}
		for _, kv := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv6/conf/all/forwarding", "1"},
			{"net/ipv6/conf/all/accept_dad", "0"},
			{"net/ipv6/conf/default/accept_dad", "0"},
		} {
			if err := netlinkx.SetSysctl(kv[0], kv[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.Close()
		return nil, "", fmt.Errorf("netsim: prepare %s: %w", full, err)
	}
	return n, path, nil
}

// DeleteNS removes the lab's namespace called name (and every link inside it).
func (l *Lab) DeleteNS(name string) error {
	full := l.cfg.Prefix + "-" + name
	l.mu.Lock()
	l.names = slices.DeleteFunc(l.names, func(s string) bool { return s == full })
	l.mu.Unlock()
	return deleteNS(full)
}

func deleteNS(full string) error {
	if _, err := os.Stat(filepath.Join(NetNSDir, full)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "delete", full).CombinedOutput(); err != nil {
		return fmt.Errorf("netsim: ip netns delete %s: %v: %s", full, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// subnetOf returns the lab subnet holding a.
func (l *Lab) subnetOf(a netip.Addr) (Subnet, bool) {
	for _, s := range l.cfg.Subnets {
		if s.CIDR.Contains(a) {
			return s, true
		}
	}
	return Subnet{}, false
}

// Attach creates the namespace called name and plugs one veth per NIC into the switch. The first
// NIC's subnet gateway (of each family) becomes the default route; the other NICs' subnets are
// reached on-link.
func (l *Lab) Attach(name string, nics ...NIC) (*Node, error) {
	if len(nics) == 0 {
		return nil, fmt.Errorf("netsim: %s: no NIC", name)
	}
	for _, nic := range nics {
		if _, ok := l.subnetOf(nic.Addr.Addr()); !ok {
			return nil, fmt.Errorf("netsim: %s %s: address %s is in no lab subnet", name, nic.Name, nic.Addr)
		}
	}
	n, path, err := l.NewNS(name)
	if err != nil {
		return nil, err
	}
	node := &Node{Name: name, NSPath: path, NS: n, NICs: nics}
	for i, nic := range nics {
		l.mu.Lock()
		l.ports++
		port := fmt.Sprintf("p%d", l.ports)
		l.mu.Unlock()
		err := l.Switch.Do(func(ns.NetNS) error {
			sw, err := netlinkx.AddVeth(netlinkx.Veth{Name: port, PeerName: nic.Name, MTU: 1500,
				MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: n, NoDAD: true})
			if err != nil {
				return err
			}
			br, err := netlinkx.LinkByName("br0")
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(sw, br); err != nil {
				return fmt.Errorf("attach %s to br0: %w", port, err)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("netsim: wire %s %s: %w", name, nic.Name, err)
		}
		err = n.Do(func(ns.NetNS) error {
			link, err := netlinkx.LinkByName(nic.Name)
			if err != nil {
				return err
			}
			if err := netlinkx.AddAddr(link, nic.Addr); err != nil {
				return err
			}
			if i > 0 {
				return nil
			}
			for _, s := range l.cfg.Subnets {
				if s.CIDR.Contains(nic.Addr.Addr()) {
					def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
					if s.Gateway.Is6() {
						def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
					}
					if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: def, GW: s.Gateway, Link: link}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("netsim: address %s %s: %w", name, nic.Name, err)
		}
	}
	return node, nil
}

// Do runs f inside the node's namespace.
func (n *Node) Do(f func() error) error {
	return n.NS.Do(func(ns.NetNS) error { return f() })
}

// Close removes every namespace of the lab, the switch last. It is safe to call twice.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	names := slices.Clone(l.names)
	l.mu.Unlock()
	if l.Switch != nil {
		l.Switch.Close()
	}
	var errs []error
	for i := len(names) - 1; i >= 0; i-- {
		errs = append(errs, deleteNS(names[i]))
	}
	return errors.Join(errs...)
}

// Cleanup removes every namespace whose name starts with prefix+"-": what a lab of that prefix
// made, even when the process that made it died.
func Cleanup(prefix string) error {
	names, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, deleteNS(n))
	}
	return errors.Join(errs...)
}

// Namespaces lists the named namespaces of a lab prefix.
func Namespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(NetNSDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netsim: list %s: %w", NetNSDir, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
