package coordinator

import (
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// TestPrivilegedFailedAddLeavesHostClean makes ADDs fail half way, after the veth pair, routes,
// neighbours and iptables rules are in place: a policy route through a gateway the pod cannot
// reach is the last step of the pod side. The host must be as it was: no veth, route, rule or
// neighbour entry of the failed attempt (iptables rules are only ever added in the pod).
func TestPrivilegedFailedAddLeavesHostClean(t *testing.T) {
	badRoute := `"policyRoutes":[{"dst":"172.16.0.0/16","gw":"192.0.2.1"}]`
	hostState := func(t *testing.T, e *underlayEnv) string {
		t.Helper()
		s, err := netsim.HostState(e.host)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("first NIC", func(t *testing.T) {
		e := newUnderlayEnv(t)
		e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(agentConfig))
		before := hostState(t, e)
		err := e.run(t, "ADD", "eth0", e.conf("1.1.0", badRoute))
		if err == nil || !strings.Contains(err.Error(), "192.0.2.1") {
			t.Fatalf("ADD with an unreachable policy route gateway: %v", err)
		}
		if after := hostState(t, e); after != before {
			t.Errorf("host after the failed ADD:\n%s\nbefore:\n%s", after, before)
		}
	})

	t.Run("secondary NIC", func(t *testing.T) {
		e := newUnderlayEnv(t)
		e.addSecondary(t)
		tuned := agentConfig
		tuned.TunePodRoutes = true
		e.agent.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(tuned))
		if err := e.run(t, "ADD", "eth0", e.conf("1.1.0", "")); err != nil {
			t.Fatal(err)
		}
		before := hostState(t, e)
		err := e.run(t, "ADD", "net1", e.net1Conf("1.1.0", badRoute))
		if err == nil || !strings.Contains(err.Error(), "192.0.2.1") {
			t.Fatalf("net1 ADD with an unreachable policy route gateway: %v", err)
		}
		if after := hostState(t, e); after != before {
			t.Errorf("host after the failed net1 ADD:\n%s\nbefore:\n%s", after, before)
		}
	})
}

// TestPrivilegedRoutePodThroughHostRollsBack makes the host routing of a pod fail at its second
// address (IPv6 switched off on the host link) after the first is routed: nothing of the first
// may stay, neither its route in the host rule table nor the host rule.
func TestPrivilegedRoutePodThroughHostRollsBack(t *testing.T) {
	host, pod := testutil.NewNS(t), testutil.NewNS(t)
	hostLockPath = filepath.Join(t.TempDir(), "coordinator.lock")
	t.Cleanup(func() { hostLockPath = "/run/spidernet/coordinator.lock" })
	testutil.InNS(t, pod, func() error {
		_, err := netlinkx.AddVeth(netlinkx.Veth{Name: "veth0", PeerName: "hostside", MTU: 1500, MAC: netlinkx.RandomMAC(), PeerMAC: netlinkx.RandomMAC(), PeerNS: host})
		return err
	})
	cfg := &Config{HostRuleTable: 500}
	before := ""
	testutil.InNS(t, host, func() error {
		if err := netlinkx.SetSysctl("net/ipv6/conf/hostside/disable_ipv6", "1"); err != nil {
			return err
		}
		var err error
		before, err = netsim.HostState(host)
		return err
	})
	var routeErr error
	testutil.InNS(t, host, func() error {
		l, err := netlinkx.LinkByName("hostside")
		if err != nil {
			return err
		}
		routeErr = routePodThroughHost(cfg, l, []netip.Prefix{netip.MustParsePrefix("10.6.1.10/16"), netip.MustParsePrefix("fd00:6::10/64")}, netlinkx.RandomMAC())
		return nil
	})
	if routeErr == nil {
		t.Skip("this kernel accepts an IPv6 neighbour on a link with IPv6 off: no failure to roll back")
	}
	after, err := netsim.HostState(host)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("host after the failed routing (%v):\n%s\nbefore:\n%s", routeErr, after, before)
	}
}
