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

const testCaliVeth = "cali4653bc4f24a"

var (
	calicoPodIP = netip.MustParseAddr("10.233.73.210")
	overlayNet1 = netip.MustParsePrefix("10.6.212.145/16")
	overlayHost = netip.MustParseAddr("10.6.212.132")
)

// newOverlayEnv is the Calico-overlay guide's pod (docs/guides/calico-overlay.md#5-routes-inside-the-pod) in namespaces: eth0 is a veth
// whose host end is cali..., with 10.233.73.210/32 and a default route via 169.254.1.1; net1 is a
// macvlan on the node's nic0 (10.6.212.132/16, gateway 10.6.0.1) with 10.6.212.145/16 and a
// default route of a higher metric, as the second main plugin leaves it.
func newOverlayEnv(t *testing.T) *underlayEnv {
	t.Helper()
	e := &underlayEnv{host: testutil.NewNS(t), pod: testutil.NewNS(t), agent: clienttest.NewServer(t)}
	e.plugin, e.stdout, e.logFile = newTestPlugin(t, e.agent)
	sw := testutil.NewNS(t)
	testutil.InNS(t, sw, func() error {
		l, err := netlinkx.AddVeth(netlinkx.Veth{Name: "sw0", PeerName: "nic0", MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: e.host})
		if err != nil {
			return err
		}
		return netlinkx.AddAddr(l, netip.MustParsePrefix("10.6.0.1/16"))
	})
	testutil.InNS(t, e.host, func() error {
		nic, err := netlinkx.LinkByName("nic0")
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(nic, netip.PrefixFrom(overlayHost, 16)); err != nil {
			return err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "net1"
		attrs.ParentIndex = nic.Attrs().Index
		attrs.Namespace = netlink.NsFd(int(e.pod.Fd()))
		return netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE})
	})
	testutil.InNS(t, e.pod, func() error {
		eth0, err := netlinkx.AddVeth(netlinkx.Veth{Name: "eth0", PeerName: testCaliVeth, MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: e.host})
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(eth0, netip.PrefixFrom(calicoPodIP, 32)); err != nil {
			return err
		}
		gw := netip.MustParseAddr("169.254.1.1")
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.PrefixFrom(gw, 32), Link: eth0}); err != nil {
			return err
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: gw, Link: eth0}); err != nil {
			return err
		}
		net1, err := netlinkx.LinkByName("net1")
		if err != nil {
			return err
		}
		if err := netlinkx.AddAddr(net1, overlayNet1); err != nil {
			return err
		}
		if err := netlinkx.LinkUp(net1); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: net1.Attrs().Index, Dst: netlinkx.IPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: netip.MustParseAddr("10.6.0.1").AsSlice(), Priority: 100})
	})
	testutil.InNS(t, e.host, func() error {
		// What Calico does on the node: the pod's address routed to its veth.
		cali, err := netlinkx.LinkByName(testCaliVeth)
		if err != nil {
			return err
		}
		return netlinkx.ReplaceRoute(netlinkx.Route{Dst: netip.PrefixFrom(calicoPodIP, 32), Link: cali})
	})
	return e
}

func TestPrivilegedOverlay(t *testing.T) {
	cfg := v1.CoordinatorConfig{
		Mode: "auto", TunePodRoutes: true,
		OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"},
	}
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			e := newOverlayEnv(t)
			e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(cfg))
			conf := []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-net1","type":"coordinator","logOptions":{"logFile":%q},"prevResult":%s}`,
				ver, e.logFile, prevResultJSON(ver, "net1", overlayNet1.String())))
			for i := 0; i < 2; i++ {
				if err := e.run(t, "ADD", "net1", conf); err != nil {
					t.Fatalf("ADD net1 #%d: %v", i, err)
				}
			}
			assertResultIs(t, e.stdout.Bytes(), prevResultJSON(ver, "net1", overlayNet1.String()))

			testutil.InNS(t, e.pod, func() error {
				assertRoutes(t, "pod main", 0, nil, []string{
					"0.0.0.0/0 via 169.254.1.1 dev eth0",
					"10.6.0.0/16 dev net1",
					"10.6.212.132/32 dev eth0",
					"10.233.0.0/18 via 10.6.212.132 dev eth0",
					"10.233.64.0/18 via 10.6.212.132 dev eth0",
					"169.254.1.1/32 dev eth0",
				})
				assertRoutes(t, "pod table 101", 101, nil, []string{
					"0.0.0.0/0 via 10.6.0.1 dev net1",
					"10.6.0.0/16 dev net1",
					"10.6.212.132/32 dev eth0",
					"10.233.0.0/18 via 10.6.212.132 dev eth0",
					"10.233.64.0/18 via 10.6.212.132 dev eth0",
				})
				assertRoutes(t, "pod table 100", 100, nil, []string{"0.0.0.0/0 via 169.254.1.1 dev eth0"})
				for _, r := range []netlinkx.Rule{
					{Src: netip.MustParsePrefix("10.6.212.145/32"), Table: 101, Priority: -1},
					{Src: netip.MustParsePrefix("10.233.73.210/32"), Table: 100, Priority: -1},
				} {
					if ok, err := netlinkx.FindRule(r); !ok || err != nil {
						t.Errorf("pod: no rule from %s lookup %d: %v", r.Src, r.Table, err)
					}
				}
				return nil
			})
			testutil.InNS(t, e.host, func() error {
				assertRoutes(t, "host table 500", 500, nil, []string{"10.6.212.145/32 dev " + testCaliVeth})
				return nil
			})
			// The node reaches net1's address through the Calico veth; the answer leaves by
			// net1's source rule, to the node route in table 101.
			assertConnectFrom(t, e.host, overlayHost, e.pod, overlayNet1.Addr())

			for i := 0; i < 2; i++ {
				if err := e.run(t, "DEL", "net1", conf); err != nil {
					t.Fatalf("DEL net1 #%d: %v", i, err)
				}
			}
			testutil.InNS(t, e.host, func() error {
				assertRoutes(t, "host table 500 after DEL", 500, nil, nil)
				if ok, _ := netlinkx.LinkExists(testCaliVeth); !ok {
					t.Errorf("DEL of net1 removed the overlay CNI's %s", testCaliVeth)
				}
				return nil
			})
		})
	}
}
