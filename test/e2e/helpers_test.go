package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// requireEnv skips unless the test runs as root with the tools of `make tools` and ip/iptables.
func requireEnv(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := testenv.ToolsBin(); err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"ip", "iptables", "ebtables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// kubectl runs the pinned kubectl with kubeconfig and returns its output.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	tools, err := testenv.ToolsBin()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(tools, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostLinks lists the links of the host's namespace.
func hostLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}

// hostMounts lists the host's mount points.
func hostMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	return points
}

// umlProcesses lists the pids of running linux.uml processes.
func umlProcesses() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasSuffix(exe, "linux.uml") {
			out = append(out, pid)
		}
	}
	return out
}

// hostRoutes lists the routes of the host's namespace, both families, all tables.
func hostRoutes(t *testing.T) []string {
	t.Helper()
	var routes []string
	for _, family := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", family, "route", "show", "table", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s route: %v: %s", family, err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				routes = append(routes, l)
			}
		}
	}
	slices.Sort(routes)
	return routes
}
