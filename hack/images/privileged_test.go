package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// extract unpacks img's layer into a new directory, as a container runtime would.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				err = os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
			}
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, os.FileMode(h.Mode&0o777))
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(root, h.Linkname), p)
		default:
			err = fmt.Errorf("entry type %c", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("extract %s: %v", h.Name, err)
		}
	}
}

func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// inRoot runs argv inside root (chroot), with the image's environment and env, as root, and
// returns its combined output.
func inRoot(t *testing.T, root string, img v1.Image, env []string, argv ...string) (string, error) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = append(append([]string{}, cf.Config.Env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// The programs of the images start inside their own file system: every library, link, account
// and directory they need is in the image.
func TestPrivilegedImagesRun(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chroot into the extracted images")
	}
	repoTools := filepath.Join("..", "..", ".tools", "bin")
	tests := []struct {
		component string
		// prepare may skip, and sets up what the runtime would (mounts, devices).
		prepare func(t *testing.T, opts *Options)
		setup   func(t *testing.T, root string)
		env     []string
		argv    []string
		want    []string // in the output
		check   func(t *testing.T, root string)
	}{
		{
			component: "pause",
			// The real pause.c of the pinned Kubernetes, not the stand-in.
			prepare: func(t *testing.T, opts *Options) {
				delete(opts.Modules, kubernetesModule)
				opts.ToolsDir = filepath.Join("..", "tools")
				if _, err := opts.module(kubernetesModule); err != nil {
					t.Skipf("the pinned Kubernetes source is not available: %v", err)
				}
			},
			argv: []string{"/pause", "-v"},
			want: []string{"pause.c v3.10.2-v1.37.2"},
		},
		{
			component: "busybox",
			argv:      []string{"/bin/sh", "-c", "echo ok; sleep 0; ls /bin/ping /bin/wget /bin/nslookup; id -un; test -w /tmp && echo tmp writable"},
			want:      []string{"ok\n", "/bin/ping", "root\n", "tmp writable"},
		},
		{
			component: "nginx",
			// The runtime gives a container /dev; plain files stand in for the log targets.
			setup: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
					t.Fatal(err)
				}
				for _, n := range []string{"stdout", "stderr", "null"} {
					writeFile(t, filepath.Join(root, "dev", n), "")
				}
			},
			argv: []string{"/usr/sbin/nginx", "-t"},
			want: []string{"syntax is ok", "test is successful"},
		},
		{
			component: "multus-cni",
			// Multus' real binaries from `make tools`.
			prepare: func(t *testing.T, opts *Options) {
				for _, n := range []string{"install_multus", "thin_entrypoint", "multus", "passthru"} {
					if _, err := os.Stat(filepath.Join(repoTools, n)); err != nil {
						t.Skipf("run `hack/build-tools.sh @cluster` first: %v", err)
					}
				}
				opts.PluginsDir = repoTools
				delete(opts.Modules, multusModule)
				opts.ToolsDir = filepath.Join("..", "tools")
			},
			setup: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "host", "opt", "cni", "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			// What the chart's init container runs.
			argv: []string{"/install_multus", "--type", "thin"},
			want: []string{"multus multus copy succeeded", "passthru"},
			check: func(t *testing.T, root string) {
				for _, n := range []string{"multus", "passthru"} {
					if st, err := os.Stat(filepath.Join(root, "host", "opt", "cni", "bin", n)); err != nil || st.Mode()&0o111 == 0 {
						t.Errorf("%s not installed executable into the mounted CNI directory (%v)", n, err)
					}
				}
			},
		},
		{
			component: "spiderpool-plugins",
			// The real installer; stand-in plugins (they are only copied).
			prepare: func(t *testing.T, opts *Options) {
				installer := filepath.Join(opts.BinDir, "spiderpool-plugins-install")
				if err := os.Remove(installer); err != nil { // the stand-in
					t.Fatal(err)
				}
				build := exec.Command("go", "build", "-trimpath", "-o", installer, "../../cmd/spiderpool-plugins-install")
				build.Env = append(os.Environ(), "CGO_ENABLED=0")
				if b, err := build.CombinedOutput(); err != nil {
					t.Fatalf("go build: %v\n%s", err, b)
				}
				writeFile(t, filepath.Join(opts.PluginsDir, "vlan"), "stand-in for vlan")
			},
			setup: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "host", "opt", "cni", "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			// The chart's environment with plugins.installVlanCNI=false.
			env:  []string{"INSTALL_CNI_PLUGINS=true", "INSTALL_OVS_PLUGIN=true", "INSTALL_VLAN_PLUGIN=false"},
			argv: []string{"/usr/bin/spiderpool-plugins-install"},
			want: []string{"INSTALL_OVS_PLUGIN (ovs) is set, but this image does not ship that plugin", "installed host-local, ipvlan, macvlan into /host/opt/cni/bin"},
			check: func(t *testing.T, root string) {
				if _, err := os.Stat(filepath.Join(root, "host", "opt", "cni", "bin", "vlan")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("vlan installed with INSTALL_VLAN_PLUGIN=false (%v)", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.component, func(t *testing.T) {
			needPrerequisites(t, tc.component)
			opts := inputs(t)
			if tc.prepare != nil {
				tc.prepare(t, &opts)
			}
			img, err := Build(component(t, tc.component), opts)
			if err != nil {
				t.Fatal(err)
			}
			root := extract(t, img)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			out, err := inRoot(t, root, img, tc.env, tc.argv...)
			if err != nil {
				t.Fatalf("%s in the image: %v\n%s", strings.Join(tc.argv, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.check != nil {
				tc.check(t, root)
			}
		})
	}
}
