package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository root, two levels above this package.
const repoRoot = "../.."

// built holds the binaries built once per test run (flags.md needs them).
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binDir builds ./cmd/... once for the whole run and returns the bin directory.
func binDir(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		scratch, err := os.MkdirTemp("", "docgen-test-")
		if err != nil {
			built.err = err
			return
		}
		start := time.Now()
		built.dir, built.err = BuildBinaries(context.Background(), repoRoot, scratch)
		fmt.Fprintf(os.Stderr, "docgen: built ./cmd/... in %s\n", time.Since(start).Round(time.Millisecond))
	})
	if built.err != nil {
		t.Fatalf("build binaries: %v", built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(filepath.Dir(filepath.Dir(built.dir)))
	}
	os.Exit(code)
}

// The committed reference must be what the code generates now; otherwise make verify fails too.
func TestReferenceIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	pages, err := Generate(context.Background(), Options{Root: repoRoot, BinDir: binDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Stale(filepath.Join(repoRoot, "docs", "reference"), pages)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("docs/reference is stale: run make docs and commit the result\n%s", strings.Join(stale, "\n"))
	}
}

// Changing one default in values.yaml makes the committed page stale, and Stale names exactly
// that page: the check make verify relies on catches a value edited without make docs.
func TestStaleAfterValuesChange(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(repoRoot, valuesFile))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(repoRoot, schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	const from, to = "  httpPort: 5710\n", "  httpPort: 5799\n"
	if strings.Count(string(values), from) != 1 {
		t.Fatalf("values.yaml does not hold %q once; pick another value for this test", from)
	}
	edited := []byte(strings.Replace(string(values), from, to, 1))

	before, err := renderHelmValues(values, schema)
	if err != nil {
		t.Fatal(err)
	}
	after, err := renderHelmValues(edited, schema)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writePages(dir, map[string][]byte{"helm-values.md": before, "api.md": []byte("unchanged\n")}); err != nil {
		t.Fatal(err)
	}
	stale, err := Stale(dir, map[string][]byte{"helm-values.md": after, "api.md": []byte("unchanged\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || !strings.HasPrefix(stale[0], "helm-values.md: differs") || !strings.Contains(stale[0], "5799") {
		t.Errorf("Stale = %q, want one entry naming helm-values.md and the new default 5799", stale)
	}
}

// Changing one field's doc comment in a plugin's config struct changes cni.md.
func TestStaleAfterFieldCommentChange(t *testing.T) {
	plugin := cniPlugins[1] // coordinator
	src, err := readGoPackage(filepath.Join(repoRoot, plugin.Dir))
	if err != nil {
		t.Fatal(err)
	}
	plugin.Sources = src
	before, err := renderCNI([]cniPlugin{plugin})
	if err != nil {
		t.Fatal(err)
	}
	const from = "// VethMTU is the MTU of the veth pair"
	const to = "// VethMTU is the maximum transmission unit of the veth pair"
	conf := string(src["conf.go"])
	if strings.Count(conf, from) != 1 {
		t.Fatalf("conf.go does not hold %q once; pick another comment for this test", from)
	}
	edited := map[string][]byte{}
	for k, v := range src {
		edited[k] = v
	}
	edited["conf.go"] = []byte(strings.Replace(conf, from, to, 1))
	plugin.Sources = edited
	after, err := renderCNI([]cniPlugin{plugin})
	if err != nil {
		t.Fatal(err)
	}
	if string(before) == string(after) {
		t.Fatal("cni.md did not change with the comment of vethMTU")
	}
	if !strings.Contains(string(after), "`vethMTU` is the maximum transmission unit") {
		t.Errorf("cni.md lacks the new comment:\n%s", after)
	}
}

func TestWritePagesRemovesDroppedPages(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pages := map[string][]byte{"a.md": []byte("a\n")}
	stale, err := Stale(dir, pages)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.md: missing", "old.md: no longer generated"}; strings.Join(stale, "|") != strings.Join(want, "|") {
		t.Errorf("Stale before writing = %q, want %q", stale, want)
	}
	if err := writePages(dir, pages); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old.md")); !os.IsNotExist(err) {
		t.Errorf("old.md survived writePages (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
		t.Errorf("writePages removed a file that is not a page: %v", err)
	}
	if stale, err := Stale(dir, pages); err != nil || len(stale) != 0 {
		t.Errorf("Stale after writing = %q, %v; want none", stale, err)
	}
}
