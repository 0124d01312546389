package ipam

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []Network
		wantErr string
	}{
		{name: "name", value: "macvlan-ens192", want: []Network{{Namespace: "app", Name: "macvlan-ens192"}}},
		{
			name:  "comma list",
			value: "kube-system/ipvlan-eth1, other/macvlan@net5 ,plain",
			want: []Network{
				{Namespace: "kube-system", Name: "ipvlan-eth1"},
				{Namespace: "other", Name: "macvlan", Interface: "net5"},
				{Namespace: "app", Name: "plain"},
			},
		},
		{
			name:  "json",
			value: `[{"name":"a","namespace":"kube-system","interface":"eth1"},{"name":"b"},{"name":"c","interfaceRequest":"old0"}]`,
			want: []Network{
				{Namespace: "kube-system", Name: "a", Interface: "eth1"},
				{Namespace: "app", Name: "b"},
				{Namespace: "app", Name: "c", Interface: "old0"},
			},
		},
		{name: "empty", value: " ", wantErr: "empty value"},
		{name: "empty element", value: "a,", wantErr: `element 1 "": name is required`},
		{name: "two slashes", value: "a/b/c", wantErr: "more than one '/'"},
		{name: "two ats", value: "a/b@c@d", wantErr: "more than one '@'"},
		{name: "upper case", value: "NS/name", wantErr: `"NS" is not a DNS-1123 label`},
		{name: "long ifname", value: "a@abcdefghijklmnop", wantErr: "longer than 15 bytes"},
		{name: "json without name", value: `[{"namespace":"x"}]`, wantErr: "element 0: name is required"},
		{name: "bad json", value: `[{"name":}]`, wantErr: "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetworks(tc.value, "app")
			checkErr(t, err, tc.wantErr, ErrInvalidAnnotation)
			if err != nil && !strings.Contains(err.Error(), v2beta1.AnnoMultusNetworks) {
				t.Errorf("error %q does not name the annotation", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDefaultNetwork(t *testing.T) {
	for value, want := range map[string]Network{
		"ipvlan-eth0":         {Namespace: "kube-system", Name: "ipvlan-eth0"},
		"default/ipvlan-ens5": {Namespace: "default", Name: "ipvlan-ens5"},
		`[{"name":"macvlan","namespace":"tenant"}]`: {Namespace: "tenant", Name: "macvlan"},
		`[{"name":"macvlan","interface":"eth0"}]`:   {Namespace: "kube-system", Name: "macvlan", Interface: "eth0"},
		"kube-system/ipvlan-eth0@eth0":              {Namespace: "kube-system", Name: "ipvlan-eth0", Interface: "eth0"},
	} {
		got, err := ParseDefaultNetwork(value, "kube-system")
		if err != nil {
			t.Errorf("%q: %v", value, err)
			continue
		}
		if got != want {
			t.Errorf("%q: got %+v, want %+v", value, got, want)
		}
	}
	_, err := ParseDefaultNetwork("a,b", "kube-system")
	checkErr(t, err, v2beta1.AnnoMultusDefaultNetwork+": want exactly one network, got 2", ErrInvalidAnnotation)
}

func TestResolveNAD(t *testing.T) {
	cfg := &Config{InstallNamespace: "kube-system", ClusterDefaultNAD: "ipvlan-eth0"}
	tests := []struct {
		name    string
		ifName  string
		anno    map[string]string
		cfg     *Config
		want    string
		wantErr string
	}{
		{name: "eth0 from cluster default", ifName: "eth0", want: "kube-system/ipvlan-eth0"},
		{name: "eth0 from cluster default with namespace", ifName: "eth0", cfg: &Config{InstallNamespace: "kube-system", ClusterDefaultNAD: "default/ipvlan-ens5"}, want: "default/ipvlan-ens5"},
		{name: "eth0 without any default", ifName: "eth0", cfg: &Config{InstallNamespace: "kube-system"}, want: ""},
		{name: "eth0 from annotation", ifName: "eth0", anno: map[string]string{v2beta1.AnnoMultusDefaultNetwork: "kube-system/ipvlan-eth1"}, want: "kube-system/ipvlan-eth1"},
		{name: "index 0 is eth0", ifName: "0", anno: map[string]string{v2beta1.AnnoMultusDefaultNetwork: "ipvlan-eth1"}, want: "kube-system/ipvlan-eth1"},
		{name: "bad default annotation", ifName: "eth0", anno: map[string]string{v2beta1.AnnoMultusDefaultNetwork: "A/b"}, wantErr: v2beta1.AnnoMultusDefaultNetwork},
		{name: "net1 is the first element", ifName: "net1", anno: map[string]string{v2beta1.AnnoMultusNetworks: "macvlan-a,kube-system/macvlan-b"}, want: "app/macvlan-a"},
		{name: "net2 is the second element", ifName: "net2", anno: map[string]string{v2beta1.AnnoMultusNetworks: "macvlan-a,kube-system/macvlan-b"}, want: "kube-system/macvlan-b"},
		{name: "numeric index", ifName: "2", anno: map[string]string{v2beta1.AnnoMultusNetworks: "macvlan-a,kube-system/macvlan-b"}, want: "kube-system/macvlan-b"},
		{name: "requested name wins", ifName: "eth1", anno: map[string]string{v2beta1.AnnoMultusNetworks: "macvlan-a@eth2,x/macvlan-b@eth1"}, want: "x/macvlan-b"},
		{name: "requested name hides net<i>", ifName: "net1", anno: map[string]string{v2beta1.AnnoMultusNetworks: "macvlan-a@eth2"}, want: ""},
		{name: "json element", ifName: "net1", anno: map[string]string{v2beta1.AnnoMultusNetworks: `[{"name":"sriov","namespace":"n"}]`}, want: "n/sriov"},
		{name: "no networks annotation", ifName: "net1", want: ""},
		{name: "bad networks annotation", ifName: "net1", anno: map[string]string{v2beta1.AnnoMultusNetworks: "a/b/c"}, wantErr: v2beta1.AnnoMultusNetworks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = tc.cfg
			}
			req := &Request{PodNamespace: "app", PodName: "p", IfName: tc.ifName, PodAnnotations: tc.anno}
			got, err := ResolveNAD(req, c)
			if tc.wantErr != "" {
				checkErr(t, err, tc.wantErr, ErrInvalidAnnotation)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// formatNetworks writes nets in the comma-separated text form.
func formatNetworks(nets []Network) string {
	parts := make([]string, len(nets))
	for i, n := range nets {
		parts[i] = n.Namespace + "/" + n.Name
		if n.Interface != "" {
			parts[i] += "@" + n.Interface
		}
	}
	return strings.Join(parts, ",")
}

func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{
		"macvlan-ens192", "kube-system/ipvlan-eth1@net5, b", `[{"name":"a","interface":"eth1"}]`,
		`[{"name":"a","interfaceRequest":"x"}]`, "a/b/c", "a@b@c", ",", `null`, `"a"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		const podNS = "app"
		got, err := ParseNetworks(value, podNS)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) || !strings.Contains(err.Error(), v2beta1.AnnoMultusNetworks) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation with the key", err)
			}
			return
		}
		for _, n := range got {
			if n.Name == "" || n.Namespace == "" {
				t.Fatalf("element without name or namespace: %+v", n)
			}
		}
		// A nil slice would marshal as null, which the text form reads as a
		// network named "null".
		b, err := json.Marshal(append([]Network{}, got...))
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseNetworks(string(b), podNS)
		if err != nil {
			t.Fatalf("re-parse of JSON %s: %v", b, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("JSON round trip (-first +second):\n%s", diff)
		}
		if strings.ContainsAny(value, `[{"`) {
			return // the JSON form does not restrict names to the text form's syntax
		}
		text := formatNetworks(got)
		again, err = ParseNetworks(text, podNS)
		if err != nil {
			t.Fatalf("re-parse of text %q: %v", text, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("text round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzResolveNAD(f *testing.F) {
	f.Add("eth0", "kube-system/ipvlan-eth1", "a,b@net9", "ipvlan-eth0")
	f.Add("net2", "", "a,b@net9", "")
	f.Add("net9", "", `[{"name":"x","interface":"net9"}]`, "")
	f.Add("1", "", "a,b", "a/b/c")
	f.Fuzz(func(t *testing.T, ifName, defaultNet, networks, clusterDefault string) {
		anno := map[string]string{}
		if defaultNet != "" {
			anno[v2beta1.AnnoMultusDefaultNetwork] = defaultNet
		}
		if networks != "" {
			anno[v2beta1.AnnoMultusNetworks] = networks
		}
		req := &Request{PodNamespace: "app", PodName: "p", IfName: ifName, PodAnnotations: anno}
		cfg := &Config{InstallNamespace: "kube-system", ClusterDefaultNAD: clusterDefault}
		nad, err := ResolveNAD(req, cfg)
		if err != nil {
			return
		}
		if nad != "" {
			ns, name, ok := strings.Cut(nad, "/")
			if !ok || ns == "" || name == "" {
				t.Fatalf("NAD %q is not namespace/name", nad)
			}
		}
	})
}
