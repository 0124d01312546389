package sandbox

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseNetworks(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []networkRef
		wantErr string
	}{
		{in: "", want: nil},
		{in: "macvlan-eth0", want: []networkRef{{name: "macvlan-eth0"}}},
		{in: "kube-system/a@data0, b", want: []networkRef{{namespace: "kube-system", name: "a", ifName: "data0"}, {name: "b"}}},
		{in: `[{"name":"a","namespace":"n","interface":"net5"}]`, want: []networkRef{{namespace: "n", name: "a", ifName: "net5"}}},
		{in: "a,,b", wantErr: "entry 1"},
		{in: "x/y/z", wantErr: "entry 0"},
		{in: `[{"namespace":"n"}]`, wantErr: "element 0 has no name"},
		{in: `[{"name":1}]`, wantErr: "JSON list"},
	} {
		got, err := parseNetworks(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("parseNetworks(%q) = %v, %v; want error containing %q", c.in, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseNetworks(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestAsConfList(t *testing.T) {
	single := `{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"eth0"}`
	got, err := asConfList([]byte(single))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion, Name string
		Plugins          []map[string]any
	}
	if err := json.Unmarshal(got, &list); err != nil || list.CNIVersion != "1.0.0" || list.Name != "n" || len(list.Plugins) != 1 || list.Plugins[0]["master"] != "eth0" {
		t.Errorf("asConfList(single) = %s (%v)", got, err)
	}
	already := `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan"}]}`
	if got, err := asConfList([]byte(already)); err != nil || string(got) != already {
		t.Errorf("asConfList(list) = %s, %v; want it unchanged", got, err)
	}
	for _, bad := range []string{"", "{", `{"cniVersion":"1.0.0","name":"n"}`, `{"cniVersion":"1.0.0","plugins":[]}`} {
		if _, err := asConfList([]byte(bad)); err == nil {
			t.Errorf("asConfList(%q) accepted", bad)
		}
	}
}

func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"a", "ns/a@eth1,b", `[{"name":"a"}]`, ",", "[", "a@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs, err := parseNetworks(s)
		if err != nil {
			return
		}
		for _, r := range refs {
			if r.name == "" {
				t.Fatalf("parseNetworks(%q) returned an entry without a name: %+v", s, refs)
			}
		}
	})
}
