package cnirun_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
)

// childEnv makes the test binary act as the plugin of testPlugin: TestMain hands the process to
// cnirun.Main, so that the tests see what a runtime sees (stdout and exit code).
const childEnv = "CNIRUN_TEST_PLUGIN"

const logName = "test.log"

// testPlugin panics in ADD, fails with a plain error in DEL and with a CNI error in CHECK, and
// succeeds in STATUS. Its configuration is the plain CNI one; "bad" as its type is refused.
func testPlugin() *cnirun.Plugin[*types.PluginConf] {
	return &cnirun.Plugin[*types.PluginConf]{
		Name: "test plugin",
		Setup: func(command string, args *skel.CmdArgs) (*types.PluginConf, *slog.Logger, func(), error) {
			var conf types.PluginConf
			if err := json.Unmarshal(args.StdinData, &conf); err != nil || conf.Type == "bad" {
				return nil, nil, nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("bad configuration %s", args.StdinData), "")
			}
			log, closeLog := cnilog.Open(cnilog.File{Path: filepath.Join(cnilog.Dir(), logName), Level: slog.LevelDebug})
			return &conf, log.With("command", command), closeLog, nil
		},
		Add:    func(*types.PluginConf) error { panic("boom") },
		Del:    func(*types.PluginConf) error { return errors.New("plain failure") },
		Check:  func(*types.PluginConf) error { return types.NewError(types.ErrTryAgainLater, "busy", "") },
		Status: func(*types.PluginConf) error { return nil },
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		cnirun.Main(testPlugin().Funcs(), []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}, "test plugin")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// invoke runs the test binary as the plugin for command with stdin, the way a runtime executes a
// plugin, and returns its stdout, exit code and the lines of its log file.
func invoke(t *testing.T, command, stdin string) (stdout string, code int, logLines []map[string]any) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", cnilog.DirEnv+"="+dir,
		"CNI_COMMAND="+command, "CNI_CONTAINERID=c1", "CNI_NETNS=/var/run/netns/pod1", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run the plugin: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		logLines = append(logLines, m)
	}
	return out.String(), code, logLines
}

func TestMainReportsEachOutcomeOnce(t *testing.T) {
	const conf = `{"cniVersion":"1.1.0","name":"net","type":"test"}`
	// cniError is the CNI error JSON skel prints on stdout.
	cniError := func(code uint, msg string) string {
		return fmt.Sprintf(`{"code":%d,"msg":%q}`, code, msg)
	}
	tests := []struct {
		name, command, stdin string
		wantStdout           string
		wantCode             int
		// wantLog is the one "command failed" line's code and error, or "" for no line at all.
		wantLogCode  float64
		wantLogError string
		wantStack    bool
	}{
		{name: "panic", command: "ADD", stdin: conf, wantStdout: cniError(999, "test plugin panicked during ADD: boom"), wantCode: 1,
			wantLogCode: 999, wantLogError: "test plugin panicked during ADD: boom", wantStack: true},
		{name: "plain error", command: "DEL", stdin: conf, wantStdout: cniError(999, "plain failure"), wantCode: 1,
			wantLogCode: 999, wantLogError: "plain failure"},
		{name: "CNI error keeps its code", command: "CHECK", stdin: conf, wantStdout: cniError(types.ErrTryAgainLater, "busy"), wantCode: 1,
			wantLogCode: float64(types.ErrTryAgainLater), wantLogError: "busy"},
		{name: "success", command: "STATUS", stdin: conf},
		// Before Setup has opened the log there is nothing to log to.
		{name: "configuration refused", command: "ADD", stdin: `{"cniVersion":"1.1.0","name":"net","type":"bad"}`,
			wantStdout: cniError(types.ErrInvalidNetworkConfig, `bad configuration {"cniVersion":"1.1.0","name":"net","type":"bad"}`), wantCode: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, code, lines := invoke(t, tc.command, tc.stdin)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if tc.wantStdout == "" {
				if stdout != "" {
					t.Errorf("stdout %q, want nothing", stdout)
				}
			} else if diff := cmp.Diff(decode(t, tc.wantStdout), decode(t, stdout)); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}

			if tc.wantLogError == "" {
				if len(lines) != 0 {
					t.Errorf("log lines %v, want none", lines)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			got := map[string]any{"level": l["level"], "msg": l["msg"], "command": l["command"], "code": l["code"], "error": l["error"]}
			want := map[string]any{"level": "ERROR", "msg": "command failed", "command": tc.command, "code": tc.wantLogCode, "error": tc.wantLogError}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("log line (-want +got):\n%s", diff)
			}
			stack, _ := l["stack"].(string)
			switch {
			case tc.wantStack && !strings.Contains(stack, "cnirun_test.testPlugin"):
				t.Errorf("the log line has no stack of the panic: %q", stack)
			case !tc.wantStack && stack != "":
				t.Errorf("the log line has a stack, want none: %q", stack)
			}
		})
	}
}

func TestMainVersion(t *testing.T) {
	stdout, code, lines := invoke(t, "VERSION", `{"cniVersion":"1.1.0"}`)
	if code != 0 || len(lines) != 0 {
		t.Errorf("exit code %d and %d log lines, want 0 and none", code, len(lines))
	}
	want := `{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}`
	if diff := cmp.Diff(decode(t, want), decode(t, stdout)); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestFuncsLeavesOutMissingCommands(t *testing.T) {
	p := testPlugin()
	p.Status, p.GC = nil, nil
	f := p.Funcs()
	if f.Add == nil || f.Del == nil || f.Check == nil || f.Status != nil || f.GC != nil {
		t.Errorf("Funcs: Add %t, Del %t, Check %t, Status %t, GC %t; want the first three only",
			f.Add != nil, f.Del != nil, f.Check != nil, f.Status != nil, f.GC != nil)
	}
}

// TestRunReturnsCNIErrors checks Run in process: what a command returns or panics with reaches
// skel as a *types.Error.
func TestRunReturnsCNIErrors(t *testing.T) {
	t.Setenv(cnilog.DirEnv, t.TempDir())
	p := testPlugin()
	args := &skel.CmdArgs{StdinData: []byte(`{"cniVersion":"1.1.0","name":"net","type":"test"}`)}
	for _, tc := range []struct {
		command  string
		cmd      func(*types.PluginConf) error
		wantCode uint
	}{
		{"ADD", p.Add, types.ErrInternal},
		{"DEL", p.Del, types.ErrInternal},
		{"CHECK", p.Check, types.ErrTryAgainLater},
	} {
		err := p.Run(tc.command, args, tc.cmd)
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != tc.wantCode {
			t.Errorf("%s: error %#v, want a *types.Error with code %d", tc.command, err, tc.wantCode)
		}
	}
	if err := p.Run("STATUS", args, p.Status); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return m
}
