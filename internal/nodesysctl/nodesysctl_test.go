package nodesysctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// tree writes a fake sysctl tree holding the named entries, each with value "7".
func tree(t *testing.T, names ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range names {
		p := filepath.Join(root, strings.ReplaceAll(n, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("7\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func allNames() []string {
	var names []string
	for _, s := range Settings {
		names = append(names, s.Name)
	}
	return names
}

func TestApplyFamilies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ipv4, ipv6 bool
		want       []string
	}{
		{"dual stack", true, true, allNames()},
		{"ipv4 only", true, false, []string{"net.ipv4.neigh.default.gc_thresh3", "net.ipv4.conf.all.arp_notify", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.rp_filter"}},
		{"ipv6 only", false, true, []string{"net.ipv6.neigh.default.gc_thresh3", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter"}},
		{"neither", false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, allNames()...)
			res, err := Apply(root, tc.ipv4, tc.ipv6)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res {
				got = append(got, r.Name)
				if r.Old != "7" || r.Missing {
					t.Errorf("%s: Old %q Missing %v, want 7 false", r.Name, r.Old, r.Missing)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("applied %v, want %v", got, tc.want)
			}
			for _, s := range Settings {
				b, err := os.ReadFile(filepath.Join(root, strings.ReplaceAll(s.Name, ".", "/")))
				if err != nil {
					t.Fatal(err)
				}
				want := "7\n"
				for _, w := range tc.want {
					if w == s.Name {
						want = s.Value
					}
				}
				if string(b) != want {
					t.Errorf("%s = %q, want %q", s.Name, b, want)
				}
			}
		})
	}
}

func TestApplySkipsMissingFailsOnOthers(t *testing.T) {
	root := tree(t, "net.ipv4.conf.all.forwarding")
	res, err := Apply(root, true, false)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, r := range res {
		if r.Missing {
			missing++
		}
	}
	if len(res) != 4 || missing != 3 {
		t.Fatalf("results %+v: want 4 with 3 missing", res)
	}

	// A sysctl that exists and cannot be written stops Apply with its name.
	ro := tree(t, "net.ipv4.neigh.default.gc_thresh3")
	dir := filepath.Join(ro, "net/ipv4/neigh/default")
	p := filepath.Join(dir, "gc_thresh3")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil { // a directory: reading it fails
		t.Fatal(err)
	}
	if _, err := Apply(ro, true, false); err == nil || !strings.Contains(err.Error(), "net.ipv4.neigh.default.gc_thresh3") {
		t.Fatalf("Apply over an unreadable sysctl: %v, want an error naming it", err)
	}
}

// TestApplyRealKernel writes the settings into a fresh network namespace's /proc/sys/net and reads
// them back from the kernel.
func TestApplyRealKernel(t *testing.T) {
	testutil.RequireRoot(t)
	host := func() map[string]string {
		m := map[string]string{}
		for _, s := range Settings {
			if b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(s.Name, ".", "/")); err == nil {
				m[s.Name] = strings.TrimSpace(string(b))
			}
		}
		return m
	}
	before := host()
	t.Cleanup(func() {
		// The writes went to the namespace, never to this host.
		after := host()
		for name, v := range before {
			if after[name] != v {
				t.Errorf("host %s changed from %s to %s", name, v, after[name])
			}
		}
	})
	n := testutil.NewNS(t)
	testutil.InNS(t, n, func() error {
		res, err := Apply("/proc/sys", true, true)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Missing {
				t.Logf("this kernel has no %s: skipped", r.Name)
				continue
			}
			b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(r.Name, ".", "/"))
			if err != nil {
				return err
			}
			if got := strings.TrimSpace(string(b)); got != r.Value {
				t.Errorf("%s = %s after Apply, want %s (was %s)", r.Name, got, r.Value, r.Old)
			}
		}
		// Applying again changes nothing and reports the values now in place.
		again, err := Apply("/proc/sys", true, true)
		if err != nil {
			return err
		}
		for _, r := range again {
			if !r.Missing && r.Old != r.Value {
				t.Errorf("second Apply found %s = %s, want %s", r.Name, r.Old, r.Value)
			}
		}
		return nil
	})
}
