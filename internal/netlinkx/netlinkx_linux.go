package netlinkx

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Address families, re-exported so callers need not import netlink for them.
const (
	FamilyAll = netlink.FAMILY_ALL
	FamilyV4  = netlink.FAMILY_V4
	FamilyV6  = netlink.FAMILY_V6
)

// Family returns the netlink family of a.
func Family(a netip.Addr) int {
	if a.Is4() {
		return FamilyV4
	}
	return FamilyV6
}

// WithNetNSPath runs f with the calling thread in the network namespace at path.
func WithNetNSPath(path string, f func(ns.NetNS) error) error {
	return ns.WithNetNSPath(path, f)
}

// GetNS opens the network namespace at path.
func GetNS(path string) (ns.NetNS, error) { return ns.GetNS(path) }

// IsNSNotExist reports whether err says a namespace path does not exist.
func IsNSNotExist(err error) bool {
	var e ns.NSPathNotExistErr
	return errors.As(err, &e)
}

// LinkByName finds a link in the current namespace.
func LinkByName(name string) (netlink.Link, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", name, err)
	}
	return l, nil
}

// IsLinkNotFound reports whether err says a link does not exist.
func IsLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// LinkExists reports whether a link of that name exists in the current namespace.
func LinkExists(name string) (bool, error) {
	_, err := LinkByName(name)
	switch {
	case err == nil:
		return true, nil
	case IsLinkNotFound(err):
		return false, nil
	default:
		return false, err
	}
}

// LinkByIndex finds a link in the current namespace by index.
func LinkByIndex(index int) (netlink.Link, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("find link %d: %w", index, err)
	}
	return l, nil
}

// VethPeerIndex returns the index, in the peer's namespace, of a veth's other end.
func VethPeerIndex(l netlink.Link) (int, error) {
	if _, ok := l.(*netlink.Veth); !ok {
		return 0, fmt.Errorf("%s is a %s link, not a veth", l.Attrs().Name, l.Type())
	}
	// IFLA_LINK, which netlink calls ParentIndex, names the peer (Linux 4.1+).
	if l.Attrs().ParentIndex <= 0 {
		return 0, fmt.Errorf("the kernel does not report the peer of veth %s", l.Attrs().Name)
	}
	return l.Attrs().ParentIndex, nil
}

// LinkList lists the links of the current namespace.
func LinkList() ([]netlink.Link, error) { return netlinksafe.LinkList() }

// LinkUp sets a link up.
func LinkUp(l netlink.Link) error {
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
	}
	return nil
}

// SetTxQLen sets a link's transmit queue length.
func SetTxQLen(l netlink.Link, qlen int) error {
	if err := netlink.LinkSetTxQLen(l, qlen); err != nil {
		return fmt.Errorf("set txqueuelen %d on %s: %w", qlen, l.Attrs().Name, err)
	}
	return nil
}

// DelLinkByName deletes a link; a link that does not exist is not an error.
func DelLinkByName(name string) error {
	l, err := LinkByName(name)
	if IsLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// RandomMAC returns a random locally administered unicast MAC address.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// Veth describes a veth pair to create: Name in the current namespace, PeerName in PeerNS.
type Veth struct {
	Name, PeerName string
	MTU            int
	MAC, PeerMAC   net.HardwareAddr
	PeerNS         ns.NetNS
	// NoDAD switches IPv6 duplicate address detection off on both ends before they come up: on
	// a point-to-point pair it finds nothing, and while the link-local address is tentative the
	// kernel holds back the end's IPv6 traffic for about two seconds.
	NoDAD bool
}

// AddVeth creates the pair, sets both ends up and returns the local end. Both names must be
// free; the caller removes leftovers of an earlier attempt first.
func AddVeth(v Veth) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = v.Name
	attrs.MTU = v.MTU
	attrs.HardwareAddr = v.MAC
	link := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         v.PeerName,
		PeerHardwareAddr: v.PeerMAC,
		PeerMTU:          uint32(v.MTU),
		PeerNamespace:    netlink.NsFd(int(v.PeerNS.Fd())),
	}
	if err := netlink.LinkAdd(link); err != nil {
		return nil, fmt.Errorf("create veth pair %s/%s: %w", v.Name, v.PeerName, err)
	}
	local, err := LinkByName(v.Name)
	if err != nil {
		return nil, err
	}
	if err := v.noDAD(v.Name); err != nil {
		return nil, err
	}
	if err := LinkUp(local); err != nil {
		return nil, err
	}
	err = v.PeerNS.Do(func(ns.NetNS) error {
		peer, err := LinkByName(v.PeerName)
		if err != nil {
			return err
		}
		if err := v.noDAD(v.PeerName); err != nil {
			return err
		}
		return LinkUp(peer)
	})
	if err != nil {
		return nil, err
	}
	return LinkByName(v.Name) // again, to report the up state
}

// noDAD sets accept_dad=0 on the named link of the current namespace when v.NoDAD; a kernel
// without IPv6 has nothing to set.
func (v Veth) noDAD(name string) error {
	if !v.NoDAD {
		return nil
	}
	err := SetSysctl("net/ipv6/conf/"+name+"/accept_dad", "0")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// AddAddr adds an address to a link; an address already present is not an error.
func AddAddr(l netlink.Link, p netip.Prefix) error {
	addr := &netlink.Addr{IPNet: IPNet(p)}
	if err := netlink.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// Addrs lists the addresses of a link (nil: of every link) in the family.
func Addrs(l netlink.Link, family int) ([]netip.Prefix, error) {
	list, err := netlinksafe.AddrList(l, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, a := range list {
		if p, ok := Prefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// HostAddrs returns the global-scope addresses of every link of the current namespace whose name
// matches none of exclude, in link order.
func HostAddrs(exclude []*regexp.Regexp) ([]netip.Addr, error) {
	links, err := LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netip.Addr
links:
	for _, l := range links {
		for _, re := range exclude {
			if re.MatchString(l.Attrs().Name) {
				continue links
			}
		}
		addrs, err := netlinksafe.AddrList(l, FamilyAll)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			if a.Scope != unix.RT_SCOPE_UNIVERSE {
				continue
			}
			if p, ok := Prefix(a.IPNet); ok {
				out = append(out, p.Addr())
			}
		}
	}
	return out, nil
}

// RouteSrc returns the source address the current namespace would use to reach dst
// (`ip route get`); ok is false when there is no route or no preferred source.
func RouteSrc(dst netip.Addr) (src netip.Addr, ok bool) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return netip.Addr{}, false
	}
	for _, r := range routes {
		if a, ok := netip.AddrFromSlice(r.Src); ok && a.IsValid() && !a.IsUnspecified() {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// Route is a unicast route in a table (0 means main).
type Route struct {
	Dst   netip.Prefix
	GW    netip.Addr // invalid: a link-scope route
	Src   netip.Addr // preferred source; invalid: the kernel chooses
	Link  netlink.Link
	Table int
}

func (r Route) netlink() *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: r.Link.Attrs().Index,
		Dst:       IPNet(r.Dst),
		Table:     r.Table,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.GW.IsValid() {
		nr.Gw = r.GW.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Table == 0 {
		nr.Table = unix.RT_TABLE_MAIN
	}
	return nr
}

// ReplaceRoute adds the route or replaces the one with the same destination in its table.
func ReplaceRoute(r Route) error {
	if err := netlink.RouteReplace(r.netlink()); err != nil {
		return fmt.Errorf("replace route %s via %v dev %s table %d: %w", r.Dst, r.GW, r.Link.Attrs().Name, r.Table, err)
	}
	return nil
}

// Routes lists the routes of a table (0 means main) in the family; link, when not nil, filters
// by output device.
func Routes(family, table int, link netlink.Link) ([]netlink.Route, error) {
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	filter := &netlink.Route{Table: table}
	mask := netlink.RT_FILTER_TABLE
	if link != nil {
		filter.LinkIndex = link.Attrs().Index
		mask |= netlink.RT_FILTER_OIF
	}
	routes, err := netlinksafe.RouteListFiltered(family, filter, mask)
	if err != nil {
		return nil, fmt.Errorf("list routes of table %d: %w", table, err)
	}
	return routes, nil
}

// CopyRoute adds (or replaces) a copy of r in another table.
func CopyRoute(r netlink.Route, table int) error {
	c := r
	c.Table = table
	if err := netlink.RouteReplace(&c); err != nil {
		return fmt.Errorf("copy route %s to table %d: %w", r, table, err)
	}
	return nil
}

// DelRoute deletes r; a route that does not exist is not an error.
func DelRoute(r netlink.Route) error {
	if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	return nil
}

// DelRoutesTo deletes every route to exactly dst in a table, only those through link when it is
// not nil; none is not an error.
func DelRoutesTo(dst netip.Prefix, table int, link netlink.Link) error {
	routes, err := Routes(Family(dst.Addr()), table, link)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if p, ok := Prefix(r.Dst); !ok || p != dst.Masked() {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s table %d: %w", dst, table, err)
		}
	}
	return nil
}

// Rule is a policy-routing rule: from Src (invalid: all) [fwmark Mark] lookup Table, at
// Priority (<0: let the kernel choose).
type Rule struct {
	Family   int
	Src      netip.Prefix
	Mark     uint32 // 0: no fwmark match
	Table    int
	Priority int
}

func (r Rule) netlink() *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = r.Family
	nr.Table = r.Table
	nr.Priority = r.Priority
	nr.Mark = r.Mark
	if r.Src.IsValid() {
		nr.Src = IPNet(r.Src)
		nr.Family = Family(r.Src.Addr())
	}
	return nr
}

// FindRule returns whether an equal rule exists (priority compared only when r.Priority >= 0).
func FindRule(r Rule) (bool, error) {
	rules, err := netlinksafe.RuleList(r.Family)
	if err != nil {
		return false, fmt.Errorf("list rules: %w", err)
	}
	for _, x := range rules {
		if x.Table != r.Table || (r.Priority >= 0 && x.Priority != r.Priority) || x.Mark != r.Mark || x.IifName != "" || x.OifName != "" {
			continue
		}
		src, _ := Prefix(x.Src)
		if x.Src == nil || (src.Bits() == 0 && src.Addr().IsUnspecified()) {
			src = netip.Prefix{}
		}
		if src == r.Src {
			return true, nil
		}
	}
	return false, nil
}

// EnsureRule adds the rule unless an equal one exists.
func EnsureRule(r Rule) error {
	found, err := FindRule(r)
	if err != nil || found {
		return err
	}
	if err := netlink.RuleAdd(r.netlink()); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add rule from %v lookup %d: %w", r.Src, r.Table, err)
	}
	return nil
}

// DelRule deletes the rule; a rule that does not exist is not an error.
func DelRule(r Rule) error {
	if err := netlink.RuleDel(r.netlink()); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete rule from %v lookup %d: %w", r.Src, r.Table, err)
	}
	return nil
}

// SetNeigh adds or replaces a permanent neighbour entry ip lladdr mac on the link.
func SetNeigh(l netlink.Link, ip netip.Addr, mac net.HardwareAddr) error {
	n := &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       Family(ip),
		State:        netlink.NUD_PERMANENT,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	}
	if err := netlink.NeighSet(n); err != nil {
		return fmt.Errorf("set neighbour %s lladdr %s dev %s: %w", ip, mac, l.Attrs().Name, err)
	}
	return nil
}

// DelNeigh removes the neighbour entry of ip on l; a missing one is fine.
func DelNeigh(l netlink.Link, ip netip.Addr) error {
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: Family(ip), IP: ip.AsSlice()}
	if err := netlink.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete neighbour %s dev %s: %w", ip, l.Attrs().Name, err)
	}
	return nil
}

// Neighs lists the neighbour entries of a link in a family.
func Neighs(l netlink.Link, family int) ([]netlink.Neigh, error) {
	list, err := netlink.NeighList(l.Attrs().Index, family)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list neighbours of %s: %w", l.Attrs().Name, err)
	}
	return list, nil
}

// SetSysctl writes value to /proc/sys/<key>, key given with slashes ("net/ipv4/conf/eth0.100/rp_filter")
// so that interface names with dots stay unambiguous. It reads the current namespace's value.
func SetSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", filepath.Clean("/"+key))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(key, "/", "."), value, err)
	}
	return nil
}

// Sysctl reads /proc/sys/<key>.
func Sysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", filepath.Clean("/"+key)))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// IPNet converts a prefix to the form netlink takes, keeping the host bits.
func IPNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// Prefix converts a netlink *net.IPNet, keeping the host bits.
func Prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	if a.Is4In6() || len(n.Mask) == net.IPv4len {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones), true
}
