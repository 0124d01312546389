package initjob

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindClusterCNIConfig(t *testing.T) {
	const calico = `{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [{"type": "calico"}, {"type": "portmap"}]
}`
	tests := []struct {
		name     string
		files    map[string]string
		wantFile string // "" means none found
		wantName string
		wantConf string
		wantErr  string
	}{
		{name: "empty dir", files: map[string]string{}},
		{name: "only other files", files: map[string]string{"README": "x", "calico-kubeconfig": "y", "sub.conf/": ""}},
		{name: "lexical order wins", files: map[string]string{
			"20-flannel.conflist": `{"name":"cbr0","plugins":[{"type":"flannel"}]}`,
			"10-calico.conflist":  calico,
			"99-loopback.conf":    `{"name":"lo","type":"loopback"}`,
		}, wantFile: "10-calico.conflist", wantName: "k8s-pod-network",
			wantConf: `{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"},{"type":"portmap"}]}`},
		{name: "multus's own file is skipped", files: map[string]string{
			"00-multus.conf":     `{"name":"multus-cni-network","type":"multus"}`,
			"05-cilium.conflist": `{"name":"cilium","plugins":[{"type":"cilium-cni"}]}`,
		}, wantFile: "05-cilium.conflist", wantName: "cilium"},
		{name: "any multus configuration is skipped", files: map[string]string{
			"00-multus.conflist": `{"name":"multus-cni-network","plugins":[{"type":"multus-shim"}]}`,
			"10-macvlan.conf":    `{"name":"macvlan-ens192","type":"macvlan"}`,
		}, wantFile: "10-macvlan.conf", wantName: "macvlan-ens192", wantConf: `{"name":"macvlan-ens192","type":"macvlan"}`},
		{name: "json extension", files: map[string]string{"a.json": `{"name":"net-a","type":"bridge"}`}, wantFile: "a.json", wantName: "net-a"},
		{name: "broken first file is an error naming it", files: map[string]string{
			"10-bad.conf": `{"name":`, "20-good.conf": `{"name":"good","type":"bridge"}`,
		}, wantErr: "10-bad.conf"},
		{name: "no name", files: map[string]string{"10-x.conf": `{"type":"bridge"}`}, wantErr: `10-x.conf: no network "name"`},
		{name: "name unfit for an object", files: map[string]string{"10-x.conf": `{"name":"My_Net","type":"bridge"}`}, wantErr: `"My_Net"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			got, err := FindClusterCNIConfig(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFile == "" {
				if got != nil {
					t.Fatalf("found %+v, want nothing", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("found nothing, want %s", tc.wantFile)
			}
			if got.File != filepath.Join(dir, tc.wantFile) || got.Name != tc.wantName {
				t.Errorf("found %s (network %q), want %s (network %q)", got.File, got.Name, tc.wantFile, tc.wantName)
			}
			if tc.wantConf != "" && got.Config != tc.wantConf {
				t.Errorf("config = %s, want %s", got.Config, tc.wantConf)
			}
		})
	}
}

func TestFindClusterCNIConfigMissingDir(t *testing.T) {
	got, err := FindClusterCNIConfig(filepath.Join(t.TempDir(), "absent"))
	if err != nil || got != nil {
		t.Fatalf("got %+v, %v; want nothing and no error", got, err)
	}
}
