package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Component is one image: which binaries go where, and how it starts.
type Component struct {
	Name string
	// Files are the binaries, each taken from its source directory by base name. A component whose
	// files are all optional needs at least one of them.
	Files []File
	// Entrypoint is the image's entrypoint; nil for an image that only carries files.
	Entrypoint []string
}

// File is one binary of an image.
type File struct {
	// Name is the base name in the source directory.
	Name string
	// Dirs are the absolute directories of the image that hold it; a second directory gets a hard
	// link to the first, so the bytes are stored once.
	Dirs []string
	// FromPlugins takes the file from the reference-plugins directory instead of our binaries'.
	FromPlugins bool
	// Optional files are skipped when absent.
	Optional bool
}

// CNIInstallDir is where the agent image keeps the CNI plugins to be copied to the host's
// /opt/cni/bin (global.cniBinHostPath): the directory holds nothing else, so it can be copied whole.
const CNIInstallDir = "/opt/spiderpool/cni/bin"

// PluginsDir is where the plugins image keeps the reference CNI plugins, the host's layout.
const PluginsDir = "/opt/cni/bin"

// referencePlugins are the containernetworking plugins the plugins image carries when present.
var referencePlugins = []string{"bandwidth", "bridge", "dhcp", "dummy", "firewall", "host-device", "host-local",
	"ipvlan", "loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tap", "tuning", "vlan", "vrf"}

// Components returns the images of the project (DESIGN.md section 2 names their binaries).
func Components() []Component {
	cni := func(n string) File { return File{Name: n, Dirs: []string{"/usr/bin", CNIInstallDir}} }
	bin := func(n string) File { return File{Name: n, Dirs: []string{"/usr/bin"}} }
	var plugins []File
	for _, p := range referencePlugins {
		plugins = append(plugins, File{Name: p, Dirs: []string{PluginsDir}, FromPlugins: true, Optional: true})
	}
	return []Component{
		{
			Name:       "spiderpool-agent",
			Files:      []File{bin("spiderpool-agent"), cni("spiderpool"), cni("coordinator"), cni("ifacer")},
			Entrypoint: []string{"/usr/bin/spiderpool-agent"},
		},
		{
			Name:       "spiderpool-controller",
			Files:      []File{bin("spiderpool-controller"), bin("spiderpool-init"), bin("spiderpoolctl")},
			Entrypoint: []string{"/usr/bin/spiderpool-controller"},
		},
		{
			Name:  "spiderpool-plugins",
			Files: plugins,
			// No entrypoint: the image only carries files (an init container copies them with a
			// program of its own).
		},
	}
}

// Options are the inputs of a build other than the binaries themselves.
type Options struct {
	// BinDir holds our static binaries (make build: _output/bin).
	BinDir string
	// PluginsDir holds the reference CNI plugins (make tools: .tools/bin).
	PluginsDir string
	// Registry prefixes the image names in the tarballs: <registry>/<component>:<version>.
	Registry string
	// Source, Version and Revision become the org.opencontainers.image.* labels.
	Source, Version, Revision string
	// Created is the time of every file, the image and its history: fixed for reproducible output.
	Created time.Time
}

// MissingError lists the binaries a component needs that are not in their directory.
type MissingError struct {
	Component string
	Paths     []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("image %s: missing binaries %s (run `make build`, and `make tools` for the plugins)", e.Component, strings.Join(e.Paths, ", "))
}

// Build assembles the image of c. The result is a function of the inputs only: same files, same
// options, same digest.
func Build(c Component, opts Options) (v1.Image, error) {
	type entry struct {
		src  string
		file File
	}
	var (
		entries []entry
		missing []string
	)
	for _, f := range c.Files {
		dir := opts.BinDir
		if f.FromPlugins {
			dir = opts.PluginsDir
		}
		src := filepath.Join(dir, f.Name)
		st, err := os.Stat(src)
		switch {
		case errors.Is(err, os.ErrNotExist) && f.Optional:
			continue
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, src)
			continue
		case err != nil:
			return nil, fmt.Errorf("image %s: %w", c.Name, err)
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("image %s: %s is not a regular file", c.Name, src)
		}
		entries = append(entries, entry{src, f})
	}
	if len(missing) > 0 {
		return nil, &MissingError{Component: c.Name, Paths: missing}
	}
	if len(entries) == 0 {
		return nil, &MissingError{Component: c.Name, Paths: []string{"any of " + strings.Join(fileNames(c.Files), ", ")}}
	}

	var files []tarFile
	for _, e := range entries {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", c.Name, err)
		}
		if err := checkStatic(data); err != nil {
			return nil, fmt.Errorf("image %s: %s: %w", c.Name, e.src, err)
		}
		for i, dir := range e.file.Dirs {
			p := path.Join(dir, e.file.Name)
			if i == 0 {
				files = append(files, tarFile{path: p, data: data})
			} else {
				files = append(files, tarFile{path: p, linkTo: path.Join(e.file.Dirs[0], e.file.Name)})
			}
		}
	}
	layerTar, err := writeTar(files, opts.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", c.Name, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: layer: %w", c.Name, err)
	}

	created := v1.Time{Time: opts.Created}
	// Docker schema 2 media types, empty.Image's: the tarball format (`docker save`'s) records no
	// manifest, and readers rebuild a schema 2 one, so any other media type would give the image a
	// digest nobody can find again in the file.
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "hack/images: " + strings.Join(fileNames(c.Files), " "), Comment: c.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: append layer: %w", c.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", c.Name, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = created
	cf.Config.Entrypoint = c.Entrypoint
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.source":   opts.Source,
		"org.opencontainers.image.version":  opts.Version,
		"org.opencontainers.image.revision": opts.Revision,
		"org.opencontainers.image.title":    c.Name,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: set config: %w", c.Name, err)
	}
	return img, nil
}

func fileNames(files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// Write stores img as a tarball that `docker load`, `podman load`, `ctr images import` and
// `kind load image-archive` read, tagged <registry>/<component>:<version>.
func Write(img v1.Image, c Component, opts Options, outDir string) (string, error) {
	tag, err := name.NewTag(fmt.Sprintf("%s/%s:%s", opts.Registry, c.Name, opts.Version))
	if err != nil {
		return "", fmt.Errorf("image %s: tag: %w", c.Name, err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("image %s: %w", c.Name, err)
	}
	out := filepath.Join(outDir, c.Name+".tar")
	// Written beside and renamed, so that a failed run never leaves a truncated image behind.
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("image %s: write %s: %w", c.Name, out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("image %s: %w", c.Name, err)
	}
	return out, nil
}

type tarFile struct {
	path   string // absolute, in the image
	data   []byte
	linkTo string // hard link target (absolute) instead of data
}

// writeTar writes the layer: the parent directories, the files, then the hard links, each group in
// path order, all owned by root with mode 0755 and mtime created, so that equal inputs give equal
// bytes.
func writeTar(files []tarFile, created time.Time) ([]byte, error) {
	// Regular files before hard links: extracting a link needs its target to exist already.
	slices.SortFunc(files, func(a, b tarFile) int {
		if (a.linkTo == "") != (b.linkTo == "") {
			if a.linkTo == "" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.path, b.path)
	})
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// /tmp: the controller writes its webhook certificates under it, and an empty image has none.
	dirs["/tmp"] = true
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		h.ModTime, h.AccessTime, h.ChangeTime = created, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.path, "/"), Mode: 0o755}
		if f.linkTo != "" {
			h.Typeflag, h.Linkname = tar.TypeLink, strings.TrimPrefix(f.linkTo, "/")
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := hdr(h); err != nil {
			return nil, err
		}
		if f.linkTo == "" {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkStatic refuses an ELF executable that needs a dynamic loader: an empty image has none, and
// such a binary would fail to start with a misleading "no such file or directory". Files that are
// not ELF are not judged.
func checkStatic(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked; build it with CGO_ENABLED=0")
		}
	}
	return nil
}
