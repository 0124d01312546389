package main

import (
	"archive/tar"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
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
var ourBinaries = []string{"spiderpool-agent", "spiderpool", "coordinator", "ifacer", "spiderpool-controller", "spiderpool-init", "spiderpoolctl", "spiderpool-plugins-install"}

// toolBinaries are stand-ins for what `make tools` puts in .tools/bin: some reference plugins,
// Multus' binaries, and a tool that is not a reference plugin.
var toolBinaries = []string{"macvlan", "ipvlan", "host-local", "whereabouts", "install_multus", "thin_entrypoint", "multus", "passthru"}

// standInPause stands in for Kubernetes' pause.c: it compiles the same way and prints VERSION.
const standInPause = `#include <stdio.h>
#include <string.h>
#define STR(x) #x
#define XSTR(x) STR(x)
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "-v")) printf("stand-in pause %s\n", XSTR(VERSION));
  return 0;
}
`

// inputs writes stand-in binaries and module sources (this tests packaging, not the programs) and
// returns options reading them.
func inputs(t *testing.T) Options {
	t.Helper()
	bin, tools, multus, k8s := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for _, n := range ourBinaries {
		writeFile(t, filepath.Join(bin, n), "stand-in for "+n)
	}
	for _, n := range toolBinaries {
		writeFile(t, filepath.Join(tools, n), "stand-in for "+n)
	}
	writeFile(t, filepath.Join(multus, "LICENSE"), "stand-in licence")
	if err := os.MkdirAll(filepath.Join(k8s, "build", "pause", "linux"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(k8s, "build", "pause", "Makefile"), "REGISTRY ?= example\nTAG ?= 3.10.2\nREV = x\n")
	writeFile(t, filepath.Join(k8s, "build", "pause", "linux", "pause.c"), standInPause)
	return Options{
		BinDir: bin, PluginsDir: tools, Registry: "example.test/spiderpool-go",
		Modules: map[string]Module{
			multusModule:     {Dir: multus, Version: "v4.2.2"},
			kubernetesModule: {Dir: k8s, Version: "v1.37.2"},
		},
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

// prerequisites says what of this machine a component needs beyond the stand-ins, so that its
// tests skip where that is missing.
var prerequisites = map[string][]string{
	"pause":   {"gcc"},
	"busybox": {busyboxBinary},
	"nginx":   {nginxBinary},
}

func needPrerequisites(t *testing.T, component string) {
	t.Helper()
	for _, p := range prerequisites[component] {
		if filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				t.Skipf("%s not on this machine (%v): install the Debian package .ci/run installs", p, err)
			}
		} else if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not on this machine: install gcc and libc6-dev", p)
		}
	}
}

type tarEntry struct {
	Type     byte
	Mode     int64
	Uid, Gid int
	Link     string
	Content  string
	ModTime  int64
}

// anyContent in a wanted entry matches whatever the file holds (a compiled program, a package's
// binary).
const anyContent = "<any>"

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

func buildAndWrite(t *testing.T, name string, opts Options, out string) (string, Image) {
	t.Helper()
	img, err := Build(component(t, name), opts)
	if err != nil {
		t.Fatal(err)
	}
	path, err := Write(img, out)
	if err != nil {
		t.Fatal(err)
	}
	return path, img
}

// readBack loads a written tarball and checks it is the image that was built.
func readBack(t *testing.T, path string, img Image) v1.Image {
	t.Helper()
	back, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := back.Digest(); err != nil || got != want {
		t.Errorf("digest read back %v (%v), want %v", got, err, want)
	}
	// The tarball's manifest.json names the image by the reference the pods ask for.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != img.Ref.String() {
		t.Errorf("tarball tags %v, want [%s]", m, img.Ref)
	}
	return back
}

func TestImages(t *testing.T) {
	dir := func(mode int64) tarEntry { return tarEntry{Type: tar.TypeDir, Mode: mode} }
	file := func(name string) tarEntry {
		return tarEntry{Type: tar.TypeReg, Mode: 0o755, Content: "stand-in for " + name}
	}
	text := func(content string) tarEntry { return tarEntry{Type: tar.TypeReg, Mode: 0o644, Content: content} }
	exe := tarEntry{Type: tar.TypeReg, Mode: 0o755, Content: anyContent}
	lib := tarEntry{Type: tar.TypeReg, Mode: 0o644, Content: anyContent}
	link := func(to string) tarEntry { return tarEntry{Type: tar.TypeLink, Mode: 0o755, Link: to} }
	symlink := func(to string) tarEntry { return tarEntry{Type: tar.TypeSymlink, Mode: 0o777, Link: to} }
	tests := []struct {
		component string
		ref       string
		version   string // the version label
		config    v1.Config
		// want is every entry of the layer, or with subset at least these.
		want   map[string]tarEntry
		subset bool
	}{
		{
			component: "spiderpool-agent",
			ref:       "example.test/spiderpool-go/spiderpool-agent:v0.0.1-test",
			version:   "v0.0.1-test",
			config:    v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-agent"}},
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
			component: "spiderpool-controller",
			ref:       "example.test/spiderpool-go/spiderpool-controller:v0.0.1-test",
			version:   "v0.0.1-test",
			config:    v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-controller"}},
			want: map[string]tarEntry{
				"tmp/": dir(0o1777), "usr/": dir(0o755), "usr/bin/": dir(0o755),
				"usr/bin/spiderpool-controller": file("spiderpool-controller"),
				"usr/bin/spiderpool-init":       file("spiderpool-init"),
				"usr/bin/spiderpoolctl":         file("spiderpoolctl"),
			},
		},
		{
			component: "spiderpool-plugins",
			ref:       "example.test/spiderpool-go/spiderpool-plugins:v0.0.1-test",
			version:   "v0.0.1-test",
			config:    v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-plugins-install"}},
			// Only the reference plugins that exist; whereabouts is not one.
			want: map[string]tarEntry{
				"opt/": dir(0o755), "opt/cni/": dir(0o755), "opt/cni/bin/": dir(0o755), "tmp/": dir(0o1777),
				"usr/": dir(0o755), "usr/bin/": dir(0o755),
				"usr/bin/spiderpool-plugins-install": file("spiderpool-plugins-install"),
				"opt/cni/bin/host-local":             file("host-local"),
				"opt/cni/bin/ipvlan":                 file("ipvlan"),
				"opt/cni/bin/macvlan":                file("macvlan"),
			},
		},
		{
			component: "multus-cni",
			ref:       "example.test/spiderpool-go/multus-cni:v4.2.2",
			version:   "v4.2.2",
			config:    v1.Config{Entrypoint: []string{"/thin_entrypoint"}},
			// Upstream's layout: install_multus copies from /usr/src/multus-cni/bin.
			want: map[string]tarEntry{
				"tmp/": dir(0o1777), "usr/": dir(0o755), "usr/src/": dir(0o755), "usr/src/multus-cni/": dir(0o755), "usr/src/multus-cni/bin/": dir(0o755),
				"install_multus":                  file("install_multus"),
				"thin_entrypoint":                 file("thin_entrypoint"),
				"usr/src/multus-cni/bin/multus":   file("multus"),
				"usr/src/multus-cni/bin/passthru": file("passthru"),
				"usr/src/multus-cni/LICENSE":      text("stand-in licence"),
			},
		},
		{
			component: "pause",
			ref:       "registry.k8s.io/pause:3.10.2",
			version:   "3.10.2",
			config:    v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
			want:      map[string]tarEntry{"tmp/": dir(0o1777), "pause": exe},
		},
		{
			component: "busybox",
			ref:       "docker.io/library/busybox:latest",
			config:    v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=" + systemPath}},
			subset:    true,
			want: map[string]tarEntry{
				"bin/busybox": exe, "tmp/": dir(0o1777), "root/": dir(0o700),
				"etc/passwd": text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
				"etc/group":  text("root:x:0:\nnobody:x:65534:\n"),
				// What the guides run in it.
				"bin/sh": link("bin/busybox"), "bin/sleep": link("bin/busybox"), "bin/ping": link("bin/busybox"),
				"bin/wget": link("bin/busybox"), "bin/ip": link("bin/busybox"), "bin/ifconfig": link("bin/busybox"),
				"bin/route": link("bin/busybox"), "bin/cat": link("bin/busybox"), "bin/ls": link("bin/busybox"),
				"bin/echo": link("bin/busybox"), "bin/nslookup": link("bin/busybox"), "bin/ps": link("bin/busybox"),
				"bin/top": link("bin/busybox"),
			},
		},
		{
			component: "nginx",
			ref:       "docker.io/library/nginx:latest",
			config: v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"}, Env: []string{"PATH=" + systemPath},
				ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGQUIT"},
			subset: true,
			want: map[string]tarEntry{
				"usr/sbin/nginx": exe, "lib64/ld-linux-x86-64.so.2": exe, "lib/x86_64-linux-gnu/libc.so.6": lib,
				"etc/nginx/nginx.conf":            text(nginxConf),
				"usr/share/nginx/html/index.html": text(nginxIndex),
				"var/log/nginx/access.log":        symlink("/dev/stdout"),
				"var/log/nginx/error.log":         symlink("/dev/stderr"),
				"var/lib/nginx/":                  dir(0o755),
				"run/":                            dir(0o755),
				"tmp/":                            dir(0o1777),
				"etc/passwd":                      text("root:x:0:0:root:/root:/sbin/nologin\nnginx:x:101:101:nginx:/nonexistent:/sbin/nologin\n"),
				"etc/group":                       text("root:x:0:\nnginx:x:101:\n"),
				"etc/nsswitch.conf":               text("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"),
			},
		},
	}
	opts := inputs(t)
	out := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.component, func(t *testing.T) {
			needPrerequisites(t, tc.component)
			path, built := buildAndWrite(t, tc.component, opts, out)
			if path != filepath.Join(out, tc.component+".tar") {
				t.Errorf("written to %s, want %s.tar in %s", path, tc.component, out)
			}
			if built.Ref.String() != tc.ref {
				t.Errorf("reference %s, want %s", built.Ref, tc.ref)
			}
			img := readBack(t, path, built)
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
				if w, ok := tc.want[n]; ok && w.Content == anyContent && e.Content != "" {
					e.Content = anyContent
				}
				got[n] = e
			}
			if tc.subset {
				for n := range got {
					if _, ok := tc.want[n]; !ok {
						delete(got, n)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("layer entries (-want +got):\n%s", diff)
			}

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			labels := cf.Config.Labels
			cf.Config.Labels = nil
			wantConfig := tc.config
			if len(wantConfig.Env) == 0 {
				wantConfig.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
			}
			if diff := cmp.Diff(wantConfig, cf.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if tc.version != "" && labels["org.opencontainers.image.version"] != tc.version {
				t.Errorf("version label %q, want %q", labels["org.opencontainers.image.version"], tc.version)
			}
			if labels["org.opencontainers.image.title"] != tc.component || labels["org.opencontainers.image.revision"] != "0123abcd" ||
				labels["org.opencontainers.image.source"] != "https://github.com/spiderpool-go/spiderpool" || labels["org.opencontainers.image.description"] == "" {
				t.Errorf("labels %v", labels)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(time.Unix(0, 0)) {
				t.Errorf("platform %s/%s created %v, want linux/amd64 at the epoch", cf.OS, cf.Architecture, cf.Created)
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

// Every ELF file of the nginx image finds its loader and each library it needs where the loader
// looks, inside the image.
func TestNginxHasEveryNeededLibrary(t *testing.T) {
	needPrerequisites(t, "nginx")
	img, err := Build(component(t, "nginx"), inputs(t))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	entries := layerEntries(t, layers[0])
	inImage := func(p string) bool { _, ok := entries[strings.TrimPrefix(p, "/")]; return ok }
	// The loader's own search path on Debian amd64, without ld.so.cache.
	searched := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
	elves := 0
	for name, e := range entries {
		if e.Type != tar.TypeReg {
			continue
		}
		f, err := elf.NewFile(strings.NewReader(e.Content))
		if err != nil {
			continue
		}
		elves++
		interp, err := interpreter(f)
		if err != nil {
			t.Fatal(err)
		}
		if interp != "" && !inImage(interp) {
			t.Errorf("%s: program interpreter %s is not in the image", name, interp)
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needed {
			found := false
			for _, d := range searched {
				found = found || inImage(d+"/"+n)
			}
			if !found {
				t.Errorf("%s needs %s, which is in none of %v of the image", name, n, searched)
			}
		}
		f.Close()
	}
	if elves < 5 {
		t.Errorf("%d ELF files in the image; want nginx, its loader and its libraries", elves)
	}
}

// Two runs over the same inputs give the same digests and the same bytes, even when the input
// files were rewritten (new mtimes) in between.
func TestReproducible(t *testing.T) {
	opts := inputs(t)
	var skipped []string
	sums := func(out string) (map[string]v1.Hash, map[string][32]byte) {
		digests, files := map[string]v1.Hash{}, map[string][32]byte{}
		for _, c := range Components() {
			if _, err := Build(c, opts); errors.As(err, new(*MissingError)) && prerequisites[c.Name] != nil {
				skipped = append(skipped, c.Name)
				continue
			}
			path, img := buildAndWrite(t, c.Name, opts, out)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d, err := img.Digest()
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
	if len(skipped) > 0 {
		t.Logf("not on this machine, not checked: %v", skipped)
	}
	if diff := cmp.Diff(d1, d2); diff != "" {
		t.Errorf("digests differ between runs (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(f1, f2); diff != "" {
		t.Errorf("tarballs differ between runs (-first +second):\n%s", diff)
	}

	// And the digest does follow the content.
	writeFile(t, filepath.Join(opts.BinDir, "spiderpool-init"), "another spiderpool-init")
	_, img := buildAndWrite(t, "spiderpool-controller", opts, t.TempDir())
	if d3, err := img.Digest(); err != nil || d3 == d1["spiderpool-controller"] {
		t.Errorf("changing a binary left the digest unchanged (%v)", err)
	}
}

func TestMissingInputsAreNamed(t *testing.T) {
	opts := inputs(t)
	for _, n := range []string{"ifacer", "spiderpoolctl"} {
		if err := os.Remove(filepath.Join(opts.BinDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Build(component(t, "spiderpool-agent"), opts)
	var missing *MissingError
	if !errors.As(err, &missing) || missing.Component != "spiderpool-agent" || !strings.Contains(err.Error(), filepath.Join(opts.BinDir, "ifacer")) {
		t.Fatalf("error = %v, want a MissingError of spiderpool-agent naming %s", err, filepath.Join(opts.BinDir, "ifacer"))
	}

	// The command reports every missing binary and writes no image at all.
	out := filepath.Join(t.TempDir(), "images")
	err = run([]string{"-bin", opts.BinDir, "-plugins-bin", opts.PluginsDir, "-out", out, "-version", "v1", "-revision", "r",
		"-components", "spiderpool-agent,spiderpool-controller"})
	if err == nil || !strings.Contains(err.Error(), "ifacer") || !strings.Contains(err.Error(), "spiderpoolctl") {
		t.Fatalf("run error = %v, want one naming ifacer and spiderpoolctl", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output directory exists after a failed run (%v)", err)
	}

	// No reference plugin at all is an error too.
	for _, n := range []string{"macvlan", "ipvlan", "host-local"} {
		if err := os.Remove(filepath.Join(opts.PluginsDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Build(component(t, "spiderpool-plugins"), opts); !errors.As(err, &missing) || !strings.Contains(err.Error(), "macvlan") {
		t.Errorf("error = %v, want a MissingError listing the plugins looked for", err)
	}

	// Multus' binaries come from the tools.
	if err := os.Remove(filepath.Join(opts.PluginsDir, "thin_entrypoint")); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(component(t, "multus-cni"), opts); !errors.As(err, &missing) || !strings.Contains(err.Error(), "thin_entrypoint") || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("error = %v, want a MissingError naming thin_entrypoint and make tools", err)
	}
}

func TestRunWritesEveryImageAndTheIndex(t *testing.T) {
	opts := inputs(t)
	out := t.TempDir()
	names := []string{"spiderpool-agent", "spiderpool-controller", "spiderpool-plugins"}
	if err := run([]string{"-bin", opts.BinDir, "-plugins-bin", opts.PluginsDir, "-out", out, "-version", "v1.2.3", "-revision", "r",
		"-components", strings.Join(names, ",")}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, indexFile))
	if err != nil {
		t.Fatal(err)
	}
	var index []IndexEntry
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if len(index) != len(names) {
		t.Fatalf("index lists %d images, want %d:\n%s", len(index), len(names), b)
	}
	for i, e := range index {
		if e.Component != names[i] || e.File != names[i]+".tar" || e.Reference != "ghcr.io/spiderpool-go/"+names[i]+":v1.2.3" {
			t.Errorf("index entry %+v, want %s.tar tagged ghcr.io/spiderpool-go/%s:v1.2.3", e, names[i], names[i])
		}
		img, err := tarball.ImageFromPath(filepath.Join(out, e.File), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil || d.String() != e.Digest {
			t.Errorf("%s: digest %v (%v), index says %s", e.File, d, err, e.Digest)
		}
		st, err := os.Stat(filepath.Join(out, e.File))
		if err != nil || st.Size() != e.Size {
			t.Errorf("%s: size %v (%v), index says %d", e.File, st, err, e.Size)
		}
	}
}

// The pinned modules resolve where hack/tools pins them.
func TestPinnedModules(t *testing.T) {
	opts := Options{ToolsDir: filepath.Join("..", "tools")}
	for _, mod := range []string{multusModule, kubernetesModule} {
		m, err := opts.module(mod)
		if err != nil {
			t.Skipf("module lookup unavailable here (offline, no module cache?): %v", err)
		}
		if m.Version == "" || m.Dir == "" {
			t.Errorf("%s: %+v", mod, m)
		}
	}
}

// A dynamically linked binary of ours cannot run on an empty base image.
func TestDynamicBinaryRefused(t *testing.T) {
	dyn := ""
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/ls"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		if interp, _ := interpreter(f); interp != "" {
			dyn = p
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

func TestWriteTarRefusesInconsistentEntries(t *testing.T) {
	tests := map[string][]tarFile{
		"duplicate":         {regular("/etc/passwd", nil), regular("/etc/passwd", nil)},
		"relative":          {regular("etc/passwd", nil)},
		"file as directory": {regular("/etc", nil), regular("/etc/passwd", nil)},
		"dangling hardlink": {hardLink("/bin/sh", "/bin/busybox")},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := writeTar(files, time.Unix(0, 0)); err == nil {
				t.Error("no error")
			}
		})
	}
}
