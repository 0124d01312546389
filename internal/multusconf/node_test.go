package multusconf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// config is what `spiderpool-agent multus-config` writes for c.
func config(c NodeConf) ([]byte, error) {
	o, err := c.Options()
	if err != nil {
		return nil, err
	}
	return ThinConfig(o)
}

func TestResolveClusterNetwork(t *testing.T) {
	tests := []struct {
		raw, defaultNS string
		wantNS, wantN  string
		wantErr        string
	}{
		// The public-cloud guide: a bare name lives in the release namespace.
		{raw: "ipvlan-eth0", defaultNS: "kube-system", wantNS: "kube-system", wantN: "ipvlan-eth0"},
		{raw: "ipvlan-eth0", defaultNS: "spiderpool", wantNS: "spiderpool", wantN: "ipvlan-eth0"},
		// The AWS guide: the namespace given wins over the release namespace.
		{raw: "default/ipvlan-ens5", defaultNS: "kube-system", wantNS: "default", wantN: "ipvlan-ens5"},
		{raw: "", defaultNS: "kube-system", wantErr: "empty"},
		{raw: "a/b/c", defaultNS: "kube-system", wantErr: `name "b/c"`},
		// A path is not a CR name (Multus would take it as a file, but the chart means a NAD).
		{raw: "/etc/cni/net.d/10-calico.conf", defaultNS: "kube-system", wantErr: `name "etc/cni/net.d/10-calico.conf"`},
		{raw: "Kube-System/calico", defaultNS: "kube-system", wantErr: `namespace "Kube-System"`},
		{raw: "ipvlan_eth0", defaultNS: "kube-system", wantErr: `name "ipvlan_eth0"`},
		{raw: strings.Repeat("a", 64), defaultNS: "kube-system", wantErr: "must be no more than 63"},
		{raw: "ipvlan-eth0", defaultNS: "", wantErr: `namespace ""`},
	}
	for _, tc := range tests {
		t.Run(tc.raw+" in "+tc.defaultNS, func(t *testing.T) {
			ns, n, err := ResolveClusterNetwork(tc.raw, tc.defaultNS)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q %q, %v; want an error containing %q", ns, n, err, tc.wantErr)
				}
				return
			}
			if err != nil || ns != tc.wantNS || n != tc.wantN {
				t.Fatalf("got %q %q, %v; want %q %q", ns, n, err, tc.wantNS, tc.wantN)
			}
		})
	}
}

// TestNodeConf checks the 00-multus.conf of the guides' install lines: the cluster network's
// name alone in clusterNetwork and its namespace in multusNamespace, never "namespace/name",
// which Multus would read as a file path.
func TestNodeConf(t *testing.T) {
	conf := func(raw string) NodeConf {
		return NodeConf{
			ClusterNetwork: raw, Namespace: "kube-system",
			Kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig",
			ConfDir:    "/etc/cni/net.d", BinDir: "/opt/cni/bin",
			LogLevel: "debug", LogFile: "/var/log/multus.log",
		}
	}
	for _, tc := range []struct {
		raw, wantNetwork, wantNS string
	}{
		{"ipvlan-eth0", "ipvlan-eth0", "kube-system"},
		{"default/ipvlan-ens5", "ipvlan-ens5", "default"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			data, err := config(conf(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
				"capabilities":   map[string]any{"portMappings": true, "bandwidth": true},
				"kubeconfig":     "/etc/cni/net.d/multus.d/multus.kubeconfig",
				"clusterNetwork": tc.wantNetwork, "multusNamespace": tc.wantNS,
				"confDir": "/etc/cni/net.d", "binDir": "/opt/cni/bin",
				"logLevel": "debug", "logFile": "/var/log/multus.log",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("00-multus.conf (-want +got):\n%s", diff)
			}
		})
	}

	for _, tc := range []struct {
		name string
		c    NodeConf
		want string
	}{
		{"three parts", func() NodeConf { c := conf("a/b/c"); return c }(), `multus.multusCNI.defaultCniCRName: cluster network "a/b/c"`},
		{"bad log level", func() NodeConf { c := conf("ipvlan-eth0"); c.LogLevel = "info"; return c }(), `logLevel "info"`},
		{"relative kubeconfig", func() NodeConf { c := conf("ipvlan-eth0"); c.Kubeconfig = "multus.kubeconfig"; return c }(), `kubeconfig "multus.kubeconfig"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if data, err := config(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %s, %v; want an error containing %q", data, err, tc.want)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "00-multus.conf")
	for _, content := range []string{`{"a":1}`, `{"b":2}`} {
		if err := WriteFile(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644", fi.Mode().Perm())
		}
	}
	// Nothing but the file is left in the directory: the temporary file was renamed.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x.conf"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
