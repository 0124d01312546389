package multusconf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func base() Options {
	return Options{
		Name:           "multus-cni-network",
		CNIVersion:     "1.0.0",
		Kubeconfig:     "/etc/cni/net.d/multus.d/multus.kubeconfig",
		ClusterNetwork: "macvlan-ens192",
	}
}

func with(f func(*Options)) Options {
	o := base()
	f(&o)
	return o
}

func TestThinConfig(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // the exact JSON
	}{
		{
			name: "minimal: NAD name in Multus' default namespace",
			opts: base(),
			want: `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",` +
				`"kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","clusterNetwork":"macvlan-ens192"}`,
		},
		{
			name: "namespace/name is split into multusNamespace",
			opts: with(func(o *Options) { o.ClusterNetwork = "kube-system/macvlan-ens192" }),
			want: `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",` +
				`"kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","clusterNetwork":"macvlan-ens192",` +
				`"multusNamespace":"kube-system"}`,
		},
		{
			name: "namespace/name agreeing with multusNamespace",
			opts: with(func(o *Options) { o.ClusterNetwork, o.MultusNamespace = "spiderpool/calico", "spiderpool" }),
			want: `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",` +
				`"kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","clusterNetwork":"calico",` +
				`"multusNamespace":"spiderpool"}`,
		},
		{
			name: "absolute path passes through",
			opts: with(func(o *Options) { o.ClusterNetwork = "/etc/cni/net.d/10-calico.conflist" }),
			want: `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",` +
				`"kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","clusterNetwork":"/etc/cni/net.d/10-calico.conflist"}`,
		},
		{
			name: "every option",
			opts: Options{
				Name:                   "multus-cni-network",
				CNIVersion:             "0.3.1",
				Kubeconfig:             "/etc/cni/net.d/multus.d/multus.kubeconfig",
				ClusterNetwork:         "kube-system/calico",
				DefaultNetworks:        []string{"sidecar", "/etc/cni/multus/net.d/99-extra.conf"},
				BinDir:                 "/opt/cni/bin",
				ConfDir:                "/etc/cni/multus/net.d",
				CacheDir:               "/var/lib/cni/multus",
				ReadinessIndicatorFile: "/run/calico/ready",
				NamespaceIsolation:     true,
				GlobalNamespaces:       []string{"default", "spiderpool"},
				Capabilities:           []string{"portMappings", "bandwidth"},
				LogFile:                "/var/log/multus.log",
				LogLevel:               "verbose",
			},
			want: `{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus",` +
				`"capabilities":{"bandwidth":true,"portMappings":true},` +
				`"kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","clusterNetwork":"calico",` +
				`"multusNamespace":"kube-system","defaultNetworks":["sidecar","/etc/cni/multus/net.d/99-extra.conf"],` +
				`"namespaceIsolation":true,"globalNamespaces":"default,spiderpool",` +
				`"binDir":"/opt/cni/bin","confDir":"/etc/cni/multus/net.d","cniDir":"/var/lib/cni/multus",` +
				`"readinessindicatorfile":"/run/calico/ready","logFile":"/var/log/multus.log","logLevel":"verbose"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ThinConfig(tc.opts)
			if err != nil {
				t.Fatalf("ThinConfig: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("ThinConfig:\n got %s\nwant %s", got, tc.want)
			}
			// The list form carries the same plugin, with name and cniVersion moved to the list.
			list, err := ThinConfList(tc.opts)
			if err != nil {
				t.Fatalf("ThinConfList: %v", err)
			}
			var conf map[string]any
			if err := json.Unmarshal(got, &conf); err != nil {
				t.Fatal(err)
			}
			wantList := map[string]any{"cniVersion": conf["cniVersion"], "name": conf["name"]}
			delete(conf, "cniVersion")
			delete(conf, "name")
			wantList["plugins"] = []any{conf}
			var gotList map[string]any
			if err := json.Unmarshal(list, &gotList); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotList, wantList) {
				t.Errorf("ThinConfList:\n got %s\nwant %v", list, wantList)
			}
			// libcni, which a runtime uses, accepts the list and would exec the multus binary.
			nc, err := libcni.NetworkConfFromBytes(list)
			if err != nil {
				t.Fatalf("libcni rejects the list: %v", err)
			}
			if nc.Name != tc.opts.Name || nc.CNIVersion != tc.opts.CNIVersion || len(nc.Plugins) != 1 ||
				nc.Plugins[0].Network.Type != PluginType {
				t.Errorf("libcni read name %q version %q plugins %d", nc.Name, nc.CNIVersion, len(nc.Plugins))
			}
		})
	}
}

func TestThinConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // part of the error
	}{
		{"no name", with(func(o *Options) { o.Name = "" }), `name ""`},
		{"name with space", with(func(o *Options) { o.Name = "a b" }), `name "a b"`},
		{"unknown cniVersion", with(func(o *Options) { o.CNIVersion = "2.0.0" }), `cniVersion "2.0.0"`},
		{"no kubeconfig", with(func(o *Options) { o.Kubeconfig = "" }), `kubeconfig ""`},
		{"relative kubeconfig", with(func(o *Options) { o.Kubeconfig = "kubeconfig" }), `kubeconfig "kubeconfig"`},
		{"no cluster network", with(func(o *Options) { o.ClusterNetwork = "" }), "clusterNetwork: empty"},
		{"relative path cluster network", with(func(o *Options) { o.ClusterNetwork = "net.d/10-calico.conf" }), "clusterNetwork"},
		{"three-part cluster network", with(func(o *Options) { o.ClusterNetwork = "a/b/c" }), "clusterNetwork"},
		{"uppercase NAD namespace", with(func(o *Options) { o.ClusterNetwork = "Kube-System/calico" }), "clusterNetwork"},
		{"unclean path", with(func(o *Options) { o.ClusterNetwork = "/etc/cni/../cni/net.d" }), "not a clean path"},
		{"namespaces disagree", with(func(o *Options) { o.ClusterNetwork, o.MultusNamespace = "a/calico", "b" }), `multusNamespace is "b"`},
		{"default network with namespace", with(func(o *Options) { o.DefaultNetworks = []string{"ns/extra"} }), "defaultNetworks"},
		{"relative cache dir", with(func(o *Options) { o.CacheDir = "var/lib/cni/multus" }), "cniDir"},
		{"relative bin dir", with(func(o *Options) { o.BinDir = "bin" }), "binDir"},
		{"relative log file", with(func(o *Options) { o.LogFile = "multus.log" }), "logFile"},
		{"unknown log level", with(func(o *Options) { o.LogLevel = "info" }), `logLevel "info"`},
		{"global namespaces without isolation", with(func(o *Options) { o.GlobalNamespaces = []string{"default"} }), "no effect"},
		{"empty capability", with(func(o *Options) { o.Capabilities = []string{""} }), "capabilities"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ThinConfig(tc.opts)
			if err == nil {
				t.Fatalf("ThinConfig accepted it: %s", got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if _, err := ThinConfList(tc.opts); err == nil {
				t.Errorf("ThinConfList accepted it")
			}
		})
	}
}

// Every error is reported at once, so a bad configuration is fixed in one round.
func TestThinConfigReportsAllErrors(t *testing.T) {
	_, err := ThinConfig(Options{})
	if err == nil {
		t.Fatal("empty options accepted")
	}
	for _, key := range []string{"name", "cniVersion", "kubeconfig", "clusterNetwork"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not mention %s: %v", key, err)
		}
	}
}

// The output is stable: the same options give the same bytes (a node agent can compare the file
// it would write with the one on disk).
func TestThinConfigDeterministic(t *testing.T) {
	o := with(func(o *Options) { o.Capabilities = []string{"portMappings", "bandwidth", "ips", "mac"} })
	first, err := ThinConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := ThinConfig(o)
		if !bytes.Equal(first, again) {
			t.Fatalf("output changed:\n%s\n%s", first, again)
		}
	}
}
