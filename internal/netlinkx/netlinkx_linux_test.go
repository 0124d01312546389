package netlinkx_test

import (
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

func init() { runtime.LockOSThread() }

// vethIn creates a pair a (in n) / b (in peer) and returns a.
func vethIn(t *testing.T, n, peer ns.NetNS, a, b string) netlink.Link {
	t.Helper()
	var l netlink.Link
	testutil.InNS(t, n, func() error {
		var err error
		l, err = netlinkx.AddVeth(netlinkx.Veth{Name: a, PeerName: b, MTU: 1400, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: peer})
		return err
	})
	return l
}

func TestPrivilegedAddVeth(t *testing.T) {
	podNS, hostNS := testutil.NewNS(t), testutil.NewNS(t)
	mac, peerMAC := netlinkx.RandomMAC(), netlinkx.RandomMAC()
	if mac[0]&1 != 0 || mac[0]&2 == 0 {
		t.Fatalf("RandomMAC %s is not a locally administered unicast address", mac)
	}
	testutil.InNS(t, podNS, func() error {
		l, err := netlinkx.AddVeth(netlinkx.Veth{Name: "veth0", PeerName: "vethabc", MTU: 1400, MAC: mac, PeerMAC: peerMAC, PeerNS: hostNS})
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != mac.String() || l.Attrs().Flags&1 == 0 {
			t.Errorf("veth0: mtu %d mac %s flags %v; want 1400, %s, up", l.Attrs().MTU, l.Attrs().HardwareAddr, l.Attrs().Flags, mac)
		}
		return nil
	})
	testutil.InNS(t, hostNS, func() error {
		l, err := netlinkx.LinkByName("vethabc")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != peerMAC.String() || l.Attrs().OperState != netlink.OperUp {
			t.Errorf("vethabc: mtu %d mac %s state %v; want 1400, %s, up", l.Attrs().MTU, l.Attrs().HardwareAddr, l.Attrs().OperState, peerMAC)
		}
		if err := netlinkx.DelLinkByName("vethabc"); err != nil {
			return err
		}
		if err := netlinkx.DelLinkByName("vethabc"); err != nil {
			t.Errorf("second delete: %v", err)
		}
		_, err = netlinkx.LinkByName("vethabc")
		if !netlinkx.IsLinkNotFound(err) {
			t.Errorf("LinkByName after delete: %v, want not found", err)
		}
		return nil
	})
	testutil.InNS(t, podNS, func() error {
		if ok, err := netlinkx.LinkExists("veth0"); ok || err != nil {
			t.Errorf("veth0 after deleting its peer: exists %v, %v", ok, err)
		}
		return nil
	})
}

func TestPrivilegedAddrsRoutesRules(t *testing.T) {
	n, peer := testutil.NewNS(t), testutil.NewNS(t)
	l := vethIn(t, n, peer, "nic0", "nic0peer")
	testutil.InNS(t, n, func() error {
		for _, p := range []string{"10.9.0.2/24", "fd00:9::2/64"} {
			if err := netlinkx.AddAddr(l, netip.MustParsePrefix(p)); err != nil {
				return err
			}
			if err := netlinkx.AddAddr(l, netip.MustParsePrefix(p)); err != nil {
				t.Errorf("adding %s again: %v", p, err)
			}
		}
		got, err := netlinkx.HostAddrs(nil)
		if err != nil {
			return err
		}
		want := []netip.Addr{netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("fd00:9::2")}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("HostAddrs = %v, missing %s", got, w)
			}
		}
		if got, _ := netlinkx.HostAddrs([]*regexp.Regexp{regexp.MustCompile(`^nic`)}); len(got) != 0 {
			t.Errorf("HostAddrs excluding ^nic = %v, want none", got)
		}
		if src, ok := netlinkx.RouteSrc(netip.MustParseAddr("10.9.0.1")); !ok || src != want[0] {
			t.Errorf("RouteSrc(10.9.0.1) = %v %v, want %s", src, ok, want[0])
		}
		if _, ok := netlinkx.RouteSrc(netip.MustParseAddr("192.0.2.1")); ok {
			t.Errorf("RouteSrc of an unroutable address reported a source")
		}

		dst := netip.MustParsePrefix("10.9.1.5/32")
		for i := 0; i < 2; i++ {
			if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: dst, Link: l, Table: 500}); err != nil {
				return err
			}
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.MustParsePrefix("10.233.0.0/18"), GW: netip.MustParseAddr("10.9.0.1"), Link: l}); err != nil {
			return err
		}
		routes, err := netlinkx.Routes(netlinkx.FamilyV4, 500, nil)
		if err != nil {
			return err
		}
		if len(routes) != 1 || routes[0].Dst.String() != "10.9.1.5/32" || routes[0].Scope != netlink.SCOPE_LINK {
			t.Errorf("table 500 = %v, want one link-scope route to 10.9.1.5/32", routes)
		}
		main, err := netlinkx.Routes(netlinkx.FamilyV4, 0, l)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(main, func(r netlink.Route) bool { return r.Dst.String() == "10.233.0.0/18" && r.Gw.String() == "10.9.0.1" }) {
			t.Errorf("main = %v, want 10.233.0.0/18 via 10.9.0.1", main)
		}
		for i := 0; i < 2; i++ {
			if err := netlinkx.DelRoutesTo(dst, 500, nil); err != nil {
				return err
			}
		}
		if routes, _ := netlinkx.Routes(netlinkx.FamilyV4, 500, nil); len(routes) != 0 {
			t.Errorf("table 500 after delete = %v", routes)
		}

		rules := []netlinkx.Rule{
			{Family: netlinkx.FamilyV4, Table: 500, Priority: 1000},
			{Family: netlinkx.FamilyV6, Table: 500, Priority: 1000},
			{Src: netip.MustParsePrefix("10.9.0.2/32"), Table: 101, Priority: -1},
		}
		for _, r := range rules {
			for i := 0; i < 2; i++ {
				if err := netlinkx.EnsureRule(r); err != nil {
					return err
				}
			}
			if found, err := netlinkx.FindRule(r); !found || err != nil {
				t.Errorf("FindRule(%+v) = %v, %v after EnsureRule", r, found, err)
			}
		}
		all, err := netlink.RuleList(netlinkx.FamilyV4)
		if err != nil {
			return err
		}
		if n := countTable(all, 500); n != 1 {
			t.Errorf("%d IPv4 rules lookup 500 after two EnsureRule, want 1", n)
		}
		for _, r := range rules {
			for i := 0; i < 2; i++ {
				if err := netlinkx.DelRule(r); err != nil {
					t.Errorf("DelRule(%+v) #%d: %v", r, i, err)
				}
			}
			if found, _ := netlinkx.FindRule(r); found {
				t.Errorf("rule %+v still present", r)
			}
		}
		return nil
	})
}

func countTable(rules []netlink.Rule, table int) int {
	n := 0
	for _, r := range rules {
		if r.Table == table {
			n++
		}
	}
	return n
}

func TestPrivilegedNeighAndSysctl(t *testing.T) {
	n, peer := testutil.NewNS(t), testutil.NewNS(t)
	l := vethIn(t, n, peer, "nic0", "nic0peer")
	testutil.InNS(t, n, func() error {
		mac := netlinkx.RandomMAC()
		ip := netip.MustParseAddr("10.9.0.7")
		for i := 0; i < 2; i++ {
			if err := netlinkx.SetNeigh(l, ip, mac); err != nil {
				return err
			}
		}
		neighs, err := netlinkx.Neighs(l, netlinkx.FamilyV4)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(neighs, func(x netlink.Neigh) bool {
			return x.IP.String() == ip.String() && x.HardwareAddr.String() == mac.String() && x.State == netlink.NUD_PERMANENT
		}) {
			t.Errorf("neighbours = %v, want permanent %s lladdr %s", neighs, ip, mac)
		}

		if err := netlinkx.SetTxQLen(l, 3000); err != nil {
			return err
		}
		if got, _ := netlinkx.LinkByName("nic0"); got.Attrs().TxQLen != 3000 {
			t.Errorf("txqueuelen = %d, want 3000", got.Attrs().TxQLen)
		}

		key := "net/ipv4/conf/nic0/rp_filter"
		for _, v := range []string{"2", "0"} {
			if err := netlinkx.SetSysctl(key, v); err != nil {
				return err
			}
			if got, err := netlinkx.Sysctl(key); got != v || err != nil {
				t.Errorf("sysctl %s = %q, %v; want %s", key, got, err, v)
			}
		}
		if err := netlinkx.SetSysctl("net/ipv4/conf/nosuchnic/rp_filter", "1"); err == nil {
			t.Errorf("writing a sysctl of a missing interface succeeded")
		}
		return nil
	})
}

func TestPrivilegedIPTablesAndMarkRule(t *testing.T) {
	n := testutil.NewNS(t)
	testutil.InNS(t, n, func() error {
		rules := []netlinkx.IPTablesRule{
			{Table: "mangle", Chain: "PREROUTING", Spec: []string{"-i", "veth0", "-j", "MARK", "--set-xmark", "0x1"}},
			{Table: "mangle", Chain: "OUTPUT", Spec: []string{"-j", "CONNMARK", "--restore-mark"}},
		}
		for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
			for i := 0; i < 2; i++ {
				if err := netlinkx.EnsureIPTablesRules(fam, rules); err != nil {
					return err
				}
			}
			list, err := netlinkx.IPTablesList(fam, "mangle", "PREROUTING")
			if err != nil {
				return err
			}
			if len(list) != 2 { // policy line + one rule
				t.Errorf("family %d: mangle PREROUTING = %q, want one rule", fam, list)
			}
			if ok, err := netlinkx.IPTablesRuleExists(fam, netlinkx.IPTablesRule{Table: "mangle", Chain: "OUTPUT", Spec: []string{"-j", "ACCEPT"}}); ok || err != nil {
				t.Errorf("family %d: a rule never added exists: %v %v", fam, ok, err)
			}

			r := netlinkx.Rule{Family: fam, Mark: 1, Table: 100, Priority: 1000}
			for i := 0; i < 2; i++ {
				if err := netlinkx.EnsureRule(r); err != nil {
					return err
				}
			}
			all, err := netlink.RuleList(fam)
			if err != nil {
				return err
			}
			if n := countTable(all, 100); n != 1 {
				t.Errorf("family %d: %d rules lookup 100, want 1", fam, n)
			}
			if found, _ := netlinkx.FindRule(netlinkx.Rule{Family: fam, Table: 100, Priority: 1000}); found {
				t.Errorf("family %d: the fwmark rule matched a rule without mark", fam)
			}
		}
		return nil
	})
}

func TestPrivilegedAnnounce(t *testing.T) {
	n, peer := testutil.NewNS(t), testutil.NewNS(t)
	l := vethIn(t, n, peer, "eth0", "sw0")
	testutil.InNS(t, peer, func() error {
		sw0, err := netlinkx.LinkByName("sw0")
		if err != nil {
			return err
		}
		// A gratuitous ARP creates an entry only for a sender on a subnet of the link.
		if err := netlinkx.AddAddr(sw0, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
			return err
		}
		return netlinkx.SetSysctl("net/ipv4/conf/sw0/arp_accept", "1")
	})
	ip := netip.MustParseAddr("10.9.0.10")
	testutil.InNS(t, n, func() error {
		if err := netlinkx.SetSysctl("net/ipv6/conf/eth0/accept_dad", "0"); err != nil {
			return err
		}
		for _, p := range []string{"10.9.0.10/24", "fd00:9::10/64"} {
			if err := netlinkx.AddAddr(l, netip.MustParsePrefix(p)); err != nil {
				return err
			}
		}
		if err := netlinkx.Announce(l, ip); err != nil {
			return err
		}
		// Nothing observes the advertisement without accept_untracked_na; it must at least go out.
		return netlinkx.Announce(l, netip.MustParseAddr("fd00:9::10"))
	})
	testutil.InNS(t, peer, func() error {
		sw0, err := netlinkx.LinkByName("sw0")
		if err != nil {
			return err
		}
		// The ARP is processed asynchronously (softirq of the veth peer).
		for i := 0; i < 50; i++ {
			neighs, err := netlinkx.Neighs(sw0, netlinkx.FamilyV4)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(neighs, func(x netlink.Neigh) bool {
				return x.IP.Equal(ip.AsSlice()) && x.HardwareAddr.String() == l.Attrs().HardwareAddr.String()
			}) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("the peer did not learn %s at %s from the gratuitous ARP", ip, l.Attrs().HardwareAddr)
		return nil
	})
}
