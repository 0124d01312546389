package coordinator

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// TestPluginBinary runs cmd/coordinator as a runtime would: a separate process, configuration on
// stdin, CNI_* in the environment. Only paths that need neither root nor the agent are taken.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	bin := filepath.Join(t.TempDir(), "coordinator")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/spiderpool-go/spiderpool/cmd/coordinator").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logDir := t.TempDir() // the node operator's SPIDERPOOL_CNI_LOG_DIR
	logFile := filepath.Join(logDir, "c.log")
	exe := func(command string, stdin []byte) (string, error) {
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"CNI_COMMAND=" + command, "CNI_CONTAINERID=4653bc4f24aabbccdd", "CNI_IFNAME=eth0",
			"CNI_NETNS=" + filepath.Join(t.TempDir(), "netns"), "CNI_ARGS=" + "K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx",
			"CNI_PATH=" + filepath.Dir(bin), cnilog.DirEnv + "=" + logDir,
		}
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), err
	}

	out, err := exe("VERSION", []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	var v struct{ SupportedVersions []string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || strings.Join(v.SupportedVersions, ",") != strings.Join(allVersions, ",") {
		t.Fatalf("VERSION printed %q (%v)", out, err)
	}

	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			conf := confJSON(ver, `"mode":"disabled","logOptions":{"logFile":"`+logFile+`"}`)
			out, err := exe("ADD", conf)
			if err != nil {
				t.Fatalf("ADD: %v, stdout %q", err, out)
			}
			var got, want map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("ADD printed %q: %v", out, err)
			}
			_ = json.Unmarshal([]byte(prevResultJSON(ver, "eth0", "10.6.212.145/16", "fd00:10:6::91/64")), &want)
			if dns, ok := got["dns"].(map[string]any); ok && len(dns) == 0 {
				delete(got, "dns") // the 0.x result types always write one
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ADD did not print prevResult unchanged (-want +got):\n%s", diff)
			}
			if out, err := exe("DEL", conf); err != nil || out != "" {
				t.Errorf("DEL: %v, stdout %q", err, out)
			}
			// An invalid configuration is a CNI error on stdout with a non-zero exit.
			out, err = exe("ADD", confJSON(ver, `"mode":"sideways"`))
			var cniErr struct {
				Code int
				Msg  string
			}
			if err == nil || json.Unmarshal([]byte(out), &cniErr) != nil || cniErr.Code != 7 || !strings.Contains(cniErr.Msg, `mode "sideways"`) {
				t.Errorf("ADD with a bad mode: %v, stdout %q", err, out)
			}
			// So is a log file outside the log directory: the plugin does not write it, nor log elsewhere.
			out, err = exe("ADD", confJSON(ver, `"mode":"disabled","logOptions":{"logFile":"/etc/shadow"}`))
			if err == nil || json.Unmarshal([]byte(out), &cniErr) != nil || cniErr.Code != 7 ||
				!strings.Contains(cniErr.Msg, `logOptions.logFile "/etc/shadow": must be a file under `+logDir) {
				t.Errorf("ADD with logFile /etc/shadow: %v, stdout %q", err, out)
			}
		})
	}
}
