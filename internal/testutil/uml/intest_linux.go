package uml

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// RunTestInGuest runs the calling test again inside a guest. On the host it boots a guest with
// opts, executes the current test binary there (os.Executable, reached through Guest.Path) with
// -test.run selecting exactly t.Name() and -test.v, logs the guest's output, fails t when the
// guest run fails or did not run the test, skips t when the guest run skipped, and returns true:
// the caller returns. Inside the guest it returns false and the caller goes on with the test
// body, which then has the guest kernel's features. The usual shape:
//
//	func TestPrivilegedBond(t *testing.T) {
//		if uml.RunTestInGuest(t, uml.Options{Modules: []string{"bonding max_bonds=0"}}) {
//			return
//		}
//		// runs in the guest, as root
//	}
//
// Test binaries built with -race cannot run in a guest: RunTestInGuest skips t there.
// The guest run inherits -test.short and gets opts.Env; its own timeout is opts.RunTimeout, else what is left of
// the test binary's deadline minus a margin, else 10 minutes.
func RunTestInGuest(t *testing.T, opts Options) bool {
	t.Helper()
	if InGuest() {
		return false
	}
	Require(t)
	if raceEnabled {
		t.Skip("skipping: a -race test binary cannot run in a user-mode-linux guest (ThreadSanitizer's fixed shadow mappings lie beyond a UML process's address space)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("uml: find the test binary: %v", err)
	}
	timeout := opts.RunTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
		if d, ok := t.Deadline(); ok {
			timeout = time.Until(d) - 30*time.Second
		}
	}
	if timeout <= 0 {
		t.Fatal("uml: no time left to run the test in a guest")
	}
	g := Boot(t, opts)

	var args []string
	for _, e := range opts.Env {
		args = append(args, shellQuote(e))
	}
	args = append(args, shellQuote(g.Path(exe)), "-test.run", shellQuote(RunPattern(t.Name())), "-test.v", "-test.count=1",
		"-test.timeout="+timeout.String())
	if testing.Short() {
		args = append(args, "-test.short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	start := time.Now()
	stdout, stderr, code, err := g.Run(ctx, "cd /tmp && exec env "+strings.Join(args, " "))
	t.Logf("uml: %s ran in the guest in %s, exit %d; its output:\n%s%s", t.Name(), time.Since(start).Round(time.Millisecond), code, stdout, stderr)
	switch {
	case err != nil:
		t.Fatalf("uml: run %s in the guest: %v", t.Name(), err)
	case code != 0:
		t.Fatalf("uml: %s failed in the guest (exit %d)", t.Name(), code)
	case strings.Contains(stdout, "--- SKIP: "+t.Name()+" "):
		t.Skipf("uml: skipped in the guest: %s", skipReason(stdout, t.Name()))
	case !strings.Contains(stdout, "--- PASS: "+t.Name()+" "):
		t.Fatalf("uml: the guest did not run %s (-test.run %s)", t.Name(), RunPattern(t.Name()))
	}
	return true
}

// RunPattern returns the -test.run pattern that selects exactly the test or subtest name.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// skipReason returns the log lines the guest printed under the test's SKIP line.
func skipReason(out, name string) string {
	_, after, _ := strings.Cut(out, "--- SKIP: "+name+" ")
	var lines []string
	for i, l := range strings.Split(after, "\n") {
		if i == 0 {
			continue
		}
		if !strings.HasPrefix(l, "    ") {
			break
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if len(lines) == 0 {
		return fmt.Sprintf("see the output of %s", name)
	}
	return strings.Join(lines, "; ")
}
