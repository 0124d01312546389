package ctl

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, []string{"NAME", "TOTAL", "NODE"}, [][]string{{"pool-a", "10", ""}, {"b", "1000", "node-1"}}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME    TOTAL  NODE\n" +
		"pool-a  10     -\n" +
		"b       1000   node-1\n"
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
}

func TestPoolUsage(t *testing.T) {
	a := testPool(t, "a", "10.1.0.0/24", []string{"10.1.0.10-10.1.0.20"}, rec{"10.1.0.10": "ns/p1@u1", "10.1.0.11": "ns/p2@u2"})
	a.Spec.ExcludeIPs = []string{"10.1.0.20"}
	n := testPool(t, "n", "10.2.0.0/24", []string{"10.2.0.1-10.2.0.4"}, rec{"10.2.0.1": "ns/p3@u3", "10.2.0.2": "ns/p4@u4", "10.2.0.3": "ns/p5@u5"})
	n.Spec.NodeName = []string{"node-1", "node-2", "node-3"}
	n.Spec.Disable = ptr.To(true)
	ep3 := testEndpoint("ns", "p3", "u3", [3]string{"eth0", "10.2.0.1/24", "n"}) // node-1
	p4 := testPod("ns", "p4", "u4", corev1.PodRunning)                           // no endpoint: the pod's node
	p4.Spec.NodeName = "node-2"
	snap := &Snapshot{Pools: []v2beta1.SpiderIPPool{n, a}, Endpoints: []v2beta1.SpiderEndpoint{ep3}, Pods: []corev1.Pod{p4}}

	tests := []struct {
		name  string
		pools []string
		want  []PoolUsage
		rows  [][]string
		err   string
	}{
		{
			name: "all pools",
			want: []PoolUsage{
				{Name: "a", Version: 4, Subnet: "10.1.0.0/24", Total: 10, Allocated: 2, Free: 8},
				{Name: "n", Version: 4, Subnet: "10.2.0.0/24", Total: 4, Allocated: 3, Free: 1, Disabled: true, Nodes: []NodeUsage{
					{Node: unknownNode, Allocated: 1}, {Node: "node-1", Allocated: 1}, {Node: "node-2", Allocated: 1}, {Node: "node-3", Allocated: 0}}},
			},
			rows: [][]string{
				{"a", "4", "10.1.0.0/24", "10", "2", "8", "false", ""},
				{"n", "4", "10.2.0.0/24", "4", "3", "1", "true", "(unknown),node-1,node-2,node-3"},
				{"  n", "", "", "", "1", "", "", "(unknown)"},
				{"  n", "", "", "", "1", "", "", "node-1"},
				{"  n", "", "", "", "1", "", "", "node-2"},
				{"  n", "", "", "", "0", "", "", "node-3"},
			},
		},
		{
			name:  "one pool",
			pools: []string{"a"},
			want:  []PoolUsage{{Name: "a", Version: 4, Subnet: "10.1.0.0/24", Total: 10, Allocated: 2, Free: 8}},
			rows:  [][]string{{"a", "4", "10.1.0.0/24", "10", "2", "8", "false", ""}},
		},
		{name: "unknown pool", pools: []string{"a", "zz"}, err: `SpiderIPPool "zz" not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := poolUsage(snap, tc.pools)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("usage (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.rows, usageRows(got)); d != "" {
				t.Errorf("rows (-want +got):\n%s", d)
			}
		})
	}
}

func TestRemoveAddr(t *testing.T) {
	mk := func() *v2beta1.SpiderEndpoint {
		ep := testEndpoint("ns", "p", "u", [3]string{"eth0", "10.1.0.10/24", "a"}, [3]string{"net1", "10.2.0.10/24", "b"})
		ep.Status.Current.IPs[1].IPv6, ep.Status.Current.IPs[1].IPv6Pool = ptr.To("fd00::10/64"), ptr.To("v6")
		return &ep
	}
	tests := []struct {
		addr    string
		changed bool
		nics    []string
	}{
		{"10.1.0.10", true, []string{"net1"}},         // eth0 left without address goes
		{"10.2.0.10", true, []string{"eth0", "net1"}}, // net1 keeps its IPv6
		{"fd00::10", true, []string{"eth0", "net1"}},
		{"10.9.9.9", false, []string{"eth0", "net1"}},
	}
	for _, tc := range tests {
		ep := mk()
		changed := removeAddr(ep, netip.MustParseAddr(tc.addr))
		var nics []string
		for _, d := range ep.Status.Current.IPs {
			nics = append(nics, d.NIC)
			if a, err := parseEndpointAddr(deref(d.IPv4)); err == nil && a.String() == tc.addr {
				t.Errorf("%s: still listed on %s", tc.addr, d.NIC)
			}
		}
		if changed != tc.changed || !cmp.Equal(nics, tc.nics) {
			t.Errorf("removeAddr(%s) = %v leaving %v, want %v leaving %v", tc.addr, changed, nics, tc.changed, tc.nics)
		}
	}
}

func TestIPFromArgs(t *testing.T) {
	tests := []struct {
		args []string
		flag string
		want string
		err  string
	}{
		{args: []string{"10.1.0.1"}, want: "10.1.0.1"},
		{flag: "fd00::1", want: "fd00::1"},
		{args: []string{"10.1.0.1"}, flag: "10.1.0.1", want: "10.1.0.1"},
		{args: []string{"10.1.0.1"}, flag: "10.1.0.2", err: "two different IPs"},
		{err: "an IP is required"},
		{args: []string{"10.1.0.300"}, err: `IP "10.1.0.300"`},
		{args: []string{"a", "b"}, err: "want one IP"},
	}
	for _, tc := range tests {
		got, err := ipFromArgs(tc.args, tc.flag)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ipFromArgs(%v, %q) err = %v, want %q", tc.args, tc.flag, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ipFromArgs(%v, %q) = %v, %v; want %s", tc.args, tc.flag, got, err, tc.want)
		}
	}
}

func TestGCCommand(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		wantExit int
		wantOut  string
		wantErr  string
	}{
		{name: "triggered", code: 200, body: `{"triggered":true,"message":"full IP GC scan triggered"}`, wantOut: "full IP GC scan triggered"},
		{name: "follower", code: 503, body: `{"error":"this spiderpool-controller replica is not the leader"}`, wantExit: ExitFailure,
			wantErr: "503 Service Unavailable: this spiderpool-controller replica is not the leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var method, path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				method, path = r.Method, r.URL.Path
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Options{Out: &out, Err: &errOut}, "gc", "--address", strings.TrimPrefix(srv.URL, "http://"))
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantExit, errOut.String())
			}
			if method != http.MethodPost || path != "/v1/ipam/gc_ips" {
				t.Errorf("request %s %s, want POST /v1/ipam/gc_ips", method, path)
			}
			if !strings.Contains(out.String(), tc.wantOut) || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), tc.wantOut, tc.wantErr)
			}
		})
	}
}
