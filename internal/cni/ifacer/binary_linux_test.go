package ifacer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// buildPlugin builds cmd/ifacer into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	bin := filepath.Join(t.TempDir(), "ifacer")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/spiderpool-go/spiderpool/cmd/ifacer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// execPlugin runs the binary as a container runtime would: configuration on stdin, CNI_* and the
// log directory the test set (SPIDERPOOL_CNI_LOG_DIR) in the environment. It returns stdout and
// the exit error.
func execPlugin(t *testing.T, bin, command string, stdin []byte) (string, error) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=4653bc4f24aabbccdd", "CNI_IFNAME=net1",
		"CNI_NETNS=/var/run/netns/pod", "CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx",
		"CNI_PATH=" + filepath.Dir(bin), cnilog.DirEnv + "=" + os.Getenv(cnilog.DirEnv),
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), err
}

// cniError parses the error a plugin prints on stdout.
func cniError(t *testing.T, out string) (code int, msg string) {
	t.Helper()
	var e struct {
		Code int
		Msg  string
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("stdout %q is not a CNI error: %v", out, err)
	}
	return e.Code, e.Msg
}

// TestPluginBinary runs cmd/ifacer as a separate process through the CNI protocol, on paths that
// touch no device: VERSION, configuration errors, DEL.
func TestPluginBinary(t *testing.T) {
	bin := buildPlugin(t)
	logDir := t.TempDir()
	t.Setenv(cnilog.DirEnv, logDir)
	logFile := filepath.Join(logDir, "ifacer.log")
	out, err := execPlugin(t, bin, "VERSION", []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	var v struct{ SupportedVersions []string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || strings.Join(v.SupportedVersions, ",") != strings.Join(allVersions, ",") {
		t.Fatalf("VERSION printed %q (%v)", out, err)
	}
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			out, err := execPlugin(t, bin, "ADD", confJSON(ver, `"interfaces":["eth0"],"vlanID":5000`, true))
			if code, msg := cniError(t, out); err == nil || code != 7 || !strings.Contains(msg, "vlanID: 5000 out of range 0..4094") {
				t.Errorf("ADD with vlanID 5000: %v, code %d, msg %q", err, code, msg)
			}
			out, err = execPlugin(t, bin, "ADD", confJSON(ver, `"interfaces":["eth0"],"bond":{"options":"miimon=x"}`, true))
			if code, msg := cniError(t, out); err == nil || code != 7 || !strings.Contains(msg, `bond.options: option miimon: "x"`) {
				t.Errorf("ADD with a bad bond option: %v, code %d, msg %q", err, code, msg)
			}
			if out, err := execPlugin(t, bin, "DEL", confJSON(ver, `"interfaces":["nope0"],"vlanID":100,"logOptions":{"logFile":"`+logFile+`"}`, true)); err != nil || out != "" {
				t.Errorf("DEL: %v, stdout %q", err, out)
			}
			out, err = execPlugin(t, bin, "DEL", confJSON(ver, `"interfaces":["nope0"],"logOptions":{"logFile":"/etc/shadow"}`, true))
			if code, msg := cniError(t, out); err == nil || code != 7 || !strings.Contains(msg, `logOptions.logFile "/etc/shadow": must be a file under `+logDir) {
				t.Errorf("DEL with logFile /etc/shadow: %v, code %d, msg %q", err, code, msg)
			}
		})
	}
}

// TestPrivilegedPluginBinary runs the binary for ADD, CHECK and DEL in a guest.
func TestPrivilegedPluginBinary(t *testing.T) {
	if !uml.InGuest() {
		uml.Require(t)
		bin := buildPlugin(t)
		if uml.RunTestInGuest(t, uml.Options{Modules: guestModules, Env: []string{"IFACER_BIN=" + uml.GuestPath(bin)}}) {
			return
		}
	}
	bin := os.Getenv("IFACER_BIN")
	addDummy(t, "p0", false)
	addDummy(t, "p1", false)
	for _, ver := range allVersions {
		conf := confJSON(ver, `"interfaces":["p0","p1"],"vlanID":42,"bond":{"name":"pbond","mode":1,"options":"miimon=100"}`, true)
		out, err := execPlugin(t, bin, "ADD", conf)
		if err != nil {
			t.Fatalf("%s ADD: %v, stdout %q", ver, err, out)
		}
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
		assertVlan(t, "pbond.42", "pbond", 42)
		if b, ok := link(t, "pbond").(*netlink.Bond); !ok || b.Mode != netlink.BOND_MODE_ACTIVE_BACKUP || b.Miimon != 100 {
			t.Errorf("pbond = %#v", link(t, "pbond"))
		}
		out, err = execPlugin(t, bin, "CHECK", conf)
		switch {
		case strings.HasPrefix(ver, "0.3."):
			if _, msg := cniError(t, out); err == nil || !strings.Contains(msg, "does not allow CHECK") {
				t.Errorf("%s CHECK: %v, stdout %q; want the skel's refusal", ver, err, out)
			}
		case err != nil || out != "":
			t.Errorf("%s CHECK: %v, stdout %q", ver, err, out)
		}
		if out, err := execPlugin(t, bin, "DEL", conf); err != nil || out != "" {
			t.Errorf("%s DEL: %v, stdout %q", ver, err, out)
		}
		assertVlan(t, "pbond.42", "pbond", 42)
	}

	// A mismatched VLAN is a CNI error on stdout with a non-zero exit.
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "pbond.44", ParentIndex: link(t, "pbond").Attrs().Index}, VlanId: 43}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	out, err := execPlugin(t, bin, "ADD", confJSON("1.0.0", `"interfaces":["p0","p1"],"vlanID":44,"bond":{"name":"pbond","mode":1}`, true))
	if code, msg := cniError(t, out); err == nil || code != 999 || !strings.Contains(msg, `VLAN interface "pbond.44" exists with VLAN id 43, the configuration asks for 44`) {
		t.Errorf("ADD over a mismatched VLAN: %v, code %d, msg %q", err, code, msg)
	}
}
