package spiderpool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/sriov"
)

// allVersions are the CNI versions every ADD case runs with.
var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

const (
	testPodArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=infra1;K8S_POD_UID=uid-1"
	testNetns   = "/var/run/netns/pod1"
)

// env is a plugin wired to a fake agent, with stdout captured. Its master lookup answers with
// testMaster, or with masterErr when set, and records what it was asked ("netns ifName").
type env struct {
	agent       *clienttest.Server
	logPath     string
	stdout      *bytes.Buffer
	p           *plugin
	masterErr   error
	masterAsked []string
}

// testMaster is the master the env's lookup finds: a PF with an IPv4, an IPv6 and a link-local
// address.
var testMaster = sriov.Master{Name: "ens1f0", Addrs: []netip.Prefix{
	netip.MustParsePrefix("10.20.0.5/24"), netip.MustParsePrefix("fd20::5/64"), netip.MustParsePrefix("fe80::1/64"),
}}

func newEnv(t *testing.T) *env {
	t.Helper()
	// The plugin's log directory is the test's, never the host's /var/log/spidernet.
	logDir := t.TempDir()
	t.Setenv(cnilog.DirEnv, logDir)
	e := &env{
		agent:   clienttest.NewServer(t),
		logPath: filepath.Join(logDir, "log", "spiderpool.log"),
		stdout:  &bytes.Buffer{},
	}
	e.p = &plugin{stdout: e.stdout, newAgent: func(s string) agent { return client.New(s) },
		master: func(netns, ifName string) (*sriov.Master, error) {
			e.masterAsked = append(e.masterAsked, netns+" "+ifName)
			if e.masterErr != nil {
				return nil, e.masterErr
			}
			return &testMaster, nil
		}}
	return e
}

// conf returns a network configuration pointing at the fake agent; extra overrides ipam keys
// (a nil value deletes the key).
func (e *env) conf(cniVersion string, extra map[string]any) []byte {
	ipam := map[string]any{
		"type":                  "spiderpool",
		"ipam_unix_socket_path": e.agent.SocketPath,
		"log_file_path":         e.logPath,
	}
	maps.Copy(ipam, extra)
	for k, v := range ipam {
		if v == nil {
			delete(ipam, k)
		}
	}
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": "macvlan-conf", "type": "macvlan", "ipam": ipam})
	if err != nil {
		panic(err)
	}
	return b
}

func cmdArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "container-1",
		Netns:       testNetns,
		IfName:      "eth0",
		Args:        testPodArgs,
		Path:        "/opt/cni/bin",
		StdinData:   stdin,
	}
}

// run invokes one command the way skel would and returns its error as the runtime sees it.
func (e *env) run(command string, args *skel.CmdArgs) error {
	f := e.p.funcs()
	switch command {
	case "ADD":
		return f.Add(args)
	case "DEL":
		return f.Del(args)
	case "CHECK":
		return f.Check(args)
	case "STATUS":
		return f.Status(args)
	}
	panic("unknown command " + command)
}

// cniError asserts err is a *types.Error with code and a message containing every want.
func cniError(t *testing.T, err error, code uint, want ...string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *types.Error", err, err)
	}
	if e.Code != code {
		t.Errorf("error code = %d, want %d (%v)", e.Code, code, e)
	}
	for _, s := range want {
		if !strings.Contains(e.Msg, s) {
			t.Errorf("error message %q does not contain %q", e.Msg, s)
		}
	}
}

// Flattened view of a result, the same for every CNI version.
type (
	gotIP struct {
		Version   string
		Address   string
		Gateway   string
		Interface *int
	}
	gotRoute  struct{ Dst, GW string }
	gotResult struct {
		CNIVersion string
		Interfaces int
		IPs        []gotIP
		Routes     []gotRoute
		DNS        types.DNS
	}
)

// parseResult reads stdout with libcni's result types of the requested version and checks that
// nothing but one JSON document was written.
func parseResult(t *testing.T, cniVersion string, stdout []byte) gotResult {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(stdout))
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout carries more than the result: %q", stdout)
	}

	// NewResultFromResult rewrites cniVersion to the type's own, so the version comes from the JSON.
	got := gotResult{CNIVersion: fmt.Sprint(raw["cniVersion"])}
	routes := func(rs []*types.Route) {
		for _, r := range rs {
			gw := ""
			if r.GW != nil {
				gw = r.GW.String()
			}
			got.Routes = append(got.Routes, gotRoute{Dst: r.Dst.String(), GW: gw})
		}
	}
	gwString := func(ip net.IP) string {
		if ip == nil {
			return ""
		}
		return ip.String()
	}
	switch cniVersion {
	case "0.3.0", "0.3.1", "0.4.0":
		parsed, err := types040.NewResult(stdout)
		if err != nil {
			t.Fatalf("types040.NewResult: %v\n%s", err, stdout)
		}
		r, err := types040.NewResultFromResult(parsed)
		if err != nil {
			t.Fatalf("types040.NewResultFromResult: %v", err)
		}
		got.Interfaces, got.DNS = len(r.Interfaces), r.DNS
		for _, ip := range r.IPs {
			got.IPs = append(got.IPs, gotIP{Version: ip.Version, Address: ip.Address.String(), Gateway: gwString(ip.Gateway), Interface: ip.Interface})
		}
		routes(r.Routes)
	default:
		parsed, err := types100.NewResult(stdout)
		if err != nil {
			t.Fatalf("types100.NewResult: %v\n%s", err, stdout)
		}
		r, err := types100.NewResultFromResult(parsed)
		if err != nil {
			t.Fatalf("types100.NewResultFromResult: %v", err)
		}
		got.Interfaces, got.DNS = len(r.Interfaces), r.DNS
		for _, ip := range r.IPs {
			v := "6"
			if ip.Address.IP.To4() != nil {
				v = "4"
			}
			got.IPs = append(got.IPs, gotIP{Version: v, Address: ip.Address.String(), Gateway: gwString(ip.Gateway), Interface: ip.Interface})
		}
		routes(r.Routes)
	}
	return got
}

func TestAdd(t *testing.T) {
	dns := v1.DNS{Nameservers: []string{"10.233.0.3"}, Domain: "cluster.local", Search: []string{"ns1.svc.cluster.local"}, Options: []string{"ndots:5"}}
	tests := []struct {
		name       string
		resp       v1.IpamAddResponse
		wantIPs    []gotIP
		wantRoutes []gotRoute
		wantDNS    types.DNS
	}{
		{
			name: "IPv4 with gateway, pool route and DNS",
			resp: v1.IpamAddResponse{
				IPs:    []v1.IPConfig{{Version: 4, Address: "10.6.212.145/16", IPPool: "v4-pool", Gateway: "10.6.0.1", Nic: "eth0"}},
				Routes: []v1.Route{{IfName: "eth0", Dst: "10.7.0.0/16", Gw: "10.6.0.254"}},
				DNS:    dns,
			},
			wantIPs:    []gotIP{{Version: "4", Address: "10.6.212.145/16", Gateway: "10.6.0.1"}},
			wantRoutes: []gotRoute{{Dst: "0.0.0.0/0", GW: "10.6.0.1"}, {Dst: "10.7.0.0/16", GW: "10.6.0.254"}},
			wantDNS:    types.DNS{Nameservers: dns.Nameservers, Domain: dns.Domain, Search: dns.Search, Options: dns.Options},
		},
		{
			name: "dual stack",
			resp: v1.IpamAddResponse{IPs: []v1.IPConfig{
				{Version: 4, Address: "10.6.212.145/16", Gateway: "10.6.0.1", Nic: "eth0"},
				{Version: 6, Address: "fd00:10:6::91/64", Gateway: "fd00:10:6::1", Nic: "eth0"},
			}},
			wantIPs: []gotIP{
				{Version: "4", Address: "10.6.212.145/16", Gateway: "10.6.0.1"},
				{Version: "6", Address: "fd00:10:6::91/64", Gateway: "fd00:10:6::1"},
			},
			wantRoutes: []gotRoute{{Dst: "0.0.0.0/0", GW: "10.6.0.1"}, {Dst: "::/0", GW: "fd00:10:6::1"}},
		},
		{
			name: "cleaned gateway: no gateway, no default route, pool routes kept",
			resp: v1.IpamAddResponse{
				IPs: []v1.IPConfig{
					{Version: 4, Address: "10.6.212.145/16", Nic: "eth0"},
					{Version: 6, Address: "fd00:10:6::91/64", Nic: "eth0"},
				},
				Routes: []v1.Route{{IfName: "eth0", Dst: "10.7.0.5/16", Gw: "10.6.0.254"}},
			},
			wantIPs: []gotIP{
				{Version: "4", Address: "10.6.212.145/16"},
				{Version: "6", Address: "fd00:10:6::91/64"},
			},
			wantRoutes: []gotRoute{{Dst: "10.7.0.0/16", GW: "10.6.0.254"}},
		},
		{
			name: "answer for several NICs keeps only this one",
			resp: v1.IpamAddResponse{
				IPs: []v1.IPConfig{
					{Version: 4, Address: "10.6.212.145/16", Gateway: "10.6.0.1", Nic: "eth0"},
					{Version: 4, Address: "10.7.0.9/24", Gateway: "10.7.0.1", Nic: "net1"},
				},
				Routes: []v1.Route{{IfName: "net1", Dst: "10.8.0.0/16", Gw: "10.7.0.1"}},
			},
			wantIPs:    []gotIP{{Version: "4", Address: "10.6.212.145/16", Gateway: "10.6.0.1"}},
			wantRoutes: []gotRoute{{Dst: "0.0.0.0/0", GW: "10.6.0.1"}},
		},
		{
			name: "agent's own default route is not duplicated",
			resp: v1.IpamAddResponse{
				IPs:    []v1.IPConfig{{Version: 4, Address: "10.6.212.145/16", Gateway: "10.6.0.1", Nic: "eth0"}},
				Routes: []v1.Route{{IfName: "eth0", Dst: "0.0.0.0/0", Gw: "10.6.0.254"}},
			},
			wantIPs:    []gotIP{{Version: "4", Address: "10.6.212.145/16", Gateway: "10.6.0.1"}},
			wantRoutes: []gotRoute{{Dst: "0.0.0.0/0", GW: "10.6.0.254"}},
		},
	}
	for _, tt := range tests {
		for _, ver := range allVersions {
			t.Run(tt.name+"/"+ver, func(t *testing.T) {
				e := newEnv(t)
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(tt.resp))
				if err := e.run("ADD", cmdArgs(e.conf(ver, nil))); err != nil {
					t.Fatalf("ADD: %v", err)
				}
				got := parseResult(t, ver, e.stdout.Bytes())
				want := gotResult{CNIVersion: ver, IPs: tt.wantIPs, Routes: tt.wantRoutes, DNS: tt.wantDNS}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestAddSendsRequest(t *testing.T) {
	e := newEnv(t)
	e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{
		IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.5/16", Nic: "net1"}},
	}))
	args := cmdArgs(e.conf("1.0.0", map[string]any{
		"default_ipv4_ippool": []string{"v4-a", "v4-*"},
		"default_ipv6_ippool": []string{"v6-a"},
		"clean_gateway":       true,
		"match_master_subnet": true,
	}))
	args.IfName = "net1"
	if err := e.run("ADD", args); err != nil {
		t.Fatalf("ADD: %v", err)
	}

	if got := len(e.agent.RequestsTo(http.MethodGet, v1.PathIPAMHealthy)); got != 1 {
		t.Errorf("health checks = %d, want 1", got)
	}
	reqs := e.agent.RequestsTo(http.MethodPost, v1.PathIPAMIP)
	if len(reqs) != 1 {
		t.Fatalf("allocation requests = %d, want 1", len(reqs))
	}
	var sent v1.IpamAddArgs
	reqs[0].Decode(t, &sent)
	want := v1.IpamAddArgs{
		ContainerID: "container-1", IfName: "net1", NetNamespace: testNetns,
		PodNamespace: "ns1", PodName: "pod1", PodUID: "uid-1",
		DefaultIPv4IPPool: []string{"v4-a", "v4-*"}, DefaultIPv6IPPool: []string{"v6-a"},
		CleanGateway: true, MatchMasterSubnet: true,
		Master: &v1.Master{Name: "ens1f0", Addresses: []string{"10.20.0.5/24", "fd20::5/64", "fe80::1/64"}},
	}
	if diff := cmp.Diff(want, sent); diff != "" {
		t.Errorf("allocation request (-want +got):\n%s", diff)
	}
	if err := sent.Validate(); err != nil {
		t.Errorf("the agent would refuse the request: %v", err)
	}
	if diff := cmp.Diff([]string{testNetns + " net1"}, e.masterAsked); diff != "" {
		t.Errorf("master lookups (-want +got):\n%s", diff)
	}
}

// match_master_subnet: the plugin looks the master up only when the configuration asks for it,
// and a lookup that fails fails the ADD with the option and the interface named, before the agent
// is asked for anything (not even its health), so nothing is allocated.
func TestAddMatchMasterSubnet(t *testing.T) {
	for _, ver := range allVersions {
		t.Run(ver+"/off", func(t *testing.T) {
			e := newEnv(t)
			e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{
				IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.5/16", Nic: "net1"}},
			}))
			args := cmdArgs(e.conf(ver, map[string]any{"match_master_subnet": false}))
			args.IfName = "net1"
			if err := e.run("ADD", args); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if len(e.masterAsked) != 0 {
				t.Errorf("master looked up without match_master_subnet: %q", e.masterAsked)
			}
			reqs := e.agent.RequestsTo(http.MethodPost, v1.PathIPAMIP)
			if len(reqs) != 1 {
				t.Fatalf("allocation requests = %d, want 1", len(reqs))
			}
			var sent v1.IpamAddArgs
			reqs[0].Decode(t, &sent)
			if sent.MatchMasterSubnet || sent.Master != nil {
				t.Errorf("request carries matchMasterSubnet %v, master %+v", sent.MatchMasterSubnet, sent.Master)
			}
		})
		t.Run(ver+"/lookup fails", func(t *testing.T) {
			e := newEnv(t)
			e.masterErr = errors.New(`interface net1 in /var/run/netns/pod1 (driver "veth") is not a PCI device, so not an SR-IOV VF`)
			args := cmdArgs(e.conf(ver, map[string]any{"match_master_subnet": true}))
			args.IfName = "net1"
			err := e.run("ADD", args)
			cniError(t, err, types.ErrInternal,
				`match_master_subnet: find the master of net1: interface net1 in /var/run/netns/pod1 (driver "veth") is not a PCI device`)
			if reqs := e.agent.Requests(); len(reqs) != 0 {
				t.Errorf("the agent was asked %d time(s), want never", len(reqs))
			}
			if e.stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", e.stdout)
			}
			if diff := cmp.Diff([]string{testNetns + " net1"}, e.masterAsked); diff != "" {
				t.Errorf("master lookups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddErrors(t *testing.T) {
	exhausted := "failed to allocate any IPv4 IP address to NIC eth0 from IPPools [v4-a v4-b]: all IP addresses used out"
	tests := []struct {
		name        string
		setup       func(e *env)
		conf        func(e *env) []byte
		args        string
		wantCode    uint
		wantMsg     []string
		wantAlloc   int // allocation requests expected
		wantRelease int // rollback releases expected
	}{
		{
			name: "agent down",
			conf: func(e *env) []byte {
				return e.conf("1.0.0", map[string]any{"ipam_unix_socket_path": filepath.Dir(e.logPath) + ".sock"})
			},
			wantCode: types.ErrTryAgainLater,
			wantMsg:  []string{"unhealthy spiderpool-agent backend", ".sock", "is spiderpool-agent running on this node?"},
		},
		{
			name: "agent unhealthy",
			setup: func(e *env) {
				e.agent.Handle(http.MethodGet, v1.PathIPAMHealthy, clienttest.Fail(http.StatusInternalServerError, v1.CodeNotReady, "caches not synced"))
			},
			wantCode: types.ErrTryAgainLater,
			wantMsg:  []string{"unhealthy spiderpool-agent backend", "caches not synced"},
		},
		{
			name: "pools exhausted keeps the agent's message",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodePoolExhausted, exhausted))
			},
			wantCode:  types.ErrInternal,
			wantMsg:   []string{"spiderpool IP allocation error", exhausted},
			wantAlloc: 1,
		},
		{
			name: "no candidate pool",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodeNoCandidatePool,
					"no IPPool available, all IPv4 IPPools [p1] of eth0 filtered out: disabled IPPool p1"))
			},
			wantCode:  types.ErrInternal,
			wantMsg:   []string{"all IPv4 IPPools [p1] of eth0 filtered out: disabled IPPool p1"},
			wantAlloc: 1,
		},
		{
			name: "write conflicts are transient",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodeConflict, "retries exhausted"))
			},
			wantCode:  types.ErrTryAgainLater,
			wantMsg:   []string{"retries exhausted"},
			wantAlloc: 1,
		},
		{
			name:     "missing pod name",
			args:     "K8S_POD_NAMESPACE=ns1;K8S_POD_UID=u",
			wantCode: types.ErrInvalidEnvironmentVariables,
			wantMsg:  []string{"K8S_POD_NAME"},
		},
		{
			name:     "missing pod UID",
			args:     "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p",
			wantCode: types.ErrInvalidEnvironmentVariables,
			wantMsg:  []string{"K8S_POD_UID"},
		},
		{
			name:     "invalid configuration",
			conf:     func(e *env) []byte { return e.conf("1.0.0", map[string]any{"clean_gateway": "yes"}) },
			wantCode: types.ErrInvalidNetworkConfig,
			wantMsg:  []string{"ipam.clean_gateway"},
		},
		{
			name:     "unsupported version",
			conf:     func(e *env) []byte { return e.conf("0.2.0", nil) },
			wantCode: types.ErrInvalidNetworkConfig,
			wantMsg:  []string{"unsupported specified CNI version 0.2.0"},
		},
		{
			name: "malformed answer is rolled back",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.300/16", Nic: "eth0"}}}))
				e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.OK(nil))
			},
			wantCode:    types.ErrInternal,
			wantMsg:     []string{`invalid address "10.6.0.300/16"`},
			wantAlloc:   1,
			wantRelease: 1,
		},
		{
			name: "answer without this NIC is rolled back",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.3/16", Nic: "net1"}}}))
				e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodeInternal, "apiserver down"))
			},
			wantCode:    types.ErrInternal,
			wantMsg:     []string{"without an address for interface eth0", "releasing the allocation again failed", "apiserver down"},
			wantAlloc:   1,
			wantRelease: 1,
		},
		{
			name: "version mismatch in answer",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{IPs: []v1.IPConfig{{Version: 6, Address: "10.6.0.3/16", Nic: "eth0"}}}))
				e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.OK(nil))
			},
			wantCode:    types.ErrInternal,
			wantMsg:     []string{`"10.6.0.3/16" for eth0 as IPv6`},
			wantAlloc:   1,
			wantRelease: 1,
		},
		{
			name: "gateway of the other family",
			setup: func(e *env) {
				e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(v1.IpamAddResponse{IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.3/16", Gateway: "fd00::1", Nic: "eth0"}}}))
				e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.OK(nil))
			},
			wantCode:    types.ErrInternal,
			wantMsg:     []string{`invalid gateway "fd00::1"`},
			wantAlloc:   1,
			wantRelease: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			stdin := e.conf("1.0.0", nil)
			if tt.conf != nil {
				stdin = tt.conf(e)
			}
			args := cmdArgs(stdin)
			if tt.args != "" {
				args.Args = tt.args
			}
			err := e.run("ADD", args)
			cniError(t, err, tt.wantCode, tt.wantMsg...)
			if e.stdout.Len() != 0 {
				t.Errorf("a failed ADD wrote to stdout: %q", e.stdout)
			}
			if got := len(e.agent.RequestsTo(http.MethodPost, v1.PathIPAMIP)); got != tt.wantAlloc {
				t.Errorf("allocation requests = %d, want %d", got, tt.wantAlloc)
			}
			if got := len(e.agent.RequestsTo(http.MethodDelete, v1.PathIPAMIP)); got != tt.wantRelease {
				t.Errorf("release requests = %d, want %d", got, tt.wantRelease)
			}
		})
	}
}

func TestDel(t *testing.T) {
	tests := []struct {
		name     string
		reply    *clienttest.Reply // nil: agent not running
		wantCode uint              // 0: success
		wantMsg  []string
	}{
		{name: "released", reply: &clienttest.Reply{Status: http.StatusOK}},
		{name: "nothing to release is success", reply: ptr(clienttest.Fail(http.StatusNotFound, v1.CodeNotFound, "no endpoint for pod ns1/pod1"))},
		{
			name:     "internal error fails DEL",
			reply:    ptr(clienttest.Fail(http.StatusInternalServerError, v1.CodeInternal, "update IPPool v4-a: etcdserver: request timed out")),
			wantCode: types.ErrInternal,
			wantMsg:  []string{"spiderpool IP release error", "etcdserver: request timed out"},
		},
		{
			name:     "forbidden fails DEL",
			reply:    ptr(clienttest.Fail(http.StatusForbidden, v1.CodeForbidden, "not allowed")),
			wantCode: types.ErrInternal,
			wantMsg:  []string{"not allowed"},
		},
		{
			name:     "undecodable answer fails DEL",
			reply:    &clienttest.Reply{Status: http.StatusBadGateway, Raw: []byte("oops")},
			wantCode: types.ErrInternal,
			wantMsg:  []string{"502", "oops"},
		},
		{
			name:     "agent down fails DEL",
			wantCode: types.ErrTryAgainLater,
			wantMsg:  []string{"is spiderpool-agent running on this node?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			stdin := e.conf("0.3.1", nil)
			if tt.reply != nil {
				e.agent.Handle(http.MethodDelete, v1.PathIPAMIP, *tt.reply)
			} else {
				stdin = e.conf("0.3.1", map[string]any{"ipam_unix_socket_path": "/nonexistent/spiderpool.sock"})
			}
			args := cmdArgs(stdin)
			err := e.run("DEL", args)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("DEL: %v", err)
				}
			} else {
				cniError(t, err, tt.wantCode, tt.wantMsg...)
			}
			if e.stdout.Len() != 0 {
				t.Errorf("DEL wrote to stdout: %q", e.stdout)
			}
			if tt.reply == nil {
				return
			}
			reqs := e.agent.RequestsTo(http.MethodDelete, v1.PathIPAMIP)
			if len(reqs) != 1 {
				t.Fatalf("release requests = %d, want 1", len(reqs))
			}
			var sent v1.IpamDelArgs
			reqs[0].Decode(t, &sent)
			want := v1.IpamDelArgs{ContainerID: "container-1", IfName: "eth0", NetNamespace: testNetns, PodNamespace: "ns1", PodName: "pod1", PodUID: "uid-1"}
			if diff := cmp.Diff(want, sent); diff != "" {
				t.Errorf("release request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDelTwiceIsIdempotent(t *testing.T) {
	e := newEnv(t)
	released := false
	e.agent.HandleFunc(http.MethodDelete, v1.PathIPAMIP, func(clienttest.Request) clienttest.Reply {
		if released {
			return clienttest.Fail(http.StatusNotFound, v1.CodeNotFound, "already released")
		}
		released = true
		return clienttest.OK(nil)
	})
	for i := range 2 {
		if err := e.run("DEL", cmdArgs(e.conf("1.1.0", nil))); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// prevResult renders a result as the runtime passes it to CHECK in configuration version ver.
func prevResult(t *testing.T, ver string, r *types100.Result) map[string]any {
	t.Helper()
	r.CNIVersion = types100.ImplementedSpecVersion
	conv, err := r.GetAsVersion(ver)
	if err != nil {
		t.Fatalf("convert prevResult to %s: %v", ver, err)
	}
	var buf bytes.Buffer
	if err := conv.PrintTo(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func ipc(cidr string, iface *int) *types100.IPConfig {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return &types100.IPConfig{Address: *n, Interface: iface}
}

func TestCheck(t *testing.T) {
	endpoint := v1.WorkloadEndpoint{
		PodNamespace: "ns1", PodName: "pod1", PodUID: "uid-1", Node: "node1",
		Interfaces: []v1.InterfaceEndpoint{
			{Interface: "eth0", IPv4: "10.6.0.5/16", IPv6: "fd00::5/64", IPv4Pool: "v4", IPv6Pool: "v6"},
			{Interface: "net1", IPv4: "10.7.0.5/24"},
		},
	}
	// Like macvlan's result: one sandbox interface.
	macvlan := func(ips ...*types100.IPConfig) *types100.Result {
		return &types100.Result{Interfaces: []*types100.Interface{{Name: "eth0", Sandbox: testNetns}}, IPs: ips}
	}
	tests := []struct {
		name     string
		endpoint *clienttest.Reply
		prev     *types100.Result // nil: no prevResult
		wantMsg  []string         // nil: success
	}{
		{
			name: "match",
			prev: macvlan(ipc("10.6.0.5/16", types100.Int(0)), ipc("fd00::5/64", types100.Int(0))),
		},
		{
			name: "match in an IPAM-only result",
			prev: &types100.Result{IPs: []*types100.IPConfig{ipc("10.6.0.5/16", nil), ipc("fd00::5/64", nil)}},
		},
		{
			name: "addresses of host-side interfaces are ignored",
			prev: &types100.Result{
				Interfaces: []*types100.Interface{{Name: "cni0"}, {Name: "eth0", Sandbox: testNetns}},
				IPs:        []*types100.IPConfig{ipc("10.6.0.1/16", types100.Int(0)), ipc("10.6.0.5/16", types100.Int(1)), ipc("fd00::5/64", types100.Int(1))},
			},
		},
		{
			name:    "different address",
			prev:    macvlan(ipc("10.6.0.9/16", types100.Int(0)), ipc("fd00::5/64", types100.Int(0))),
			wantMsg: []string{"10.6.0.9/16", "not the one spiderpool-agent allocated"},
		},
		{
			name:    "missing address",
			prev:    macvlan(ipc("10.6.0.5/16", types100.Int(0))),
			wantMsg: []string{"fd00::5/64", "missing from prevResult"},
		},
		{
			name:    "different prefix length",
			prev:    macvlan(ipc("10.6.0.5/24", types100.Int(0)), ipc("fd00::5/64", types100.Int(0))),
			wantMsg: []string{"10.6.0.5/24"},
		},
		{
			name:    "no prevResult",
			wantMsg: []string{"no prevResult"},
		},
		{
			name:     "endpoint unknown",
			endpoint: ptr(clienttest.Fail(http.StatusNotFound, v1.CodeNotFound, "endpoint ns1/pod1 not found")),
			prev:     macvlan(ipc("10.6.0.5/16", types100.Int(0))),
			wantMsg:  []string{"SpiderEndpoint of pod ns1/pod1", "endpoint ns1/pod1 not found"},
		},
		{
			name:     "endpoint of another pod incarnation",
			endpoint: ptr(clienttest.OK(v1.WorkloadEndpoint{PodNamespace: "ns1", PodName: "pod1", PodUID: "uid-0", Interfaces: endpoint.Interfaces})),
			prev:     macvlan(ipc("10.6.0.5/16", types100.Int(0)), ipc("fd00::5/64", types100.Int(0))),
			wantMsg:  []string{"uid-0"},
		},
		{
			name:     "endpoint without this interface",
			endpoint: ptr(clienttest.OK(v1.WorkloadEndpoint{PodNamespace: "ns1", PodName: "pod1", PodUID: "uid-1", Interfaces: endpoint.Interfaces[1:]})),
			prev:     macvlan(ipc("10.6.0.5/16", types100.Int(0))),
			wantMsg:  []string{"no addresses for interface eth0"},
		},
	}
	for _, tt := range tests {
		for _, ver := range []string{"0.4.0", "1.0.0", "1.1.0"} {
			t.Run(tt.name+"/"+ver, func(t *testing.T) {
				e := newEnv(t)
				reply := clienttest.OK(endpoint)
				if tt.endpoint != nil {
					reply = *tt.endpoint
				}
				e.agent.Handle(http.MethodGet, v1.PathWorkloadEndpoint, reply)

				var conf map[string]any
				if err := json.Unmarshal(e.conf(ver, nil), &conf); err != nil {
					t.Fatal(err)
				}
				if tt.prev != nil {
					conf["prevResult"] = prevResult(t, ver, tt.prev)
				}
				stdin, _ := json.Marshal(conf)

				err := e.run("CHECK", cmdArgs(stdin))
				if tt.wantMsg == nil {
					if err != nil {
						t.Fatalf("CHECK: %v", err)
					}
				} else {
					if err == nil {
						t.Fatal("CHECK succeeded")
					}
					for _, s := range tt.wantMsg {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("error %q does not contain %q", err, s)
						}
					}
				}
				if tt.prev == nil {
					return
				}
				q := e.agent.RequestsTo(http.MethodGet, v1.PathWorkloadEndpoint)
				if len(q) != 1 || q[0].Query.Get("podNamespace") != "ns1" || q[0].Query.Get("podName") != "pod1" {
					t.Errorf("endpoint requests = %+v, want one for ns1/pod1", q)
				}
			})
		}
	}
}

func TestStatus(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		e := newEnv(t)
		if err := e.run("STATUS", &skel.CmdArgs{StdinData: e.conf("1.1.0", nil)}); err != nil {
			t.Fatalf("STATUS: %v", err)
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodGet, v1.PathIPAMHealthy, clienttest.Fail(http.StatusInternalServerError, v1.CodeNotReady, "not ready"))
		err := e.run("STATUS", &skel.CmdArgs{StdinData: e.conf("1.1.0", nil)})
		cniError(t, err, types.ErrPluginNotAvailable, "unhealthy spiderpool-agent backend", "not ready")
	})
	t.Run("agent down", func(t *testing.T) {
		e := newEnv(t)
		err := e.run("STATUS", &skel.CmdArgs{StdinData: e.conf("1.1.0", map[string]any{"ipam_unix_socket_path": "/nonexistent/sp.sock"})})
		cniError(t, err, types.ErrPluginNotAvailable, "/nonexistent/sp.sock")
	})
}

// panickingAgent stands for a bug anywhere below the command.
type panickingAgent struct{}

func (panickingAgent) Healthy(context.Context) error { panic("boom in Healthy") }
func (panickingAgent) Allocate(context.Context, *v1.IpamAddArgs) (*v1.IpamAddResponse, error) {
	panic("boom in Allocate")
}
func (panickingAgent) Release(context.Context, *v1.IpamDelArgs) error { panic("boom in Release") }
func (panickingAgent) ReleaseAll(context.Context, *v1.IpamBatchDelArgs) error {
	panic("boom in ReleaseAll")
}
func (panickingAgent) WorkloadEndpoint(context.Context, string, string) (*v1.WorkloadEndpoint, error) {
	panic("boom in WorkloadEndpoint")
}

var _ agent = panickingAgent{}

func TestPanicBecomesError(t *testing.T) {
	for _, command := range []string{"ADD", "DEL", "CHECK", "STATUS"} {
		t.Run(command, func(t *testing.T) {
			e := newEnv(t)
			e.p.newAgent = func(string) agent { return panickingAgent{} }
			var conf map[string]any
			_ = json.Unmarshal(e.conf("1.1.0", nil), &conf)
			conf["prevResult"] = prevResult(t, "1.1.0", &types100.Result{IPs: []*types100.IPConfig{ipc("10.6.0.5/16", nil)}})
			stdin, _ := json.Marshal(conf)

			err := e.run(command, cmdArgs(stdin))
			cniError(t, err, types.ErrInternal, "panicked during "+command, "boom in")
			if e.stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", e.stdout)
			}
			logData, _ := os.ReadFile(e.logPath)
			if !strings.Contains(string(logData), "boom in") {
				t.Errorf("the panic is not in the log:\n%s", logData)
			}
		})
	}
}

func TestLogging(t *testing.T) {
	okAnswer := clienttest.OK(v1.IpamAddResponse{IPs: []v1.IPConfig{{Version: 4, Address: "10.6.0.5/16", Gateway: "10.6.0.1", Nic: "eth0"}}})

	t.Run("default level logs the allocation", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, okAnswer)
		if err := e.run("ADD", cmdArgs(e.conf("1.0.0", nil))); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		data, err := os.ReadFile(e.logPath)
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		for _, s := range []string{`"level":"DEBUG"`, `"msg":"allocated"`, "10.6.0.5/16", `"pod":"ns1/pod1"`, `"command":"ADD"`} {
			if !strings.Contains(string(data), s) {
				t.Errorf("log does not contain %s:\n%s", s, data)
			}
		}
	})
	t.Run("ERROR level drops success lines and keeps failures", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, okAnswer)
		if err := e.run("ADD", cmdArgs(e.conf("1.0.0", map[string]any{"log_level": "error"}))); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if data, _ := os.ReadFile(e.logPath); len(data) != 0 {
			t.Errorf("log at ERROR level after a success:\n%s", data)
		}
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Fail(http.StatusInternalServerError, v1.CodePoolExhausted, "all used"))
		if err := e.run("ADD", cmdArgs(e.conf("1.0.0", map[string]any{"log_level": "error"}))); err == nil {
			t.Fatal("ADD succeeded")
		}
		if data, _ := os.ReadFile(e.logPath); !strings.Contains(string(data), "all used") {
			t.Errorf("failure not logged:\n%s", data)
		}
	})
	t.Run("unusable log file disables logging, ADD still succeeds", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, okAnswer)
		blocker := filepath.Join(cnilog.Dir(), "file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// A directory component that is a regular file cannot be created, even by root.
		stdin := e.conf("1.0.0", map[string]any{"log_file_path": filepath.Join(blocker, "sub", "spiderpool.log")})
		if err := e.run("ADD", cmdArgs(stdin)); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		parseResult(t, "1.0.0", e.stdout.Bytes())
	})
	t.Run("a symlink in place of the log file is not followed, ADD still succeeds", func(t *testing.T) {
		e := newEnv(t)
		e.agent.Handle(http.MethodPost, v1.PathIPAMIP, okAnswer)
		target := filepath.Join(t.TempDir(), "shadow")
		if err := os.WriteFile(target, []byte("root:x:0:0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(e.logPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, e.logPath); err != nil {
			t.Fatal(err)
		}
		if err := e.run("ADD", cmdArgs(e.conf("1.0.0", nil))); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if b, _ := os.ReadFile(target); string(b) != "root:x:0:0\n" {
			t.Errorf("the symlink's target was written:\n%s", b)
		}
	})
	t.Run("a log file outside the log directory fails the command", func(t *testing.T) {
		for i := range 3 {
			e := newEnv(t)
			path := []string{"/etc/shadow", "spiderpool.log", cnilog.Dir() + "/../shadow"}[i]
			e.agent.Handle(http.MethodPost, v1.PathIPAMIP, okAnswer)
			err := e.run("ADD", cmdArgs(e.conf("1.0.0", map[string]any{"log_file_path": path})))
			var cniErr *types.Error
			want := fmt.Sprintf("ipam.log_file_path %q: must be a file under %s", path, cnilog.Dir())
			if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, want) {
				t.Errorf("ADD with log_file_path %q = %v, want code %d with %q", path, err, types.ErrInvalidNetworkConfig, want)
			}
			if n := len(e.agent.RequestsTo(http.MethodPost, v1.PathIPAMIP)); n != 0 {
				t.Errorf("log_file_path %q: %d allocation requests, want none", path, n)
			}
		}
	})
}
