package cniinstall

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestInstall(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	for name, content := range map[string]string{"spiderpool": "new ipam", "coordinator": "new coordinator"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(from, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	// An older binary and an unrelated one on the node.
	if err := os.WriteFile(filepath.Join(to, "spiderpool"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, "macvlan"), []byte("theirs"), 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := Install(from, to)
	if err != nil || !slices.Equal(names, []string{"coordinator", "spiderpool"}) {
		t.Fatalf("Install = %v, %v", names, err)
	}
	for name, want := range map[string]string{"spiderpool": "new ipam", "coordinator": "new coordinator", "macvlan": "theirs"} {
		b, err := os.ReadFile(filepath.Join(to, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
		if fi, _ := os.Stat(filepath.Join(to, name)); fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v", name, fi.Mode())
		}
	}
	entries, _ := os.ReadDir(to)
	if len(entries) != 3 {
		t.Errorf("target holds %d entries, want 3 (no temporary files left)", len(entries))
	}
	if _, err := Install(t.TempDir(), to); err == nil {
		t.Error("an empty source directory installed nothing without an error")
	}
	if _, err := Install(filepath.Join(from, "missing"), to); err == nil {
		t.Error("a missing source directory is no error")
	}
}
