package client_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/agent/client/clienttest"
)

func TestHealthy(t *testing.T) {
	tests := []struct {
		name    string
		reply   clienttest.Reply
		wantErr bool
	}{
		{name: "200", reply: clienttest.OK(nil)},
		{name: "204", reply: clienttest.Reply{Status: http.StatusNoContent}},
		{name: "500", reply: clienttest.Fail(http.StatusInternalServerError, v1.CodeNotReady, "informers not synced"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Handle(http.MethodGet, v1.PathIPAMHealthy, tt.reply)
			err := client.New(srv.SocketPath).Healthy(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Healthy() = %v, want error %v", err, tt.wantErr)
			}
			if got := len(srv.RequestsTo(http.MethodGet, v1.PathIPAMHealthy)); got != 1 {
				t.Errorf("agent saw %d health requests, want 1", got)
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	srv := clienttest.NewServer(t)
	want := &v1.IpamAddResponse{
		IPs: []v1.IPConfig{
			{Version: 4, Address: "10.6.212.145/16", IPPool: "v4", Gateway: "10.6.0.1", Nic: "net1"},
			{Version: 6, Address: "fd00::5/64", IPPool: "v6", Nic: "net1"},
		},
		Routes: []v1.Route{{IfName: "net1", Dst: "10.7.0.0/16", Gw: "10.6.0.254"}},
		DNS:    v1.DNS{Nameservers: []string{"10.233.0.3"}},
	}
	srv.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.OK(want))
	args := &v1.IpamAddArgs{
		ContainerID: "c1", IfName: "net1", NetNamespace: "/var/run/netns/x",
		PodNamespace: "ns", PodName: "p", PodUID: "u1",
		DefaultIPv4IPPool: []string{"v4*"}, CleanGateway: true,
	}
	got, err := client.New(srv.SocketPath).Allocate(context.Background(), args)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Allocate answer (-want +got):\n%s", diff)
	}
	reqs := srv.RequestsTo(http.MethodPost, v1.PathIPAMIP)
	if len(reqs) != 1 {
		t.Fatalf("agent saw %d allocation requests, want 1", len(reqs))
	}
	var sent v1.IpamAddArgs
	reqs[0].Decode(t, &sent)
	if diff := cmp.Diff(args, &sent); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
}

func TestReleaseAndReleaseAll(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Handle(http.MethodDelete, v1.PathIPAMIP, clienttest.OK(nil))
	srv.Handle(http.MethodDelete, v1.PathIPAMIPs, clienttest.Fail(521, v1.CodeForbidden, "stateless pod"))
	c := client.New(srv.SocketPath)

	del := &v1.IpamDelArgs{ContainerID: "c1", IfName: "eth0", PodNamespace: "ns", PodName: "p", PodUID: "u1"}
	if err := c.Release(context.Background(), del); err != nil {
		t.Fatalf("Release: %v", err)
	}
	var sent v1.IpamDelArgs
	srv.RequestsTo(http.MethodDelete, v1.PathIPAMIP)[0].Decode(t, &sent)
	if diff := cmp.Diff(del, &sent); diff != "" {
		t.Errorf("Release body (-want +got):\n%s", diff)
	}

	err := c.ReleaseAll(context.Background(), &v1.IpamBatchDelArgs{ContainerID: "c1", PodNamespace: "ns", PodName: "p", PodUID: "u1"})
	if !errors.Is(err, &v1.Error{Code: v1.CodeForbidden}) {
		t.Fatalf("ReleaseAll = %v, want CodeForbidden", err)
	}
}

func TestWorkloadEndpoint(t *testing.T) {
	srv := clienttest.NewServer(t)
	want := &v1.WorkloadEndpoint{
		PodNamespace: "ns", PodName: "p", PodUID: "u1", Node: "n1",
		Interfaces: []v1.InterfaceEndpoint{{Interface: "eth0", IPv4: "10.6.0.5/16", IPv4Pool: "v4"}},
	}
	srv.Handle(http.MethodGet, v1.PathWorkloadEndpoint, clienttest.OK(want))
	got, err := client.New(srv.SocketPath).WorkloadEndpoint(context.Background(), "ns", "p&q")
	if err != nil {
		t.Fatalf("WorkloadEndpoint: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoint (-want +got):\n%s", diff)
	}
	q := srv.RequestsTo(http.MethodGet, v1.PathWorkloadEndpoint)[0].Query
	if q.Get("podNamespace") != "ns" || q.Get("podName") != "p&q" {
		t.Errorf("query = %v, want podNamespace=ns podName=p&q", q)
	}
}

func TestCoordinatorConfigSendsBodyWithGET(t *testing.T) {
	srv := clienttest.NewServer(t)
	want := &v1.CoordinatorConfig{Mode: "underlay", OverlayPodCIDR: []string{"10.233.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"}, TunePodRoutes: true}
	srv.Handle(http.MethodGet, v1.PathCoordinatorConfig, clienttest.OK(want))
	args := &v1.CoordinatorConfigArgs{PodName: "p", PodNamespace: "ns"}
	got, err := client.New(srv.SocketPath).CoordinatorConfig(context.Background(), args)
	if err != nil {
		t.Fatalf("CoordinatorConfig: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	var sent v1.CoordinatorConfigArgs
	srv.RequestsTo(http.MethodGet, v1.PathCoordinatorConfig)[0].Decode(t, &sent)
	if diff := cmp.Diff(args, &sent); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name      string
		reply     clienttest.Reply
		wantCode  v1.Code
		wantInMsg []string
	}{
		{
			name:      "coded error keeps code and message",
			reply:     clienttest.Fail(http.StatusInternalServerError, v1.CodePoolExhausted, "failed to allocate any IPv4 IP address to NIC eth0 from IPPools [a b]"),
			wantCode:  v1.CodePoolExhausted,
			wantInMsg: []string{"IPPools [a b]"},
		},
		{
			name:      "not found",
			reply:     clienttest.Fail(http.StatusNotFound, v1.CodeNotFound, "endpoint ns/p"),
			wantCode:  v1.CodeNotFound,
			wantInMsg: []string{"endpoint ns/p"},
		},
		{
			name:      "plain text body becomes internal with status and text",
			reply:     clienttest.Reply{Status: http.StatusBadGateway, Raw: []byte("upstream went away\n")},
			wantCode:  v1.CodeInternal,
			wantInMsg: []string{"502", "upstream went away"},
		},
		{
			name:      "JSON without code becomes internal",
			reply:     clienttest.Reply{Status: http.StatusInternalServerError, Raw: []byte(`{"message":"x"}`)},
			wantCode:  v1.CodeInternal,
			wantInMsg: []string{"500", `{"message":"x"}`},
		},
		{
			name:      "empty body",
			reply:     clienttest.Reply{Status: http.StatusServiceUnavailable},
			wantCode:  v1.CodeInternal,
			wantInMsg: []string{"503 Service Unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Handle(http.MethodPost, v1.PathIPAMIP, tt.reply)
			_, err := client.New(srv.SocketPath).Allocate(context.Background(), &v1.IpamAddArgs{})
			if !errors.Is(err, &v1.Error{Code: tt.wantCode}) {
				t.Fatalf("Allocate error = %v, want code %s", err, tt.wantCode)
			}
			var apiErr *v1.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %T is not a *v1.Error", err)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(apiErr.Message, s) {
					t.Errorf("message %q does not contain %q", apiErr.Message, s)
				}
			}
		})
	}
}

func TestUndecodableSuccessBody(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Handle(http.MethodPost, v1.PathIPAMIP, clienttest.Reply{Status: http.StatusOK, Raw: []byte("not json")})
	_, err := client.New(srv.SocketPath).Allocate(context.Background(), &v1.IpamAddArgs{})
	if err == nil || !strings.Contains(err.Error(), "decode POST /v1/ipam/ip answer") {
		t.Fatalf("Allocate error = %v, want a decode error", err)
	}
}

func TestAgentDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	err := client.New(sock).Healthy(context.Background())
	if err == nil {
		t.Fatal("Healthy succeeded without an agent")
	}
	for _, s := range []string{sock, "is spiderpool-agent running on this node?"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestTimeout(t *testing.T) {
	srv := clienttest.NewServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.HandleFunc(http.MethodGet, v1.PathIPAMHealthy, func(clienttest.Request) clienttest.Reply {
		<-release
		return clienttest.OK(nil)
	})
	start := time.Now()
	err := client.New(srv.SocketPath, client.WithTimeout(50*time.Millisecond)).Healthy(context.Background())
	if err == nil {
		t.Fatal("Healthy succeeded although the agent never answered")
	}
	if !strings.Contains(err.Error(), srv.SocketPath) {
		t.Errorf("error %q does not name the socket", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("timeout of 50ms took %v", elapsed)
	}
}

func TestDefaultSocketPath(t *testing.T) {
	if got := client.New("").SocketPath(); got != v1.DefaultSocketPath {
		t.Errorf("SocketPath() = %q, want %q", got, v1.DefaultSocketPath)
	}
}
