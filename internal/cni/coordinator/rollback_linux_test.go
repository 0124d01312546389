package coordinator

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
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
