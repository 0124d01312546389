package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

const (
	podMAC          = "0a:1b:0a:06:01:0a" // podMACPrefix 0a:1b + 10.6.1.10
	testContainerID = "4653bc4f24aabbccddeeff00"
	testHostVeth    = "veth4653bc4f24a"
	testPodArgs     = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;K8S_POD_UID=uid-1"
)

var (
	hostV4, hostV6 = netip.MustParseAddr("10.6.0.2"), netip.MustParseAddr("fd00:6::2")
	podV4, podV6   = netip.MustParsePrefix("10.6.1.10/16"), netip.MustParsePrefix("fd00:6::10/64")
	// On the host's cni0, an interface whose addresses the pod must not get routes for.
	clientV4, clientV6 = netip.MustParsePrefix("192.168.50.1/24"), netip.MustParsePrefix("fd00:50::1/64")
)

// underlayEnv is a node and a pod: the "host" namespace has nic0 (10.6.0.2/16, fd00:6::2/64),
// one end of a veth whose other end sits in a "switch" namespace holding the gateway; the pod's
// eth0 is a macvlan on nic0 with the addresses of the prevResult, as the macvlan plugin leaves it.
type underlayEnv struct {
	host, pod ns.NetNS
	sw        ns.NetNS
	agent     *clienttest.Server
	plugin    *plugin
	stdout    *bytes.Buffer
	logFile   string
}

func newUnderlayEnv(t *testing.T) *underlayEnv {
	t.Helper()
	e := &underlayEnv{host: testutil.NewNS(t), pod: testutil.NewNS(t), agent: clienttest.NewServer(t)}
	e.plugin, e.stdout, e.logFile = newTestPlugin(t, e.agent)
	sw := testutil.NewNS(t)

	testutil.InNS(t, sw, func() error {
		_, err := netlinkx.AddVeth(netlinkx.Veth{Name: "sw0", PeerName: "nic0", MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: e.host})
		if err != nil {
			return err
		}
		l, err := netlinkx.LinkByName("sw0")
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(l, netip.MustParsePrefix("10.6.0.1/16")); err != nil {
			return err
		}
		// Learn from gratuitous ARP, to see the pod's announcement.
		return netlinkx.SetSysctl("net/ipv4/conf/sw0/arp_accept", "1")
	})
	e.sw = sw
	testutil.InNS(t, e.host, func() error {
		if err := netlinkx.SetSysctl("net/ipv6/conf/nic0/accept_dad", "0"); err != nil {
			return err
		}
		nic, err := netlinkx.LinkByName("nic0")
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{netip.PrefixFrom(hostV4, 16), netip.PrefixFrom(hostV6, 64)} {
			if err := netlinkx.AddAddr(nic, p); err != nil {
				return err
			}
		}
		cni0, err := netlinkx.AddVeth(netlinkx.Veth{Name: "cni0", PeerName: "cni0peer", MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: e.host, NoDAD: true})
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{clientV4, clientV6} {
			if err := netlinkx.AddAddr(cni0, p); err != nil {
				return err
			}
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "eth0"
		attrs.ParentIndex = nic.Attrs().Index
		attrs.Namespace = netlink.NsFd(int(e.pod.Fd()))
		if err := netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
			return fmt.Errorf("create macvlan: %w", err)
		}
		return nil
	})
	testutil.InNS(t, e.pod, func() error {
		for _, dev := range []string{"all", "default", "eth0"} {
			if err := netlinkx.SetSysctl("net/ipv6/conf/"+dev+"/accept_dad", "0"); err != nil {
				return err
			}
		}
		eth0, err := netlinkx.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{podV4, podV6} {
			if err := netlinkx.AddAddr(eth0, p); err != nil {
				return err
			}
		}
		if err := netlinkx.LinkUp(eth0); err != nil {
			return err
		}
		// The main plugin's default routes, which replies would take without the reply path.
		for _, gw := range []string{"10.6.0.1", "fd00:6::1"} {
			gw := netip.MustParseAddr(gw)
			def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if gw.Is6() {
				def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: def, GW: gw, Link: eth0}); err != nil {
				return err
			}
		}
		return nil
	})
	return e
}

// newTestPlugin returns a plugin talking to the fake agent, its stdout and a log file path.
func newTestPlugin(t *testing.T, a *clienttest.Server) (*plugin, *bytes.Buffer, string) {
	stdout := &bytes.Buffer{}
	p := &plugin{stdout: stdout, socketPath: a.SocketPath, newAgent: func(s string) agent { return client.New(s) }}
	// The plugin's log directory is the test's, never the host's /var/log/spidernet.
	logDir := t.TempDir()
	t.Setenv(cnilog.DirEnv, logDir)
	return p, stdout, filepath.Join(logDir, "coordinator.log")
}

func (e *underlayEnv) conf(ver, extra string) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-conf","type":"coordinator","logOptions":{"logFile":%q},"prevResult":%s`,
		ver, e.logFile, prevResultJSON(ver, "eth0", podV4.String(), podV6.String()))
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

// run calls a command as the runtime would, from the host namespace.
func (e *underlayEnv) run(t *testing.T, command, ifName string, stdin []byte) error {
	t.Helper()
	e.stdout.Reset()
	args := &skel.CmdArgs{ContainerID: testContainerID, Netns: e.pod.Path(), IfName: ifName, Args: testPodArgs, StdinData: stdin}
	funcs := e.plugin.funcs()
	f := map[string]func(*skel.CmdArgs) error{"ADD": funcs.Add, "DEL": funcs.Del, "CHECK": funcs.Check}[command]
	var err error
	if doErr := e.host.Do(func(ns.NetNS) error { err = f(args); return nil }); doErr != nil {
		t.Fatal(doErr)
	}
	return err
}

var agentConfig = v1.CoordinatorConfig{
	Mode:           "auto",
	OverlayPodCIDR: []string{"10.233.64.0/18"},
	ServiceCIDR:    []string{"10.233.0.0/18", "fd00:233::/112"},
	HijackCIDR:     []string{"169.254.25.10/32"},
	PodRPFilter:    0,
	VethMTU:        1400,
	TxQueueLen:     2000,
}

func TestPrivilegedUnderlayAddDel(t *testing.T) {
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			e := newUnderlayEnv(t)
			e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(agentConfig))
			conf := e.conf(ver, `"vethLinkAddress":"169.254.200.1","policyRoutes":[{"dst":"172.16.0.0/16","gw":"10.6.0.1"}],"podMACPrefix":"0a:1b"`)

			// Twice: a retried ADD replaces the first attempt's pair.
			for i := 0; i < 2; i++ {
				if err := e.run(t, "ADD", "eth0", conf); err != nil {
					t.Fatalf("ADD #%d: %v", i, err)
				}
			}
			assertPrevResultPrinted(t, ver, e.stdout.Bytes())
			var cfgReq v1.CoordinatorConfigArgs
			e.agent.RequestsTo(http.MethodGet, v1.PathCoordinatorConfig)[0].Decode(t, &cfgReq)
			if cfgReq != (v1.CoordinatorConfigArgs{PodName: "nginx", PodNamespace: "default"}) {
				t.Errorf("agent asked for %+v", cfgReq)
			}

			var hostVethMAC, veth0MAC string
			testutil.InNS(t, e.host, func() error {
				hv, err := netlinkx.LinkByName(testHostVeth)
				if err != nil {
					return err
				}
				hostVethMAC = hv.Attrs().HardwareAddr.String()
				if hv.Attrs().MTU != 1400 || hv.Attrs().OperState != netlink.OperUp {
					t.Errorf("%s: mtu %d state %s, want 1400 up", testHostVeth, hv.Attrs().MTU, hv.Attrs().OperState)
				}
				for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
					if ok, err := netlinkx.FindRule(netlinkx.Rule{Family: fam, Table: 500, Priority: 1000}); !ok || err != nil {
						t.Errorf("host: no rule 'from all lookup 500 pref 1000' (family %d): %v", fam, err)
					}
				}
				assertRoutes(t, "host table 500", 500, nil, []string{"10.6.1.10/32 dev " + testHostVeth, "fd00:6::10/128 dev " + testHostVeth})
				return nil
			})
			testutil.InNS(t, e.pod, func() error {
				veth0, err := netlinkx.LinkByName("veth0")
				if err != nil {
					return err
				}
				veth0MAC = veth0.Attrs().HardwareAddr.String()
				if veth0.Attrs().MTU != 1400 || veth0.Attrs().Flags&net.FlagUp == 0 {
					t.Errorf("veth0: mtu %d flags %v, want 1400 up", veth0.Attrs().MTU, veth0.Attrs().Flags)
				}
				if veth0MAC == hostVethMAC {
					t.Errorf("veth0 and %s share the MAC %s", testHostVeth, veth0MAC)
				}
				if addrs, _ := netlinkx.Addrs(veth0, netlinkx.FamilyV4); !slices.Contains(addrs, netip.MustParsePrefix("169.254.200.1/32")) {
					t.Errorf("veth0 addresses %v, want 169.254.200.1/32", addrs)
				}
				eth0, err := netlinkx.LinkByName("eth0")
				if err != nil {
					return err
				}
				if got := eth0.Attrs().HardwareAddr.String(); got != podMAC {
					t.Errorf("eth0 MAC %s, want %s (podMACPrefix + pod IPv4)", got, podMAC)
				}
				if eth0.Attrs().TxQLen != 2000 {
					t.Errorf("eth0 txqueuelen %d, want 2000", eth0.Attrs().TxQLen)
				}
				assertRoutes(t, "pod main", 0, veth0, []string{
					"10.6.0.2/32 dev veth0",
					"fd00:6::2/128 dev veth0",
					"10.233.64.0/18 via 10.6.0.2 dev veth0",
					"10.233.0.0/18 via 10.6.0.2 dev veth0",
					"169.254.25.10/32 via 10.6.0.2 dev veth0",
					"fd00:233::/112 via fd00:6::2 dev veth0",
				})
				assertRoutes(t, "pod main eth0", 0, eth0, []string{"172.16.0.0/16 via 10.6.0.1 dev eth0"})
				assertRoutes(t, "pod table 100", 100, nil, []string{
					"10.6.0.2/32 dev veth0", "fd00:6::2/128 dev veth0",
					"0.0.0.0/0 via 10.6.0.2 dev veth0", "::/0 via fd00:6::2 dev veth0",
				})
				for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
					if ok, err := netlinkx.FindRule(netlinkx.Rule{Family: fam, Mark: 1, Table: 100, Priority: 1000}); !ok || err != nil {
						t.Errorf("pod: no rule 'fwmark 0x1 lookup 100 pref 1000' (family %d): %v", fam, err)
					}
					// Two ADDs, one set of rules.
					for chain, want := range map[string]int{"PREROUTING": 2, "OUTPUT": 1} {
						list, err := netlinkx.IPTablesList(fam, "mangle", chain)
						if err != nil {
							return err
						}
						if n := len(list) - 1; n != want { // the first line is the chain's policy
							t.Errorf("pod (family %d): mangle %s has %d rules, want %d: %q", fam, chain, n, want, list)
						}
					}
					for _, r := range []netlinkx.IPTablesRule{
						{Table: "mangle", Chain: "PREROUTING", Spec: []string{"-i", "veth0", "-m", "conntrack", "--ctstate", "NEW", "-j", "MARK", "--set-xmark", "0x1/0xffffffff"}},
						{Table: "mangle", Chain: "PREROUTING", Spec: []string{"-m", "mark", "--mark", "0x1", "-j", "CONNMARK", "--save-mark", "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"}},
						{Table: "mangle", Chain: "OUTPUT", Spec: []string{"-j", "CONNMARK", "--restore-mark", "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"}},
					} {
						if ok, err := netlinkx.IPTablesRuleExists(fam, r); !ok || err != nil {
							t.Errorf("pod (family %d): iptables rule %s missing: %v", fam, r, err)
						}
					}
				}
				assertNeigh(t, veth0, hostV4, hostVethMAC)
				assertNeigh(t, veth0, hostV6, hostVethMAC)
				for key, want := range map[string]string{"net/ipv4/conf/eth0/rp_filter": "0", "net/ipv6/conf/veth0/disable_ipv6": "0"} {
					if got, err := netlinkx.Sysctl(key); got != want || err != nil {
						t.Errorf("pod sysctl %s = %q, %v; want %s", key, got, err, want)
					}
				}
				return nil
			})
			testutil.InNS(t, e.host, func() error {
				hv, err := netlinkx.LinkByName(testHostVeth)
				if err != nil {
					return err
				}
				assertNeigh(t, hv, podV4.Addr(), veth0MAC)
				assertNeigh(t, hv, podV6.Addr(), veth0MAC)
				return nil
			})

			testutil.InNS(t, e.sw, func() error {
				sw0, err := netlinkx.LinkByName("sw0")
				if err != nil {
					return err
				}
				neighs, err := netlinkx.Neighs(sw0, netlinkx.FamilyV4)
				if err != nil {
					return err
				}
				if !slices.ContainsFunc(neighs, func(n netlink.Neigh) bool {
					return n.IP.Equal(podV4.Addr().AsSlice()) && n.HardwareAddr.String() == podMAC
				}) {
					t.Errorf("the underlay did not learn %s at %s from the gratuitous ARP: %v", podV4.Addr(), podMAC, neighs)
				}
				return nil
			})

			// The pod reaches the node's addresses through veth0 (a macvlan cannot reach its
			// parent), and the replies come back through table 500.
			for _, ip := range []netip.Addr{hostV4, hostV6} {
				assertConnect(t, e.host, e.pod, ip)
			}
			// A connection the node forwards into the pod from an address the pod has no route
			// for (a NodePort client) is answered through veth0 thanks to the connection mark.
			for _, client := range []netip.Prefix{clientV4, clientV6} {
				pod := podV4.Addr()
				if client.Addr().Is6() {
					pod = podV6.Addr()
				}
				assertConnectFrom(t, e.host, client.Addr(), e.pod, pod)
			}

			if err := e.run(t, "CHECK", "eth0", conf); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			for i := 0; i < 2; i++ {
				if err := e.run(t, "DEL", "eth0", conf); err != nil {
					t.Fatalf("DEL #%d: %v", i, err)
				}
			}
			testutil.InNS(t, e.host, func() error {
				if ok, _ := netlinkx.LinkExists(testHostVeth); ok {
					t.Errorf("%s left on the host after DEL", testHostVeth)
				}
				assertRoutes(t, "host table 500 after DEL", 500, nil, nil)
				for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
					if ok, err := netlinkx.FindRule(netlinkx.Rule{Family: fam, Table: 500, Priority: 1000}); ok || err != nil {
						t.Errorf("host: rule 'from all lookup 500' (family %d) left after the last pod's DEL (%v)", fam, err)
					}
				}
				return nil
			})
			testutil.InNS(t, e.pod, func() error {
				if ok, _ := netlinkx.LinkExists("veth0"); ok {
					t.Errorf("veth0 left in the pod after DEL")
				}
				return nil
			})
		})
	}
}

func TestPrivilegedDelMissingNetns(t *testing.T) {
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			e := newUnderlayEnv(t)
			args := &skel.CmdArgs{ContainerID: testContainerID, Netns: "/var/run/netns/does-not-exist", IfName: "eth0", Args: testPodArgs, StdinData: e.conf(ver, "")}
			var err error
			testutil.InNS(t, e.host, func() error { err = e.plugin.funcs().Del(args); return nil })
			if err != nil {
				t.Fatalf("DEL with a missing netns: %v", err)
			}
			if n := len(e.agent.Requests()); n != 0 {
				t.Errorf("DEL asked the agent %d times", n)
			}
		})
	}
}

func TestPrivilegedModes(t *testing.T) {
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			e := newUnderlayEnv(t)
			e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(agentConfig))

			// disabled in the NAD: prevResult untouched, agent not asked.
			if err := e.run(t, "ADD", "eth0", e.conf(ver, `"mode":"disabled"`)); err != nil {
				t.Fatalf("ADD disabled: %v", err)
			}
			assertPrevResultPrinted(t, ver, e.stdout.Bytes())
			if n := len(e.agent.Requests()); n != 0 {
				t.Errorf("disabled ADD asked the agent %d times", n)
			}
			testutil.InNS(t, e.pod, func() error {
				if ok, _ := netlinkx.LinkExists("veth0"); ok {
					t.Errorf("disabled ADD created veth0")
				}
				return nil
			})

			// overlay on the first NIC is refused; auto on a secondary NIC without veth0 is overlay,
			// which fails on a macvlan first NIC: both without leaving anything behind.
			for _, c := range []struct{ ifName, extra, want string }{
				{"eth0", `"mode":"overlay"`, "first NIC"},
				{"net1", "", "veth"}, // auto → overlay, which needs the first NIC to be a veth
			} {
				conf := e.conf(ver, c.extra)
				if c.ifName == "net1" {
					conf = e.net1Conf(ver, c.extra)
				}
				err := e.run(t, "ADD", c.ifName, conf)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("ADD %s %s: error %v, want %q", c.ifName, c.extra, err, c.want)
				}
				if e.stdout.Len() != 0 {
					t.Errorf("failed ADD printed %q", e.stdout)
				}
			}
			testutil.InNS(t, e.host, func() error {
				if ok, _ := netlinkx.LinkExists(testHostVeth); ok {
					t.Errorf("failed ADD left %s", testHostVeth)
				}
				return nil
			})
		})
	}
}

func TestPrivilegedAgentErrors(t *testing.T) {
	e := newUnderlayEnv(t)
	e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.Fail(http.StatusInternalServerError, v1.CodeNotReady, "spidercoordinator default is not ready"))
	err := e.run(t, "ADD", "eth0", e.conf("1.0.0", ""))
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater || !strings.Contains(cniErr.Msg, "not ready") {
		t.Fatalf("ADD with a not-ready coordinator: %v, want a try-again error naming the cause", err)
	}

	e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(v1.CoordinatorConfig{Mode: "underlay", HostRuleTable: 254}))
	err = e.run(t, "ADD", "eth0", e.conf("1.0.0", ""))
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, "hostRuleTable") {
		t.Fatalf("ADD with a bad agent value: %v", err)
	}
	testutil.InNS(t, e.host, func() error {
		if ok, _ := netlinkx.LinkExists(testHostVeth); ok {
			t.Errorf("failed ADD left %s", testHostVeth)
		}
		return nil
	})
}

// assertPrevResultPrinted checks that stdout is prevResult, unchanged.
func assertPrevResultPrinted(t *testing.T, ver string, out []byte) {
	t.Helper()
	assertResultIs(t, out, prevResultJSON(ver, "eth0", podV4.String(), podV6.String()))
}

func assertResultIs(t *testing.T, out []byte, prev string) {
	t.Helper()
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if err := json.Unmarshal([]byte(prev), &want); err != nil {
		t.Fatal(err)
	}
	// The 0.x result types always write a "dns" object; an empty one is the same result.
	if dns, ok := got["dns"].(map[string]any); ok && len(dns) == 0 {
		delete(got, "dns")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("printed result differs from prevResult (-want +got):\n%s", diff)
	}
}

// assertRoutes compares the routes of a table (on link, when given) with want, written as
// "dst [via gw] dev name".
func assertRoutes(t *testing.T, what string, table int, link netlink.Link, want []string) {
	t.Helper()
	var got []string
	for _, fam := range []int{netlinkx.FamilyV4, netlinkx.FamilyV6} {
		routes, err := netlinkx.Routes(fam, table, link)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst == nil || (r.Dst.IP.IsLinkLocalUnicast() && r.Dst.IP.To4() == nil) || r.Dst.IP.IsMulticast() {
				continue // the kernel's fe80::/64 and multicast routes
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Dst.String()
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			got = append(got, s+" dev "+l.Attrs().Name)
		}
	}
	if link != nil {
		// Only the wanted routes matter on a shared link (the kernel adds connected routes).
		got = slices.DeleteFunc(got, func(s string) bool { return !slices.Contains(want, s) })
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if diff := cmp.Diff(want, got, cmp.Transformer("nilToEmpty", func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	})); diff != "" {
		t.Errorf("%s routes (-want +got):\n%s", what, diff)
	}
}

func assertNeigh(t *testing.T, l netlink.Link, ip netip.Addr, mac string) {
	t.Helper()
	neighs, err := netlinkx.Neighs(l, netlinkx.Family(ip))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(neighs, func(n netlink.Neigh) bool {
		return n.IP.Equal(ip.AsSlice()) && n.HardwareAddr.String() == mac && n.State == netlink.NUD_PERMANENT
	}) {
		t.Errorf("no permanent neighbour %s lladdr %s on %s", ip, mac, l.Attrs().Name)
	}
}

// assertConnectFrom opens a TCP connection from the client address in the host namespace to a
// listener on the pod address in the pod namespace.
func assertConnectFrom(t *testing.T, host ns.NetNS, client netip.Addr, pod ns.NetNS, server netip.Addr) {
	t.Helper()
	var ln net.Listener
	testutil.InNS(t, pod, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(server, 0).String())
		return err
	})
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	testutil.InNS(t, host, func() error {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Errorf("the host cannot reach the pod at %s from %s: %v", ln.Addr(), client, err)
			return nil
		}
		return c.Close()
	})
}

// assertConnect opens a TCP connection from the pod to a listener on the host address: the SYN
// goes out through veth0, the SYN-ACK must find its way back.
func assertConnect(t *testing.T, host, pod ns.NetNS, ip netip.Addr) {
	t.Helper()
	var ln net.Listener
	testutil.InNS(t, host, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		return err
	})
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	testutil.InNS(t, pod, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
		if err != nil {
			t.Errorf("pod cannot reach the host at %s: %v", ln.Addr(), err)
			return nil
		}
		return c.Close()
	})
}
