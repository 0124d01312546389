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

// Component is one image: what it holds, the name it is tagged with and how it starts.
type Component struct {
	// Name is the tarball's base name, the -components key and, for our own images, the
	// repository under Options.Registry.
	Name string
	// Repository is the full name, without tag, of a third-party image: it keeps its upstream name
	// so that a pod's `image: nginx` or containerd's sandbox image resolves to it. Empty for ours.
	Repository string
	// Tag fixes the tag; empty means the version of the content.
	Tag string
	// Content gathers the files of the image.
	Content func(Options) (Content, error)
	// Config is how the image starts (Entrypoint, Cmd, User, ExposedPorts, StopSignal, Env); an
	// empty Env gets a PATH. Build sets the labels.
	Config v1.Config
}

// Content is what an image holds and what it is.
type Content struct {
	Files []tarFile
	// Version is the version of what is packaged: the org.opencontainers.image.version label,
	// and the tag unless the component fixes one.
	Version string
	// Summary says where the files came from; it becomes the layer's history and the image's
	// description.
	Summary string
}

// Options are the inputs of a build other than the files themselves.
type Options struct {
	// BinDir holds our static binaries (make build: _output/bin).
	BinDir string
	// PluginsDir holds the binaries of the pinned tools: the reference CNI plugins and Multus'
	// (make tools: .tools/bin).
	PluginsDir string
	// ToolsDir is the module that pins the tools (hack/tools); Modules are looked up there.
	ToolsDir string
	// Modules are pinned modules already known, by module path; the others are looked up with
	// `go mod download` in ToolsDir.
	Modules map[string]Module
	// Registry prefixes the names of our images: <registry>/<component>:<version>.
	Registry string
	// Source, Version and Revision become the org.opencontainers.image.* labels; Version is also
	// the tag of our own images.
	Source, Version, Revision string
	// Created is the time of every file, the image and its history: fixed for reproducible output.
	Created time.Time
}

// MissingError lists the inputs an image needs that are not there.
type MissingError struct {
	Component string
	Paths     []string
	// Hint says how to get them.
	Hint string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("image %s: missing %s (%s)", e.Component, strings.Join(e.Paths, ", "), e.Hint)
}

// Image is a built image and the name it is tagged with.
type Image struct {
	v1.Image
	Component string
	Ref       name.Tag
}

// Build assembles the image of c. The result is a function of the inputs only: same files, same
// options, same digest.
func Build(c Component, opts Options) (Image, error) {
	content, err := c.Content(opts)
	var missing *MissingError
	switch {
	case errors.As(err, &missing):
		missing.Component = c.Name
		return Image{}, missing
	case err != nil:
		return Image{}, fmt.Errorf("image %s: %w", c.Name, err)
	}
	repo, tag := c.Repository, c.Tag
	if repo == "" {
		repo = opts.Registry + "/" + c.Name
	}
	if tag == "" {
		tag = content.Version
	}
	ref, err := name.NewTag(repo + ":" + tag)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: tag: %w", c.Name, err)
	}
	layerTar, err := writeTar(content.Files, opts.Created)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", c.Name, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return Image{}, fmt.Errorf("image %s: layer: %w", c.Name, err)
	}

	created := v1.Time{Time: opts.Created}
	// Docker schema 2 media types, empty.Image's: the tarball format (`docker save`'s) records no
	// manifest, and readers rebuild a schema 2 one, so any other media type would give the image a
	// digest nobody can find again in the file.
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "hack/images: " + content.Summary, Comment: c.Name},
	})
	if err != nil {
		return Image{}, fmt.Errorf("image %s: append layer: %w", c.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("image %s: config: %w", c.Name, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = created
	cf.Config = *c.Config.DeepCopy()
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.source":      opts.Source,
		"org.opencontainers.image.version":     content.Version,
		"org.opencontainers.image.revision":    opts.Revision,
		"org.opencontainers.image.title":       c.Name,
		"org.opencontainers.image.description": content.Summary,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: set config: %w", c.Name, err)
	}
	return Image{Image: img, Component: c.Name, Ref: ref}, nil
}

// Write stores img as <outDir>/<component>.tar, a tarball that `docker load`, `podman load`, `ctr
// images import` and `kind load image-archive` read, tagged with img.Ref.
func Write(img Image, outDir string) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("image %s: %w", img.Component, err)
	}
	out := filepath.Join(outDir, img.Component+".tar")
	// Written beside and renamed, so that a failed run never leaves a truncated image behind.
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, img.Ref, img.Image); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("image %s: write %s: %w", img.Component, out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("image %s: %w", img.Component, err)
	}
	return out, nil
}

// tarFile is one entry of a layer: a directory, a regular file, or a hard or symbolic link.
type tarFile struct {
	path     string // absolute, in the image
	mode     int64  // permission bits
	dir      bool
	data     []byte
	hardlink string // absolute path of the regular file this is a hard link to
	symlink  string // target of a symbolic link, as written
}

func executable(p string, data []byte) tarFile { return tarFile{path: p, mode: 0o755, data: data} }
func regular(p string, data []byte) tarFile    { return tarFile{path: p, mode: 0o644, data: data} }
func directory(p string, mode int64) tarFile   { return tarFile{path: p, mode: mode, dir: true} }
func hardLink(p, to string) tarFile            { return tarFile{path: p, mode: 0o755, hardlink: to} }
func symLink(p, to string) tarFile             { return tarFile{path: p, mode: 0o777, symlink: to} }

// writeTar writes the layer: the directories, the regular files, the symbolic links, then the
// hard links, each group in path order, all owned by root with mtime created, so that equal
// inputs give equal bytes. Parent directories not listed are added with mode 0755, and /tmp with
// 1777 unless listed: every image gets a writable /tmp (the controller keeps its webhook
// certificates under it, Multus' thin entrypoint mounts its scratch directories there).
func writeTar(files []tarFile, created time.Time) ([]byte, error) {
	byPath := map[string]tarFile{}
	for _, f := range files {
		if _, dup := byPath[f.path]; dup {
			return nil, fmt.Errorf("two entries for %s", f.path)
		}
		if !path.IsAbs(f.path) || path.Clean(f.path) != f.path || f.path == "/" {
			return nil, fmt.Errorf("entry path %q: want an absolute, clean path", f.path)
		}
		byPath[f.path] = f
	}
	dirs := map[string]int64{"/tmp": 0o1777}
	for _, f := range files {
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			if p, ok := byPath[d]; ok && !p.dir {
				return nil, fmt.Errorf("%s is not a directory but holds %s", d, f.path)
			}
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
		if f.dir {
			dirs[f.path] = f.mode
		}
	}
	rank := func(f tarFile) int {
		switch {
		case f.symlink != "":
			return 1
		case f.hardlink != "":
			// After the regular files: extracting a link needs its target to exist already.
			if t, ok := byPath[f.hardlink]; !ok || t.dir || t.hardlink != "" || t.symlink != "" {
				return -1
			}
			return 2
		}
		return 0
	}
	var entries []tarFile
	for _, f := range files {
		if f.dir {
			continue
		}
		if rank(f) < 0 {
			return nil, fmt.Errorf("hard link %s: %s is not a regular file of the image", f.path, f.hardlink)
		}
		entries = append(entries, f)
	}
	slices.SortFunc(entries, func(a, b tarFile) int {
		if r := rank(a) - rank(b); r != 0 {
			return r
		}
		return strings.Compare(a.path, b.path)
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		h.ModTime, h.AccessTime, h.ChangeTime = created, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: dirs[d]}); err != nil {
			return nil, err
		}
	}
	for _, f := range entries {
		h := &tar.Header{Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode}
		switch {
		case f.symlink != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.symlink
		case f.hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, strings.TrimPrefix(f.hardlink, "/")
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := hdr(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
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

// checkStatic refuses an ELF executable that needs a dynamic loader: an image of static binaries
// has none, and such a binary would fail to start with a misleading "no such file or directory".
// Files that are not ELF are not judged. The images of Debian packages carry their loader and
// libraries instead (sharedLibraries).
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
