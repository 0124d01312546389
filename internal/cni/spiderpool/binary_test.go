package spiderpool

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// buildPlugin compiles cmd/spiderpool, so that the tests below run main.go's wiring as a runtime
// would: a separate process, configuration on stdin, CNI_* in the environment.
func buildPlugin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	bin := filepath.Join(t.TempDir(), "spiderpool")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/spiderpool-go/spiderpool/cmd/spiderpool").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// execPlugin runs the binary with a minimal environment and returns stdout, stderr and the error.
// The environment holds the log directory the test set (newEnv), as a runtime would pass it.
func execPlugin(t *testing.T, bin, command string, stdin []byte, extraEnv ...string) ([]byte, []byte, error) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=container-1",
		// A path that is no namespace: skel then skips its "same netns as the plugin" check,
		// which needs nothing from the host, and the plugin itself never enters the netns.
		"CNI_NETNS=" + filepath.Join(t.TempDir(), "netns"),
		"CNI_IFNAME=eth0",
		"CNI_ARGS=" + testPodArgs,
		"CNI_PATH=" + filepath.Dir(bin),
		cnilog.DirEnv + "=" + os.Getenv(cnilog.DirEnv),
	}, extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

func TestPluginBinary(t *testing.T) {
	bin := buildPlugin(t)
	answer := v1.IpamAddResponse{
		IPs: []v1.IPConfig{
			{Version: 4, Address: "10.6.212.145/16", Gateway: "10.6.0.1", Nic: "eth0"},
			{Version: 6, Address: "fd00:10:6::91/64", Gateway: "fd00:10:6::1", Nic: "eth0"},
		},
		DNS: v1.DNS{Nameservers: []string{"10.233.0.3"}},
	}
	wantIPs := []gotIP{
		{Version: "4", Address: "10.6.212.145/16", Gateway: "10.6.0.1"},
		{Version: "6", Address: "fd00:10:6::91/64", Gateway: "fd00:10:6::1"},
	}
	wantRoutes := []gotRoute{{Dst: "0.0.0.0/0", GW: "10.6.0.1"}, {Dst: "::/0", GW: "fd00:10:6::1"}}

	for _, ver := range allVersions {
		t.Run("ADD and DEL/"+ver, func(t *testing.T) {
			e := newEnv(t)
			e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(answer))
			e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.OK(nil))
			stdin := e.conf(ver, nil)

			stdout, stderr, err := execPlugin(t, bin, "ADD", stdin)
			if err != nil {
				t.Fatalf("ADD: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
			}
			if len(stderr) != 0 {
				t.Errorf("ADD wrote to stderr: %q", stderr)
			}
			got := parseResult(t, ver, stdout) // also fails on anything besides the result
			want := gotResult{CNIVersion: ver, IPs: wantIPs, Routes: wantRoutes, DNS: types.DNS{Nameservers: []string{"10.233.0.3"}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}

			stdout, stderr, err = execPlugin(t, bin, "DEL", stdin)
			if err != nil || len(stdout) != 0 || len(stderr) != 0 {
				t.Fatalf("DEL: %v\nstdout: %q\nstderr: %q", err, stdout, stderr)
			}
			if n := len(e.agent.RequestsTo(http.MethodDelete, v1.PathIPAMIP)); n != 1 {
				t.Errorf("release requests = %d, want 1", n)
			}
		})
	}

	t.Run("VERSION", func(t *testing.T) {
		stdout, stderr, err := execPlugin(t, bin, "VERSION", nil)
		if err != nil {
			t.Fatalf("VERSION: %v\nstderr: %s", err, stderr)
		}
		info, err := (&version.PluginDecoder{}).Decode(stdout)
		if err != nil {
			t.Fatalf("decode VERSION answer %q: %v", stdout, err)
		}
		if diff := cmp.Diff(SupportedVersions(), info.SupportedVersions()); diff != "" {
			t.Errorf("VERSION (-want +got):\n%s", diff)
		}
	})

	t.Run("DEL of an unknown pod succeeds", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.Fail(http.StatusNotFound, v1.CodeNotFound, "gone"))
		if stdout, stderr, err := execPlugin(t, bin, "DEL", e.conf("1.1.0", nil)); err != nil || len(stdout) != 0 {
			t.Fatalf("DEL: %v\nstdout: %q\nstderr: %q", err, stdout, stderr)
		}
	})

	t.Run("agent error reaches the runtime as a CNI error", func(t *testing.T) {
		e := newEnv(t)
		msg := "failed to allocate any IPv4 IP address to NIC eth0 from IPPools [v4-a]: all IP addresses used out"
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodePoolExhausted, msg))
		stdout, stderr, err := execPlugin(t, bin, "ADD", e.conf("0.3.1", nil))
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
			t.Fatalf("ADD = %v, want exit status 1\nstdout: %s\nstderr: %s", err, stdout, stderr)
		}
		var cniErr types.Error
		if err := json.Unmarshal(stdout, &cniErr); err != nil {
			t.Fatalf("stdout is not a CNI error: %v\n%s", err, stdout)
		}
		if cniErr.Code != types.ErrInternal || !strings.Contains(cniErr.Msg, msg) {
			t.Errorf("CNI error = %+v, want code %d with %q", cniErr, types.ErrInternal, msg)
		}
	})

	t.Run("log file outside the log directory is a CNI error", func(t *testing.T) {
		e := newEnv(t)
		stdout, stderr, err := execPlugin(t, bin, "ADD", e.conf("1.1.0", map[string]any{"log_file_path": "/etc/shadow"}))
		var cniErr types.Error
		if err == nil || json.Unmarshal(stdout, &cniErr) != nil || cniErr.Code != types.ErrInvalidNetworkConfig ||
			!strings.Contains(cniErr.Msg, `ipam.log_file_path "/etc/shadow": must be a file under `+cnilog.Dir()) {
			t.Errorf("ADD = %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
		}
		if n := len(e.agent.RequestsTo(http.MethodPost, v1.PathIPAMIP)); n != 0 {
			t.Errorf("%d allocation requests, want none", n)
		}
	})

	t.Run("STATUS", func(t *testing.T) {
		e := newEnv(t)
		if stdout, stderr, err := execPlugin(t, bin, "STATUS", e.conf("1.1.0", nil)); err != nil {
			t.Fatalf("STATUS: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
		}
		e.agent.Handle(http.MethodGet, v1.PathIPAMHealthy, clienttest.Fail(http.StatusInternalServerError, v1.CodeNotReady, "starting"))
		stdout, _, err := execPlugin(t, bin, "STATUS", e.conf("1.1.0", nil))
		var cniErr types.Error
		if err == nil || json.Unmarshal(stdout, &cniErr) != nil || cniErr.Code != types.ErrPluginNotAvailable {
			t.Errorf("STATUS on an unready agent = %v, stdout %s; want code %d", err, stdout, types.ErrPluginNotAvailable)
		}
	})

	t.Run("about", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = []string{}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "spiderpool IPAM plugin") {
			t.Errorf("no CNI_COMMAND: %v, output %q", err, out)
		}
	})

}
