package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/spiderpool-go/spiderpool/test/chart"
)

// readConf runs `spiderpool-agent multus-config args... --out=<temp>` and returns the
// configuration it wrote and what it printed.
func readConf(t *testing.T, args []string) (map[string]any, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "00-multus.conf")
	var stdout bytes.Buffer
	if err := multusConfig(append(args, "--out="+out), &stdout); err != nil {
		t.Fatalf("multus-config %v: %v", args, err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatalf("%s is not JSON: %v", data, err)
	}
	return conf, stdout.String()
}

// TestMultusConfig runs the subcommand on the guides' defaultCniCRName values. Multus must get
// the NetworkAttachmentDefinition's name alone as clusterNetwork and its namespace as
// multusNamespace: it reads any clusterNetwork with a "/" as a file path, so the chart's former
// "kube-system/ipvlan-eth0" failed every pod's ADD.
func TestMultusConfig(t *testing.T) {
	for _, tc := range []struct {
		name, raw           string
		wantNetwork, wantNS string
	}{
		{"public-cloud guide: bare name in the release namespace", "ipvlan-eth0", "ipvlan-eth0", "kube-system"},
		{"AWS guide: namespace/name", "default/ipvlan-ens5", "ipvlan-ens5", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, stdout := readConf(t, []string{"--cluster-network=" + tc.raw, "--namespace=kube-system",
				"--multus-log-level=debug", "--multus-log-file=/var/log/multus.log"})
			if conf["clusterNetwork"] != tc.wantNetwork || conf["multusNamespace"] != tc.wantNS {
				t.Errorf("clusterNetwork %v in multusNamespace %v, want %s in %s", conf["clusterNetwork"], conf["multusNamespace"], tc.wantNetwork, tc.wantNS)
			}
			if conf["type"] != "multus" || conf["kubeconfig"] != "/etc/cni/net.d/multus.d/multus.kubeconfig" ||
				conf["confDir"] != "/etc/cni/net.d" || conf["binDir"] != "/opt/cni/bin" ||
				conf["logLevel"] != "debug" || conf["logFile"] != "/var/log/multus.log" {
				t.Errorf("configuration %v", conf)
			}
			if !strings.Contains(stdout, `clusterNetwork "`+tc.wantNetwork+`" in multusNamespace "`+tc.wantNS+`"`) {
				t.Errorf("stdout %q does not say what was written", stdout)
			}
		})
	}

	// The namespace may come from the pod's environment, as the agent's own does.
	t.Setenv("SPIDERPOOL_NAMESPACE", "spiderpool")
	if conf, _ := readConf(t, []string{"--cluster-network=ipvlan-eth0"}); conf["multusNamespace"] != "spiderpool" {
		t.Errorf("multusNamespace %v, want spiderpool from SPIDERPOOL_NAMESPACE", conf["multusNamespace"])
	}
}

func TestMultusConfigRejects(t *testing.T) {
	dir := t.TempDir()
	out := "--out=" + filepath.Join(dir, "00-multus.conf")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no output file", []string{"--cluster-network=ipvlan-eth0", "--namespace=kube-system"}, "--out is required"},
		{"no cluster network", []string{"--namespace=kube-system", out}, "defaultCniCRName: cluster network: empty"},
		{"three parts", []string{"--cluster-network=a/b/c", "--namespace=kube-system", out}, `cluster network "a/b/c"`},
		{"no namespace for a bare name", []string{"--cluster-network=ipvlan-eth0", "--namespace=", out}, `namespace ""`},
		{"unknown Multus log level", []string{"--cluster-network=ipvlan-eth0", "--namespace=kube-system", "--multus-log-level=info", out}, `logLevel "info"`},
		{"stray argument", []string{"--cluster-network=ipvlan-eth0", out, "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := multusConfig(tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused configuration left %d files behind", len(entries))
	}
}

// TestMultusConfigFromChart renders the guides' install lines and runs this subcommand with the
// arguments the chart gives the Multus DaemonSet's init container, so that the chart and the
// code that resolves its values are tested together.
func TestMultusConfigFromChart(t *testing.T) {
	helm, dir := chart.Require(t)
	want := map[string][2]string{ // guide line -> clusterNetwork, multusNamespace
		"alibaba":          {"ipvlan-eth0", chart.Namespace},
		"alibaba-optional": {"ipvlan-eth0", chart.Namespace},
		"aws":              {"ipvlan-ens5", "default"},
	}
	for _, g := range chart.GuideLines {
		t.Run(g.Name, func(t *testing.T) {
			raw, err := chart.Template(helm, dir, g.Args...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := chart.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			found := false
			for _, o := range objs {
				if o.GetKind() != "DaemonSet" || o.GetName() != "spiderpool-multus" {
					continue
				}
				var ds appsv1.DaemonSet
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
					t.Fatal(err)
				}
				for _, c := range ds.Spec.Template.Spec.InitContainers {
					if c.Name == "multus-config" {
						found, args = true, c.Args
					}
				}
			}
			w, expected := want[g.Name]
			if found != expected {
				t.Fatalf("multus-config init container rendered: %v, want %v", found, expected)
			}
			if !found {
				return
			}
			// Everything as rendered, but the file goes to a temporary directory.
			var kept []string
			for _, a := range args {
				if !strings.HasPrefix(a, "--out=") {
					kept = append(kept, a)
				}
			}
			conf, _ := readConf(t, kept)
			if conf["clusterNetwork"] != w[0] || conf["multusNamespace"] != w[1] {
				t.Errorf("from the chart's arguments %v: clusterNetwork %v in multusNamespace %v, want %s in %s",
					args, conf["clusterNetwork"], conf["multusNamespace"], w[0], w[1])
			}
		})
	}
}
