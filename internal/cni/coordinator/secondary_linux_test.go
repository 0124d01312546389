package coordinator

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

var (
	host1V4 = netip.MustParseAddr("10.7.0.2")
	net1V4  = netip.MustParsePrefix("10.7.1.10/16")
)

// addSecondary gives the node a second NIC nic1 (10.7.0.2/16, gateway 10.7.0.1 in a second switch
// namespace) and the pod net1, a macvlan on it with a default route of a higher metric, as a
// second main plugin leaves it.
func (e *underlayEnv) addSecondary(t *testing.T) {
	t.Helper()
	sw := testutil.NewNS(t)
	testutil.InNS(t, sw, func() error {
		l, err := netlinkx.AddVeth(netlinkx.Veth{Name: "sw1", PeerName: "nic1", MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: e.host})
		if err != nil {
			return err
		}
		return netlinkx.AddAddr(l, netip.MustParsePrefix("10.7.0.1/16"))
	})
	testutil.InNS(t, e.host, func() error {
		nic, err := netlinkx.LinkByName("nic1")
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(nic, netip.PrefixFrom(host1V4, 16)); err != nil {
			return err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "net1"
		attrs.ParentIndex = nic.Attrs().Index
		attrs.Namespace = netlink.NsFd(int(e.pod.Fd()))
		return netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE})
	})
	testutil.InNS(t, e.pod, func() error {
		net1, err := netlinkx.LinkByName("net1")
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(net1, net1V4); err != nil {
			return err
		}
		if err := netlinkx.LinkUp(net1); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: net1.Attrs().Index, Dst: netlinkx.IPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: netip.MustParseAddr("10.7.0.1").AsSlice(), Priority: 100})
	})
}

func (e *underlayEnv) net1Conf(ver, extra string) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-net1","type":"coordinator","logOptions":{"logFile":%q},"prevResult":%s`,
		ver, e.logFile, prevResultJSON(ver, "net1", net1V4.String()))
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func TestPrivilegedUnderlaySecondaryNIC(t *testing.T) {
	tuned := agentConfig
	tuned.TunePodRoutes = true
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			e := newUnderlayEnv(t)
			e.addSecondary(t)
			e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(tuned))
			if err := e.run(t, "ADD", "eth0", e.conf(ver, "")); err != nil {
				t.Fatalf("ADD eth0: %v", err)
			}
			// Twice: a retried ADD changes nothing.
			for i := 0; i < 2; i++ {
				if err := e.run(t, "ADD", "net1", e.net1Conf(ver, "")); err != nil {
					t.Fatalf("ADD net1 #%d: %v", i, err)
				}
			}

			testutil.InNS(t, e.pod, func() error {
				// eth0, veth0 and net1 are up: table 3+98.
				assertRoutes(t, "pod table 101", 101, nil, []string{
					"0.0.0.0/0 via 10.7.0.1 dev net1",
					"10.7.0.0/16 dev net1",
					"10.6.0.2/32 dev veth0",
					"10.7.0.2/32 dev veth0",
					"10.233.64.0/18 via 10.7.0.2 dev veth0",
					"10.233.0.0/18 via 10.7.0.2 dev veth0",
					"169.254.25.10/32 via 10.7.0.2 dev veth0",
				})
				net1, err := netlinkx.LinkByName("net1")
				if err != nil {
					return err
				}
				assertRoutes(t, "pod main net1", 0, net1, []string{"10.7.0.0/16 dev net1"})
				if routes, _ := netlinkx.Routes(netlinkx.FamilyV4, 0, net1); len(routes) != 1 {
					t.Errorf("pod main routes on net1 = %v, want only the subnet route (the default moved to table 101)", routes)
				}
				eth0, err := netlinkx.LinkByName("eth0")
				if err != nil {
					return err
				}
				assertRoutes(t, "pod main eth0", 0, eth0, []string{"0.0.0.0/0 via 10.6.0.1 dev eth0"})
				if ok, err := netlinkx.FindRule(netlinkx.Rule{Src: netip.MustParsePrefix("10.7.1.10/32"), Table: 101, Priority: -1}); !ok || err != nil {
					t.Errorf("pod: no rule 'from 10.7.1.10 lookup 101': %v", err)
				}
				return nil
			})
			testutil.InNS(t, e.host, func() error {
				assertRoutes(t, "host table 500", 500, nil, []string{
					"10.6.1.10/32 dev " + testHostVeth, "fd00:6::10/128 dev " + testHostVeth, "10.7.1.10/32 dev " + testHostVeth,
				})
				return nil
			})
			// The node reaches net1's address through veth0 and the answer comes back the same
			// way, by net1's source rule.
			assertConnectFrom(t, e.host, hostV4, e.pod, net1V4.Addr())

			if err := e.run(t, "DEL", "net1", e.net1Conf(ver, "")); err != nil {
				t.Fatalf("DEL net1: %v", err)
			}
			testutil.InNS(t, e.host, func() error {
				assertRoutes(t, "host table 500 after DEL net1", 500, nil, []string{
					"10.6.1.10/32 dev " + testHostVeth, "fd00:6::10/128 dev " + testHostVeth,
				})
				return nil
			})
			if err := e.run(t, "DEL", "net1", e.net1Conf(ver, "")); err != nil {
				t.Fatalf("DEL net1 again: %v", err)
			}
			if err := e.run(t, "DEL", "eth0", e.conf(ver, "")); err != nil {
				t.Fatalf("DEL eth0: %v", err)
			}
			testutil.InNS(t, e.host, func() error {
				assertRoutes(t, "host table 500 after DEL", 500, nil, nil)
				return nil
			})
			// The runtime may repeat DEL for every NIC after the pair is gone.
			if err := e.run(t, "DEL", "net1", e.net1Conf(ver, "")); err != nil {
				t.Fatalf("DEL net1 after DEL eth0: %v", err)
			}
		})
	}
}

func TestPrivilegedUnderlaySecondaryDefaultRoute(t *testing.T) {
	tuned := agentConfig
	tuned.TunePodRoutes = true
	tuned.PodDefaultRouteNIC = "net1"
	e := newUnderlayEnv(t)
	e.addSecondary(t)
	e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(tuned))
	if err := e.run(t, "ADD", "eth0", e.conf("1.1.0", "")); err != nil {
		t.Fatalf("ADD eth0: %v", err)
	}
	if err := e.run(t, "ADD", "net1", e.net1Conf("1.1.0", "")); err != nil {
		t.Fatalf("ADD net1: %v", err)
	}
	testutil.InNS(t, e.pod, func() error {
		net1, err := netlinkx.LinkByName("net1")
		if err != nil {
			return err
		}
		eth0, err := netlinkx.LinkByName("eth0")
		if err != nil {
			return err
		}
		assertRoutes(t, "pod main net1", 0, net1, []string{"0.0.0.0/0 via 10.7.0.1 dev net1", "10.7.0.0/16 dev net1"})
		if routes, _ := netlinkx.Routes(netlinkx.FamilyV4, 0, eth0); len(routes) != 1 {
			t.Errorf("pod main routes on eth0 = %v, want only the subnet route (the default moved to table 101)", routes)
		}
		assertRoutes(t, "pod table 101 eth0", 101, eth0, []string{"0.0.0.0/0 via 10.6.0.1 dev eth0", "10.6.0.0/16 dev eth0"})
		for _, src := range []string{"10.6.1.10/32", "fd00:6::10/128"} {
			if ok, err := netlinkx.FindRule(netlinkx.Rule{Src: netip.MustParsePrefix(src), Table: 101, Priority: -1}); !ok || err != nil {
				t.Errorf("pod: no rule 'from %s lookup 101': %v", src, err)
			}
		}
		return nil
	})

	// A podDefaultRouteNic that does not exist is an error.
	tuned.PodDefaultRouteNIC = "net9"
	e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(tuned))
	if err := e.run(t, "ADD", "net1", e.net1Conf("1.1.0", "")); err == nil {
		t.Errorf("ADD net1 with podDefaultRouteNic net9 succeeded")
	}
}
