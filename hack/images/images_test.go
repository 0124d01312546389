package main

import (
	"archive/tar"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ourBinaries are what `make build` puts in _output/bin for the images.
var ourBinaries = []string{"spiderpool-agent", "spiderpool", "coordinator", "ifacer", "spiderpool-controller", "spiderpool-init", "spiderpoolctl"}

// inputs writes stand-in binaries (this tests packaging, not the programs) and returns options
// reading them. The plugins directory also holds a tool that is not a reference plugin.
func inputs(t *testing.T) Options {
	t.Helper()
	bin, plugins := t.TempDir(), t.TempDir()
	for _, n := range ourBinaries {
		writeFile(t, filepath.Join(bin, n), "stand-in for "+n)
	}
	for _, n := range []string{"macvlan", "ipvlan", "host-local", "whereabouts"} {
		writeFile(t, filepath.Join(plugins, n), "stand-in for "+n)
	}
	return Options{
		BinDir: bin, PluginsDir: plugins, Registry: "example.test/spiderpool-go",
		Source: "https://github.com/spiderpool-go/spiderpool", Version: "v0.0.1-test", Revision: "0123abcd",
		Created: time.Unix(0, 0).UTC(),
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil { // 0644 on purpose: the image must say 0755
		t.Fatal(err)
	}
}

func component(t *testing.T, name string) Component {
	t.Helper()
	for _, c := range Components() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s", name)
	return Component{}
}

type tarEntry struct {
	Type     byte
	Mode     int64
	Uid, Gid int
	Link     string
	Content  string
	ModTime  int64
}

// layerEntries reads a layer's uncompressed tar.
func layerEntries(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeLink {
			if _, ok := out[h.Linkname]; !ok {
				t.Errorf("hard link %s comes before its target %s: extraction would fail", h.Name, h.Linkname)
			}
		}
		out[h.Name] = tarEntry{Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Link: h.Linkname, Content: string(b), ModTime: h.ModTime.Unix()}
	}
}

func buildAndWrite(t *testing.T, name string, opts Options, out string) (string, v1.Hash) {
	t.Helper()
	c := component(t, name)
	img, err := Build(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	path, err := Write(img, c, opts, out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return path, d
}

func TestImages(t *testing.T) {
	dir := func(mode int64) tarEntry { return tarEntry{Type: tar.TypeDir, Mode: mode} }
	file := func(name string) tarEntry {
		return tarEntry{Type: tar.TypeReg, Mode: 0o755, Content: "stand-in for " + name}
	}
	link := func(to string) tarEntry { return tarEntry{Type: tar.TypeLink, Mode: 0o755, Link: to} }
	tests := []struct {
		component  string
		entrypoint []string
		want       map[string]tarEntry
	}{
		{
			component:  "spiderpool-agent",
			entrypoint: []string{"/usr/bin/spiderpool-agent"},
			want: map[string]tarEntry{
				"opt/": dir(0o755), "opt/spiderpool/": dir(0o755), "opt/spiderpool/cni/": dir(0o755), "opt/spiderpool/cni/bin/": dir(0o755),
				"tmp/": dir(0o1777), "usr/": dir(0o755), "usr/bin/": dir(0o755),
				"usr/bin/spiderpool-agent": file("spiderpool-agent"),
				"usr/bin/spiderpool":       file("spiderpool"),
				"usr/bin/coordinator":      file("coordinator"),
				"usr/bin/ifacer":           file("ifacer"),
				// The CNI plugins to copy to the host, stored once.
				"opt/spiderpool/cni/bin/spiderpool":  link("usr/bin/spiderpool"),
				"opt/spiderpool/cni/bin/coordinator": link("usr/bin/coordinator"),
				"opt/spiderpool/cni/bin/ifacer":      link("usr/bin/ifacer"),
			},
		},
		{
			component:  "spiderpool-controller",
			entrypoint: []string{"/usr/bin/spiderpool-controller"},
			want: map[string]tarEntry{
				"tmp/": dir(0o1777), "usr/": dir(0o755), "usr/bin/": dir(0o755),
				"usr/bin/spiderpool-controller": file("spiderpool-controller"),
				"usr/bin/spiderpool-init":       file("spiderpool-init"),
				"usr/bin/spiderpoolctl":         file("spiderpoolctl"),
			},
		},
		{
			component: "spiderpool-plugins",
			// Only the reference plugins that exist; whereabouts is not one.
			want: map[string]tarEntry{
				"opt/": dir(0o755), "opt/cni/": dir(0o755), "opt/cni/bin/": dir(0o755), "tmp/": dir(0o1777),
				"opt/cni/bin/host-local": file("host-local"),
				"opt/cni/bin/ipvlan":     file("ipvlan"),
				"opt/cni/bin/macvlan":    file("macvlan"),
			},
		},
	}
	opts := inputs(t)
	out := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.component, func(t *testing.T) {
			path, digest := buildAndWrite(t, tc.component, opts, out)
			if path != filepath.Join(out, tc.component+".tar") {
				t.Errorf("written to %s, want %s.tar in %s", path, tc.component, out)
			}
			img, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := img.Digest(); err != nil || got != digest {
				t.Errorf("digest read back %v (%v), want %v", got, err, digest)
			}
			if mt, err := img.MediaType(); err != nil || mt != types.DockerManifestSchema2 {
				t.Errorf("manifest media type %s (%v), want Docker schema 2", mt, err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 1 {
				t.Fatalf("%d layers, want 1", len(layers))
			}
			got := layerEntries(t, layers[0])
			for n, e := range got {
				if e.Uid != 0 || e.Gid != 0 || e.ModTime != 0 {
					t.Errorf("%s: uid %d gid %d mtime %d, want root-owned at the epoch", n, e.Uid, e.Gid, e.ModTime)
				}
				e.Uid, e.Gid, e.ModTime = 0, 0, 0
				got[n] = e
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("layer entries (-want +got):\n%s", diff)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.entrypoint, cf.Config.Entrypoint); diff != "" {
				t.Errorf("entrypoint (-want +got):\n%s", diff)
			}
			wantLabels := map[string]string{
				"org.opencontainers.image.source":   "https://github.com/spiderpool-go/spiderpool",
				"org.opencontainers.image.version":  "v0.0.1-test",
				"org.opencontainers.image.revision": "0123abcd",
				"org.opencontainers.image.title":    tc.component,
			}
			if diff := cmp.Diff(wantLabels, cf.Config.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(time.Unix(0, 0)) {
				t.Errorf("platform %s/%s created %v, want linux/amd64 at the epoch", cf.OS, cf.Architecture, cf.Created)
			}
			if len(cf.Config.Env) == 0 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
				t.Errorf("env = %q, want a PATH", cf.Config.Env)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.MediaType != types.DockerConfigJSON || m.Layers[0].MediaType != types.DockerLayer {
				t.Errorf("media types config %s layer %s, want Docker schema 2", m.Config.MediaType, m.Layers[0].MediaType)
			}
		})
	}
}

// Two runs over the same inputs give the same digests and the same bytes, even when the input
// files were rewritten (new mtimes) in between.
func TestReproducible(t *testing.T) {
	opts := inputs(t)
	sums := func(out string) (map[string]v1.Hash, map[string][32]byte) {
		digests, files := map[string]v1.Hash{}, map[string][32]byte{}
		for _, c := range Components() {
			path, d := buildAndWrite(t, c.Name, opts, out)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			digests[c.Name], files[c.Name] = d, sha256.Sum256(b)
		}
		return digests, files
	}
	d1, f1 := sums(t.TempDir())
	later := time.Now().Add(time.Hour)
	for _, n := range ourBinaries {
		if err := os.Chtimes(filepath.Join(opts.BinDir, n), later, later); err != nil {
			t.Fatal(err)
		}
	}
	d2, f2 := sums(t.TempDir())
	if diff := cmp.Diff(d1, d2); diff != "" {
		t.Errorf("digests differ between runs (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(f1, f2); diff != "" {
		t.Errorf("tarballs differ between runs (-first +second):\n%s", diff)
	}

	// And the digest does follow the content.
	writeFile(t, filepath.Join(opts.BinDir, "spiderpool-init"), "another spiderpool-init")
	_, d3 := buildAndWrite(t, "spiderpool-controller", opts, t.TempDir())
	if d3 == d1["spiderpool-controller"] {
		t.Error("changing a binary left the digest unchanged")
	}
}

func TestMissingBinariesAreNamed(t *testing.T) {
	opts := inputs(t)
	for _, n := range []string{"ifacer", "spiderpoolctl"} {
		if err := os.Remove(filepath.Join(opts.BinDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Build(component(t, "spiderpool-agent"), opts)
	var missing *MissingError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), filepath.Join(opts.BinDir, "ifacer")) {
		t.Fatalf("error = %v, want a MissingError naming %s", err, filepath.Join(opts.BinDir, "ifacer"))
	}

	// The command reports every missing binary and writes no image at all.
	out := filepath.Join(t.TempDir(), "images")
	err = run([]string{"-bin", opts.BinDir, "-plugins-bin", opts.PluginsDir, "-out", out, "-version", "v1", "-revision", "r"})
	if err == nil || !strings.Contains(err.Error(), "ifacer") || !strings.Contains(err.Error(), "spiderpoolctl") {
		t.Fatalf("run error = %v, want one naming ifacer and spiderpoolctl", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output directory exists after a failed run (%v)", err)
	}

	// No reference plugin at all is an error too.
	opts.PluginsDir = t.TempDir()
	if _, err := Build(component(t, "spiderpool-plugins"), opts); !errors.As(err, &missing) || !strings.Contains(err.Error(), "macvlan") {
		t.Errorf("error = %v, want a MissingError listing the plugins looked for", err)
	}
}

func TestRunWritesEveryImage(t *testing.T) {
	opts := inputs(t)
	out := t.TempDir()
	if err := run([]string{"-bin", opts.BinDir, "-plugins-bin", opts.PluginsDir, "-out", out, "-version", "v1.2.3", "-revision", "r"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range Components() {
		if _, err := tarball.ImageFromPath(filepath.Join(out, c.Name+".tar"), nil); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}

// A dynamically linked binary cannot run on an empty base image.
func TestDynamicBinaryRefused(t *testing.T) {
	dyn := ""
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/ls"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				dyn = p
			}
		}
		f.Close()
		if dyn != "" {
			break
		}
	}
	if dyn == "" {
		t.Skip("no dynamically linked executable on this host to test with")
	}
	data, err := os.ReadFile(dyn)
	if err != nil {
		t.Fatal(err)
	}
	opts := inputs(t)
	if err := os.WriteFile(filepath.Join(opts.BinDir, "spiderpool-init"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Build(component(t, "spiderpool-controller"), opts)
	if err == nil || !strings.Contains(err.Error(), "spiderpool-init") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("error = %v, want spiderpool-init refused as dynamically linked", err)
	}
}
