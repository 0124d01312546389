package netsim

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

func testLab(t *testing.T) *Lab {
	t.Helper()
	testutil.RequireRoot(t)
	prefix := fmt.Sprintf("nst%d", os.Getpid()%100000)
	lab, err := New(Config{Prefix: prefix, Subnets: []Subnet{
		{CIDR: netip.MustParsePrefix("10.6.0.0/16"), Gateway: netip.MustParseAddr("10.6.0.1")},
		{CIDR: netip.MustParsePrefix("10.7.0.0/16"), Gateway: netip.MustParseAddr("10.7.0.1")},
		{CIDR: netip.MustParsePrefix("fd00:6::/64"), Gateway: netip.MustParseAddr("fd00:6::1")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	return lab
}

func TestPrivilegedLabConnectsNodesAcrossSubnets(t *testing.T) {
	lab := testLab(t)
	a, err := lab.Attach("a", NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.6.0.11/16")}, NIC{Name: "eth1", Addr: netip.MustParsePrefix("fd00:6::11/64")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.Attach("b", NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.7.0.12/16")}, NIC{Name: "eth1", Addr: netip.MustParsePrefix("fd00:6::12/64")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from *Node
		to   string
	}{{a, "10.6.0.1"}, {a, "10.7.0.12"}, {b, "10.6.0.11"}, {a, "fd00:6::12"}, {b, "fd00:6::1"}} {
		if err := Ping(c.from.NS, netip.MustParseAddr(c.to), 3*time.Second); err != nil {
			t.Errorf("%s -> %s: %v", c.from.Name, c.to, err)
		}
	}
	srv, err := ServeTCP(b.NS, netip.MustParseAddrPort("10.7.0.12:8080"), "node b")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if got, err := DialTCP(a.NS, netip.Addr{}, netip.MustParseAddrPort("10.7.0.12:8080"), 3*time.Second); err != nil || got != "node b" {
		t.Errorf("tcp a -> b: %q, %v", got, err)
	}
	// Nothing listens here: the probe must fail, not hang or pass.
	if _, err := DialTCP(a.NS, netip.Addr{}, netip.MustParseAddrPort("10.7.0.12:8081"), time.Second); err == nil {
		t.Error("tcp to a closed port succeeded")
	}
	if err := Ping(a.NS, netip.MustParseAddr("10.7.0.99"), 500*time.Millisecond); err == nil {
		t.Error("ping to an address nobody holds succeeded")
	}
	state, err := HostState(a.NS)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(state, "default via 10.6.0.1 dev eth0") || strings.Contains(state, "# Generated") {
		t.Errorf("host state of a:\n%s", state)
	}
}

func TestPrivilegedCloseAndCleanupRemoveEverything(t *testing.T) {
	lab := testLab(t)
	if _, err := lab.Attach("n", NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.6.0.11/16")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lab.NewNS("pod"); err != nil {
		t.Fatal(err)
	}
	names, _ := Namespaces(lab.Prefix())
	if len(names) != 3 {
		t.Fatalf("namespaces %v, want switch, n and pod", names)
	}
	// A crashed run leaves its namespaces; Cleanup finds them by prefix.
	if err := Cleanup(lab.Prefix()); err != nil {
		t.Fatal(err)
	}
	if names, _ := Namespaces(lab.Prefix()); len(names) != 0 {
		t.Errorf("left after Cleanup: %v", names)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("Close after Cleanup: %v", err)
	}
}

// TestPrivilegedNodeExecGivesEachNodeItsFiles runs a "plugin" (a shell script) through NodeExec
// and libcni's Exec interface: it sees the node's directory at the bind target, and the host's
// directory there is untouched.
func TestPrivilegedNodeExecGivesEachNodeItsFiles(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, node), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, node, "name"), []byte(node), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plugin := filepath.Join(dir, "plugin")
	script := "#!/bin/sh\ncat >/dev/null\nprintf '{\"cniVersion\":\"1.0.0\",\"node\":\"%s\"}' \"$(cat " + target + "/name)\"\n"
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"a", "b"} {
		e := &NodeExec{Binds: map[string]string{target: filepath.Join(dir, node)}}
		out, err := e.ExecPlugin(context.Background(), plugin, []byte("{}"), os.Environ())
		if err != nil {
			t.Fatal(err)
		}
		if want := `"node":"` + node + `"`; !strings.Contains(string(out), want) {
			t.Errorf("node %s: plugin printed %s, want %s", node, out, want)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("the bind target on the host holds %v: a mount leaked out of the plugin's namespace", entries)
	}
	// A plugin's CNI error comes back as a *types.Error.
	failing := filepath.Join(dir, "failing")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho '{\"code\":11,\"msg\":\"try later\"}'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &NodeExec{Binds: map[string]string{target: filepath.Join(dir, "a")}}
	if _, err := e.ExecPlugin(context.Background(), failing, nil, os.Environ()); err == nil || !strings.Contains(err.Error(), "try later") {
		t.Errorf("failing plugin: %v", err)
	}
}
