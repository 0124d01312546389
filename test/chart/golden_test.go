package chart

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current chart")

// documents splits rendered manifests into their YAML documents, keyed "Kind/name" (several
// kinds share names, none shares both).
func documents(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	kindRe := regexp.MustCompile(`(?m)^kind: (\S+)$`)
	nameRe := regexp.MustCompile(`(?m)^  name: (\S+)$`)
	docs := map[string]string{}
	for _, d := range bytes.Split(raw, []byte("\n---\n")) {
		d = bytes.TrimPrefix(bytes.TrimSpace(d), []byte("---\n"))
		k, n := kindRe.FindSubmatch(d), nameRe.FindSubmatch(d)
		if k == nil || n == nil {
			continue
		}
		key := string(k[1]) + "/" + string(n[1])
		if _, dup := docs[key]; dup {
			t.Fatalf("two documents are %s", key)
		}
		docs[key] = string(d) + "\n"
	}
	return docs
}

// TestChartGolden compares the controller Deployment, the agent DaemonSet and every RBAC object
// of a default install with testdata/*.golden. Run `go test ./test/chart -run Golden -update`
// after an intended change and review the diff.
func TestChartGolden(t *testing.T) {
	m := render(t)
	docs := documents(t, m.raw)
	rbac := func(key string) bool {
		kind, _, _ := strings.Cut(key, "/")
		switch kind {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			return true
		}
		return false
	}
	for _, g := range []struct {
		file string
		keep func(key string) bool
		min  int
	}{
		{"controller-deployment.golden", func(k string) bool { return k == "Deployment/"+controller }, 1},
		{"agent-daemonset.golden", func(k string) bool { return k == "DaemonSet/"+agent }, 1},
		// Agent, controller, init and Multus: an account, a ClusterRole and a binding each, plus the
		// controller's Role and RoleBinding.
		{"rbac.golden", rbac, 14},
	} {
		t.Run(g.file, func(t *testing.T) {
			var keys []string
			for k := range docs {
				if g.keep(k) {
					keys = append(keys, k)
				}
			}
			if len(keys) < g.min {
				t.Fatalf("%d objects for %s, want at least %d: %v", len(keys), g.file, g.min, keys)
			}
			slices.Sort(keys)
			var got strings.Builder
			for _, k := range keys {
				got.WriteString("---\n")
				got.WriteString(docs[k])
			}
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("%s differs from the rendered chart (-want +got); rerun with -update if intended:\n%s", path, diff)
			}
		})
	}
}
