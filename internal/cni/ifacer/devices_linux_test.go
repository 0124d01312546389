package ifacer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// The host kernel lacks dummy, 8021q and bonding: these tests run in a user-mode-linux guest,
// in its root namespace (the guest is thrown away), where sysfs shows the bonds.
var guestModules = []string{"dummy", "8021q", "bonding max_bonds=0"}

func inGuest(t *testing.T) bool {
	t.Helper()
	if uml.RunTestInGuest(t, uml.Options{Modules: guestModules, NICs: []uml.NIC{{Tap: "ifacer0", Name: "eth0"}}}) {
		return false
	}
	// The guest sees the host's files: the plugin logs to the guest's own /tmp instead.
	t.Setenv(cnilog.DirEnv, t.TempDir())
	return true
}

// cmd runs one of the plugin's commands in-process and returns its stdout.
func cmd(t *testing.T, command string, conf []byte) (string, error) {
	t.Helper()
	var out bytes.Buffer
	f := (&plugin{stdout: &out}).funcs()
	args := &skel.CmdArgs{ContainerID: "4653bc4f24", Netns: "/var/run/netns/pod", IfName: "net1", StdinData: conf}
	var err error
	switch command {
	case "ADD":
		err = f.Add(args)
	case "DEL":
		err = f.Del(args)
	case "CHECK":
		err = f.Check(args)
	}
	return out.String(), err
}

func mustCmd(t *testing.T, command string, conf []byte) string {
	t.Helper()
	out, err := cmd(t, command, conf)
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	return out
}

// wantErr checks that err is a CNI error whose message holds every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	var cniErr *types.Error
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	if !errors.As(err, &cniErr) {
		t.Fatalf("error %T %v is not a *types.Error", err, err)
	}
	for _, p := range parts {
		if !strings.Contains(cniErr.Msg, p) {
			t.Errorf("error %q lacks %q", cniErr.Msg, p)
		}
	}
}

func addDummy(t *testing.T, name string, up bool) netlink.Link {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("add dummy %s: %v", name, err)
	}
	l := link(t, name)
	if up {
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return link(t, name)
}

func link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func linkGone(t *testing.T, name string) {
	t.Helper()
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("link %s exists", name)
	}
}

func assertVlan(t *testing.T, name, parent string, id int) *netlink.Vlan {
	t.Helper()
	v, ok := link(t, name).(*netlink.Vlan)
	if !ok {
		t.Fatalf("%s is a %s", name, link(t, name).Type())
	}
	if v.VlanId != id || v.ParentIndex != link(t, parent).Attrs().Index {
		t.Errorf("%s: VLAN id %d on ifindex %d, want %d on %s", name, v.VlanId, v.ParentIndex, id, parent)
	}
	if v.Flags&net.FlagUp == 0 {
		t.Errorf("%s is down", name)
	}
	if l := link(t, parent); l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("parent %s is down", parent)
	}
	return v
}

func sysfs(t *testing.T, dev, attr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/net", dev, "bonding", attr))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestPrivilegedVlan(t *testing.T) {
	if !inGuest(t) {
		return
	}
	logDir := t.TempDir()
	t.Setenv(cnilog.DirEnv, logDir)
	logFile := filepath.Join(logDir, "ifacer.log")
	logOpts := fmt.Sprintf(`"logOptions":{"logLevel":"debug","logFile":%q}`, logFile)

	t.Run("on the guest NIC, every version", func(t *testing.T) {
		var index int
		for i, ver := range allVersions {
			conf := confJSON(ver, `"interfaces":["eth0"],"vlanID":100,`+logOpts, true)
			out := mustCmd(t, "ADD", conf)
			var got, want map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("ADD printed %q: %v", out, err)
			}
			_ = json.Unmarshal([]byte(prevResultJSON(ver)), &want)
			if dns, ok := got["dns"].(map[string]any); ok && len(dns) == 0 {
				delete(got, "dns")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: ADD did not print prevResult unchanged (-want +got):\n%s", ver, diff)
			}
			v := assertVlan(t, "eth0.100", "eth0", 100)
			if i == 0 {
				index = v.Index
			} else if v.Index != index {
				t.Errorf("%s: a repeated ADD replaced eth0.100 (ifindex %d, was %d)", ver, v.Index, index)
			}
			mustCmd(t, "CHECK", conf)
			if out := mustCmd(t, "DEL", conf); out != "" {
				t.Errorf("DEL printed %q", out)
			}
			assertVlan(t, "eth0.100", "eth0", 100) // DEL leaves it
		}
		b, _ := os.ReadFile(logFile)
		if !strings.Contains(string(b), `"msg":"created VLAN interface"`) || !strings.Contains(string(b), `"vlan":"eth0.100"`) {
			t.Errorf("log file:\n%s", b)
		}
	})

	t.Run("on a dummy that is down", func(t *testing.T) {
		addDummy(t, "d0", false)
		out := mustCmd(t, "ADD", confJSON("1.1.0", `"interfaces":["d0"],"vlanID":4094`, false))
		if !strings.Contains(out, `"cniVersion": "1.1.0"`) {
			t.Errorf("ADD without prevResult printed %q", out)
		}
		assertVlan(t, "d0.4094", "d0", 4094)
	})

	t.Run("no VLAN: the interface is left alone", func(t *testing.T) {
		addDummy(t, "d5", false)
		mustCmd(t, "ADD", confJSON("1.0.0", `"interfaces":["d5"]`, true))
		if l := link(t, "d5"); l.Attrs().Flags&net.FlagUp != 0 || l.Attrs().MasterIndex != 0 {
			t.Errorf("d5 changed: %+v", l.Attrs())
		}
	})

	t.Run("an existing VLAN with another id is refused", func(t *testing.T) {
		d1 := addDummy(t, "d1", true)
		if err := netlink.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "d1.100", ParentIndex: d1.Attrs().Index}, VlanId: 200}); err != nil {
			t.Fatal(err)
		}
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["d1"],"vlanID":100`, true))
		wantErr(t, err, `"d1.100"`, "VLAN id 200", "asks for 100")
		_, err = cmd(t, "CHECK", confJSON("1.0.0", `"interfaces":["d1"],"vlanID":100`, true))
		wantErr(t, err, `"d1.100"`, "VLAN id 200")
		assertVlanID(t, "d1.100", 200)
	})

	t.Run("an existing device of another type is refused", func(t *testing.T) {
		addDummy(t, "d2", true)
		addDummy(t, "d2.100", false)
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["d2"],"vlanID":100`, true))
		wantErr(t, err, `"d2.100" exists but is a dummy device, not a VLAN`)
	})

	t.Run("an existing VLAN on another parent is refused", func(t *testing.T) {
		addDummy(t, "d3", true)
		d4 := addDummy(t, "d4", true)
		if err := netlink.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "d3.100", ParentIndex: d4.Attrs().Index}, VlanId: 100}); err != nil {
			t.Fatal(err)
		}
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["d3"],"vlanID":100`, true))
		wantErr(t, err, `"d3.100" exists on "d4"`, `asks for "d3"`)
	})

	t.Run("a missing parent is named", func(t *testing.T) {
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["nope0"],"vlanID":100`, true))
		wantErr(t, err, `interfaces[0]: parent interface "nope0" does not exist`)
		linkGone(t, "nope0.100")
		_, err = cmd(t, "CHECK", confJSON("1.0.0", `"interfaces":["d0"],"vlanID":99`, true))
		wantErr(t, err, `VLAN interface "d0.99" does not exist`)
		// DEL never touches devices, even missing ones.
		if _, err := cmd(t, "DEL", confJSON("1.0.0", `"interfaces":["nope0"],"vlanID":100`, true)); err != nil {
			t.Errorf("DEL: %v", err)
		}
	})
}

func assertVlanID(t *testing.T, name string, id int) {
	t.Helper()
	if v, ok := link(t, name).(*netlink.Vlan); !ok || v.VlanId != id {
		t.Errorf("%s changed: %#v", name, link(t, name))
	}
}

func TestPrivilegedBond(t *testing.T) {
	if !inGuest(t) {
		return
	}

	t.Run("two dummies, mode, options and a VLAN", func(t *testing.T) {
		addDummy(t, "b1", true) // up: ifacer sets it down to enslave it
		addDummy(t, "b2", false)
		conf := confJSON("1.0.0", `"interfaces":["b1","b2"],"vlanID":300,"bond":{"name":"bond0","mode":1,"options":"miimon=100;updelay=200;primary=b2"}`, true)
		mustCmd(t, "ADD", conf)
		b, ok := link(t, "bond0").(*netlink.Bond)
		if !ok {
			t.Fatalf("bond0 is a %s", link(t, "bond0").Type())
		}
		if b.Mode != netlink.BOND_MODE_ACTIVE_BACKUP || b.Miimon != 100 || b.UpDelay != 200 || b.Flags&net.FlagUp == 0 {
			t.Errorf("bond0: mode %s, miimon %d, updelay %d, flags %s", b.Mode, b.Miimon, b.UpDelay, b.Flags)
		}
		for attr, want := range map[string]string{"mode": "active-backup 1", "miimon": "100", "updelay": "200", "primary": "b2", "slaves": "b1 b2"} {
			if got := sysfs(t, "bond0", attr); got != want {
				t.Errorf("/sys/class/net/bond0/bonding/%s = %q, want %q", attr, got, want)
			}
		}
		for _, s := range []string{"b1", "b2"} {
			if l := link(t, s); l.Attrs().MasterIndex != b.Index || l.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("%s: master %d, flags %s", s, l.Attrs().MasterIndex, l.Attrs().Flags)
			}
		}
		v := assertVlan(t, "bond0.300", "bond0", 300)

		mustCmd(t, "ADD", conf) // idempotent
		if link(t, "bond0").Attrs().Index != b.Index || link(t, "bond0.300").Attrs().Index != v.Index {
			t.Error("a repeated ADD replaced bond0 or bond0.300")
		}
		if got := sysfs(t, "bond0", "slaves"); got != "b1 b2" {
			t.Errorf("slaves after the second ADD = %q", got)
		}
		mustCmd(t, "CHECK", conf)
		mustCmd(t, "DEL", conf)
		assertVlan(t, "bond0.300", "bond0", 300)
		if got := sysfs(t, "bond0", "slaves"); got != "b1 b2" {
			t.Errorf("slaves after DEL = %q", got)
		}
	})

	t.Run("two interfaces without a bond object: sp_bond0 in balance-rr", func(t *testing.T) {
		addDummy(t, "c1", false)
		addDummy(t, "c2", false)
		mustCmd(t, "ADD", confJSON("0.3.1", `"interfaces":["c1","c2"]`, true))
		if got := sysfs(t, "sp_bond0", "mode"); got != "balance-rr 0" {
			t.Errorf("sp_bond0 mode = %q", got)
		}
		if got := sysfs(t, "sp_bond0", "slaves"); got != "c1 c2" {
			t.Errorf("sp_bond0 slaves = %q", got)
		}
		linkGone(t, "sp_bond0.0")
	})

	t.Run("802.3ad with named options", func(t *testing.T) {
		addDummy(t, "a1", false)
		addDummy(t, "a2", false)
		mustCmd(t, "ADD", confJSON("1.1.0", `"interfaces":["a1","a2"],"bond":{"name":"bond4","mode":4,"options":"miimon=50;lacp_rate=fast;xmit_hash_policy=layer3+4"}`, true))
		for attr, want := range map[string]string{"mode": "802.3ad 4", "lacp_rate": "fast 1", "xmit_hash_policy": "layer3+4 1", "miimon": "50"} {
			if got := sysfs(t, "bond4", attr); got != want {
				t.Errorf("bond4 %s = %q, want %q", attr, got, want)
			}
		}
	})

	t.Run("an existing bond in another mode is refused", func(t *testing.T) {
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["b1","b2"],"bond":{"name":"bond0","mode":4}`, true))
		wantErr(t, err, `bond.mode: bond "bond0" exists in mode active-backup (1)`, "802.3ad (4)")
	})

	t.Run("an existing device of another type is refused", func(t *testing.T) {
		addDummy(t, "e0", false)
		addDummy(t, "notabond", false)
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["e0"],"bond":{"name":"notabond"}`, true))
		wantErr(t, err, `bond.name: "notabond" exists but is a dummy device, not a bond`)
	})

	t.Run("an interface of another bond is refused and the ADD undone", func(t *testing.T) {
		addDummy(t, "e1", true)
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["e1","b1"],"bond":{"name":"bond1","mode":1},"vlanID":5`, true))
		wantErr(t, err, `interfaces[1] "b1" is enslaved to "bond0", not to bond "bond1"`)
		linkGone(t, "bond1")
		if l := link(t, "e1"); l.Attrs().MasterIndex != 0 || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("e1 not restored: master %d, flags %s", l.Attrs().MasterIndex, l.Attrs().Flags)
		}
	})

	t.Run("an option the kernel refuses is reported and nothing is left", func(t *testing.T) {
		addDummy(t, "f1", false)
		_, err := cmd(t, "ADD", confJSON("1.0.0", `"interfaces":["f1"],"bond":{"name":"bondf","mode":0,"options":"lacp_rate=fast"}`, true))
		wantErr(t, err, `create bond "bondf" (mode balance-rr, options "lacp_rate=fast")`)
		linkGone(t, "bondf")
	})

	t.Run("CHECK finds a slave missing", func(t *testing.T) {
		if err := netlink.LinkSetNoMaster(link(t, "c2")); err != nil {
			t.Fatal(err)
		}
		_, err := cmd(t, "CHECK", confJSON("1.0.0", `"interfaces":["c1","c2"]`, true))
		wantErr(t, err, `interfaces[1] "c2" is not enslaved to bond "sp_bond0"`)
	})
}
