package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/spiderpool-go/spiderpool/internal/cniplugins"
)

// CNIInstallDir is where the agent image keeps the CNI plugins to be copied to the host's
// /opt/cni/bin (global.cniBinHostPath): the directory holds nothing else, so it can be copied whole.
const CNIInstallDir = "/opt/spiderpool/cni/bin"

// PluginsDir is where the plugins image keeps the reference CNI plugins, the host's layout; its
// entrypoint copies them from there (cmd/spiderpool-plugins-install's default -from).
const PluginsDir = "/opt/cni/bin"

// MultusBinDir is where Multus' install_multus and thin_entrypoint look for the plugin binaries,
// as in upstream's image.
const MultusBinDir = "/usr/src/multus-cni/bin"

// multusModule is the pinned Multus module (hack/tools/multus): its binaries are in .tools/bin,
// and its version tags the image.
const multusModule = "gopkg.in/k8snetworkplumbingwg/multus-cni.v4"

// Components returns the images, ours (the binaries of cmd/) and those the
// chart and the user guides run: Multus, the reference plugins, pause, busybox and nginx.
func Components() []Component {
	cni := func(n string) File { return File{Name: n, Dirs: []string{"/usr/bin", CNIInstallDir}} }
	bin := func(n string) File { return File{Name: n, Dirs: []string{"/usr/bin"}} }
	var plugins []File
	for _, p := range cniplugins.Reference() {
		plugins = append(plugins, File{Name: p, Dirs: []string{PluginsDir}, FromTools: true, Optional: true})
	}
	tool := func(n, dir string) File { return File{Name: n, Dirs: []string{dir}, FromTools: true} }
	return []Component{
		{
			Name:    "spiderpool-agent",
			Content: binaries(bin("spiderpool-agent"), cni("spiderpool"), cni("coordinator"), cni("ifacer")),
			Config:  v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-agent"}},
		},
		{
			Name:    "spiderpool-controller",
			Content: binaries(bin("spiderpool-controller"), bin("spiderpool-init"), bin("spiderpoolctl")),
			Config:  v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-controller"}},
		},
		{
			// The reference plugins that were built, and the program that copies them to the node
			// (the chart's install-plugins init container): the image has no shell.
			Name:    "spiderpool-plugins",
			Content: binaries(append([]File{bin("spiderpool-plugins-install")}, plugins...)...),
			Config:  v1.Config{Entrypoint: []string{"/usr/bin/spiderpool-plugins-install"}},
		},
		{
			// Multus' thin plugin in upstream's layout: the chart runs /install_multus --type thin
			// in an init container and /thin_entrypoint in the DaemonSet's containers.
			Name:    "multus-cni",
			Content: multusContent(tool("install_multus", "/"), tool("thin_entrypoint", "/"), tool("multus", MultusBinDir), tool("passthru", MultusBinDir)),
			Config:  v1.Config{Entrypoint: []string{"/thin_entrypoint"}},
		},
		{
			Name:       "pause",
			Repository: "registry.k8s.io/pause",
			Content:    pauseContent,
			// As upstream's image: the sandbox runs as nobody.
			Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		},
		{
			Name:       "busybox",
			Repository: "docker.io/library/busybox",
			// The guides say `image: busybox`.
			Tag:     "latest",
			Content: busyboxContent,
			Config:  v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=" + systemPath}},
		},
		{
			Name:       "nginx",
			Repository: "docker.io/library/nginx",
			Tag:        "latest",
			Content:    nginxContent,
			// CMD, not ENTRYPOINT, as upstream's image: a pod's args replace it.
			Config: v1.Config{
				Cmd:          []string{"nginx", "-g", "daemon off;"},
				Env:          []string{"PATH=" + systemPath},
				ExposedPorts: map[string]struct{}{"80/tcp": {}},
				StopSignal:   "SIGQUIT",
			},
		},
	}
}

// systemPath is the PATH of the images that have /sbin programs.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one binary copied into an image by name.
type File struct {
	// Name is the base name in the source directory and in the image.
	Name string
	// Dirs are the absolute directories of the image that hold it; a second directory gets a hard
	// link to the first, so the bytes are stored once.
	Dirs []string
	// FromTools takes the file from the pinned tools' directory (Options.PluginsDir) instead of
	// our binaries'.
	FromTools bool
	// Optional files are skipped when absent, but not all of them: a component needs at least one
	// of its optional files.
	Optional bool
}

// binaries is the content of an image of our static binaries: their version is ours.
func binaries(files ...File) func(Options) (Content, error) {
	return func(opts Options) (Content, error) {
		entries, err := collect(opts, files)
		if err != nil {
			return Content{}, err
		}
		return Content{Files: entries, Version: opts.Version, Summary: strings.Join(fileNames(files), " ")}, nil
	}
}

// multusContent is Multus' binaries from the tools directory, with the module's licence, versioned
// as the pinned module.
func multusContent(files ...File) func(Options) (Content, error) {
	return func(opts Options) (Content, error) {
		entries, err := collect(opts, files)
		if err != nil {
			return Content{}, err
		}
		m, err := opts.module(multusModule)
		if err != nil {
			return Content{}, err
		}
		license, err := os.ReadFile(filepath.Join(m.Dir, "LICENSE"))
		if err != nil {
			return Content{}, fmt.Errorf("multus licence: %w", err)
		}
		entries = append(entries, regular(path.Join(path.Dir(MultusBinDir), "LICENSE"), license))
		return Content{
			Files:   entries,
			Version: m.Version,
			Summary: fmt.Sprintf("%s of %s@%s", strings.Join(fileNames(files), " "), multusModule, m.Version),
		}, nil
	}
}

// collect reads files from their directories, each a static binary, and reports every missing
// one at once (a MissingError that Build names the component in).
func collect(opts Options, files []File) ([]tarFile, error) {
	type found struct {
		src  string
		file File
	}
	var (
		present []found
		missing []string
		hints   []string
	)
	for _, f := range files {
		dir, hint := opts.BinDir, "run `make build`"
		if f.FromTools {
			dir, hint = opts.PluginsDir, "run `make tools`"
		}
		src := filepath.Join(dir, f.Name)
		st, err := os.Stat(src)
		switch {
		case errors.Is(err, os.ErrNotExist) && f.Optional:
			continue
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, src)
			if !slices.Contains(hints, hint) {
				hints = append(hints, hint)
			}
			continue
		case err != nil:
			return nil, err
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file", src)
		}
		present = append(present, found{src, f})
	}
	if len(missing) > 0 {
		return nil, &MissingError{Paths: missing, Hint: strings.Join(hints, "; ")}
	}
	var optional []string
	anyOptional := false
	for _, f := range files {
		if f.Optional {
			optional = append(optional, f.Name)
		}
	}
	for _, p := range present {
		anyOptional = anyOptional || p.file.Optional
	}
	if len(optional) > 0 && !anyOptional {
		return nil, &MissingError{Paths: []string{"any of " + strings.Join(optional, ", ")}, Hint: "run `make tools`"}
	}
	var out []tarFile
	for _, p := range present {
		data, err := os.ReadFile(p.src)
		if err != nil {
			return nil, err
		}
		if err := checkStatic(data); err != nil {
			return nil, fmt.Errorf("%s: %w", p.src, err)
		}
		for i, dir := range p.file.Dirs {
			dst := path.Join(dir, p.file.Name)
			if i == 0 {
				out = append(out, executable(dst, data))
			} else {
				out = append(out, hardLink(dst, path.Join(p.file.Dirs[0], p.file.Name)))
			}
		}
	}
	return out, nil
}

func fileNames(files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}
