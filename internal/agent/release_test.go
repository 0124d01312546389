package agent

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestDelReleasesEverythingAndIsIdempotent(t *testing.T) {
	pools := ipamtest.PublicCloudPools()
	pod := newPod("multi", "u1",
		build.Annotation(v2beta1.AnnoPodIPPools, `[{"interface":"eth0","ipv4":["master-172"]},{"interface":"net1","ipv4":["master-192"]}]`),
		build.Annotation(v2beta1.AnnoMultusNetworks, "kube-system/ipvlan-eth1"))
	cfg := testConfig()
	cfg.ClusterDefaultNAD = "ipvlan-eth0"
	e := newEnv(t, cfg, pools, baseObjects(pod))
	e.mustAdd(addArgs("multi", "u1", "eth0"))
	e.mustAdd(addArgs("multi", "u1", "net1"))

	tests := []struct {
		name string
		del  func() *v1.Error
	}{
		{"DEL net1 releases both NICs", func() *v1.Error { return e.del("default", "multi", "u1", "net1") }},
		{"DEL eth0 again", func() *v1.Error { return e.del("default", "multi", "u1", "eth0") }},
		{"batch DEL", func() *v1.Error {
			_, apiErr := e.do(http.MethodDelete, v1.PathIPAMIPs, v1.IpamBatchDelArgs{ContainerID: "c", PodNamespace: "default", PodName: "multi", PodUID: "u1"}, nil)
			return apiErr
		}},
		{"unknown pod", func() *v1.Error { return e.del("default", "ghost", "u9", "eth0") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if apiErr := tt.del(); apiErr != nil {
				t.Fatalf("DEL: %v", apiErr)
			}
			for _, p := range []string{"master-172", "master-192"} {
				if got := e.records(p); len(got) != 0 {
					t.Errorf("pool %s still records %v", p, got)
				}
			}
			if ep := e.endpoint("default", "multi"); ep != nil {
				t.Errorf("endpoint left: %+v", ep.ObjectMeta)
			}
			e.checkInvariants()
		})
	}
}

// A crash between the pool write and the endpoint write leaves records no
// endpoint names; DEL finds them by the pod UID, in the pools the endpoint
// names or, without an endpoint, in every pool.
func TestDelReleasesUnnamedRecords(t *testing.T) {
	withEndpoint := build.Endpoint("default", "web", build.Finalizer(v2beta1.Finalizer), build.PodUID("u1"), build.OnNode("master"),
		build.IPv4("eth0", "10.6.0.10/16", "p"), build.TopController("Pod", "web"))
	tests := []struct {
		name string
		objs []client.Object
	}{
		{"no endpoint", nil},
		{"endpoint naming one record", []client.Object{withEndpoint}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
				build.Allocated("10.6.0.10", "default/web", "u1"), build.Allocated("10.6.0.12", "default/web", "u1"),
				build.Allocated("10.6.0.11", "default/other", "u2"))
			e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(tt.objs...))
			if apiErr := e.del("default", "web", "u1", "eth0"); apiErr != nil {
				t.Fatal(apiErr)
			}
			if diff := cmp.Diff(map[string]string{"10.6.0.11": "u2"}, e.records("p")); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if e.endpoint("default", "web") != nil {
				t.Errorf("endpoint left")
			}
			e.checkInvariants()
		})
	}
}

// A late DEL of an old incarnation leaves the new incarnation's endpoint
// and addresses alone.
func TestDelOfOldIncarnation(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
		build.Allocated("10.6.0.10", "default/web", "old"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "new")))
	e.mustAdd(addArgs("web", "new", "eth0"))
	if apiErr := e.del("default", "web", "old", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.11": "new"}, e.records("p")); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if ep := e.endpoint("default", "web"); ep == nil || ep.Status.Current.UID != "new" {
		t.Errorf("new incarnation's endpoint %+v", ep)
	}
}

// docs/design/behaviour.md#statefulset-fixed-ips: with ipam.enableStatefulSet a StatefulSet pod that will be
// recreated keeps its endpoint and addresses; once the StatefulSet no
// longer wants it (scaled down), DEL releases.
func TestDelStatefulSetPod(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	tests := []struct {
		name        string
		enabled     bool
		replicas    int32
		conflictIPs bool
		wantKept    bool
		wantCode    v1.Code
	}{
		{name: "kept while wanted", enabled: true, replicas: 2, wantKept: true},
		{name: "conflict release forbidden", enabled: true, replicas: 2, conflictIPs: true, wantKept: true, wantCode: v1.CodeForbidden},
		{name: "scaled down", enabled: true, replicas: 1},
		{name: "feature off", enabled: false, replicas: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.EnableStatefulSet = tt.enabled
			pod := newPod("db-1", "u1", build.ControlledBy("apps/v1", "StatefulSet", "db", "sts-db"))
			sts := build.StatefulSet("default", "db", build.UID("sts-db"), build.Replicas(tt.replicas))
			e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool}, baseObjects(pod, sts))
			e.mustAdd(addArgs("db-1", "u1", "eth0"))

			status, apiErr := e.do(http.MethodDelete, v1.PathIPAMIPs, v1.IpamBatchDelArgs{
				IsReleaseConflictIPs: tt.conflictIPs, ContainerID: "c", PodNamespace: "default", PodName: "db-1", PodUID: "u1",
			}, nil)
			if tt.wantCode != "" {
				if apiErr == nil || apiErr.Code != tt.wantCode || status != 522 {
					t.Fatalf("got %d %+v, want 522 %s", status, apiErr, tt.wantCode)
				}
			} else if apiErr != nil {
				t.Fatal(apiErr)
			}
			kept := len(e.records("p")) == 1 && e.endpoint("default", "db-1") != nil
			gone := len(e.records("p")) == 0 && e.endpoint("default", "db-1") == nil
			if tt.wantKept && !kept || !tt.wantKept && !gone {
				t.Errorf("records %v, endpoint %v; want kept=%v", e.records("p"), e.endpoint("default", "db-1") != nil, tt.wantKept)
			}
		})
	}
}

// An endpoint that another party is already deleting (it carries a
// deletion timestamp) is released and disappears once the finalizer is off.
func TestDelTerminatingEndpoint(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "u1")))
	e.mustAdd(addArgs("web", "u1", "eth0"))
	ep := e.endpoint("default", "web")
	if err := e.kube.Delete(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	if ep := e.endpoint("default", "web"); ep == nil || ep.DeletionTimestamp == nil {
		t.Fatalf("the finalizer should hold the endpoint: %+v", ep)
	}
	if apiErr := e.del("default", "web", "u1", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	if ep := e.endpoint("default", "web"); ep != nil {
		t.Errorf("endpoint left: %+v", ep.ObjectMeta)
	}
	if got := e.records("p"); len(got) != 0 {
		t.Errorf("records %v", got)
	}
}

func TestWorkloadEndpoint(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "u1")))
	e.mustAdd(addArgs("web", "u1", "eth0"))

	we, _, apiErr := e.workloadEndpoint("default", "web")
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	want := &v1.WorkloadEndpoint{PodNamespace: "default", PodName: "web", PodUID: "u1", Node: "master",
		Interfaces: []v1.InterfaceEndpoint{{Interface: "eth0", IPv4: "10.6.0.10/16", IPv4Pool: "p", IPv4Gateway: "10.6.0.1"}}}
	if diff := cmp.Diff(want, we); diff != "" {
		t.Errorf("workload endpoint (-want +got):\n%s", diff)
	}

	if _, status, apiErr := e.workloadEndpoint("default", "ghost"); status != http.StatusNotFound || apiErr.Code != v1.CodeNotFound {
		t.Errorf("missing endpoint: %d %+v", status, apiErr)
	}
	if status, apiErr := e.do(http.MethodGet, v1.PathWorkloadEndpoint+"?podName=web", nil, nil); status != http.StatusBadRequest || apiErr.Code != v1.CodeInvalidRequest {
		t.Errorf("missing namespace: %d %+v", status, apiErr)
	}
}

func TestCoordinatorConfig(t *testing.T) {
	synced := v2beta1.CoordinatorStatus{Phase: v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: []string{"10.244.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"}}
	tests := []struct {
		name     string
		scc      *v2beta1.SpiderCoordinator
		podAnno  map[string]string
		want     *v1.CoordinatorConfig
		wantCode v1.Code
		wantMsg  string
	}{
		{name: "missing", wantCode: v1.CodeNotReady, wantMsg: "SpiderCoordinator default not found"},
		{
			name:     "not ready",
			scc:      &v2beta1.SpiderCoordinator{Status: v2beta1.CoordinatorStatus{Phase: v2beta1.CoordinatorPhaseNotReady, Reason: "Neither kubeadm-config ConfigMap nor kube-controller-manager Pod can be found"}},
			wantCode: v1.CodeNotReady,
			wantMsg:  "SpiderCoordinator default is not ready: Neither kubeadm-config ConfigMap nor kube-controller-manager Pod can be found",
		},
		{
			name: "defaults",
			scc:  &v2beta1.SpiderCoordinator{Status: v2beta1.CoordinatorStatus{Phase: v2beta1.CoordinatorPhaseSynced}},
			want: &v1.CoordinatorConfig{Mode: "auto", OverlayPodCIDR: []string{}, ServiceCIDR: []string{}, TunePodRoutes: true,
				HostRuleTable: 500, PodRPFilter: 0, VethMTU: 1500},
		},
		{
			// The Calico-overlay guide's object (docs/guides/calico-overlay.md#1-install).
			name: "calico overlay guide",
			scc: &v2beta1.SpiderCoordinator{Spec: v2beta1.CoordinatorSpec{
				Mode: new("overlay"), PodCIDRType: new("calico"), HostRuleTable: new(500), HijackCIDR: []string{"169.254.0.0/16"},
				TunePodRoutes: new(true), PodRPFilter: new(0), VethMTU: new(9000), PodDefaultRouteNIC: new("eth0"),
				PodMACPrefix: new("0a:1b"), TxQueueLen: new(1000), VethLinkAddress: new("169.254.100.1"),
				PolicyRoutes: []v2beta1.Route{{Dst: "10.9.0.0/16", Gw: "10.6.0.1"}},
			}, Status: synced},
			podAnno: map[string]string{v2beta1.AnnoDefaultRouteInterface: "net1"},
			want: &v1.CoordinatorConfig{Mode: "overlay", OverlayPodCIDR: []string{"10.244.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"},
				HijackCIDR: []string{"169.254.0.0/16"}, PolicyRoutes: []v1.Route{{Dst: "10.9.0.0/16", Gw: "10.6.0.1"}},
				PodMACPrefix: "0a:1b", TunePodRoutes: true, PodDefaultRouteNIC: "net1", HostRuleTable: 500, PodRPFilter: 0,
				TxQueueLen: 1000, VethLinkAddress: "169.254.100.1", VethMTU: 9000},
		},
		{
			name: "tunePodRoutes off, rp_filter untouched",
			scc:  &v2beta1.SpiderCoordinator{Spec: v2beta1.CoordinatorSpec{TunePodRoutes: new(false), PodRPFilter: new(-1), PodDefaultRouteNIC: new("net2")}, Status: synced},
			want: &v1.CoordinatorConfig{Mode: "auto", OverlayPodCIDR: []string{"10.244.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"},
				TunePodRoutes: false, PodDefaultRouteNIC: "net2", HostRuleTable: 500, PodRPFilter: -1, VethMTU: 1500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := baseObjects(newPod("web", "u1", build.Annotations(tt.podAnno)))
			if tt.scc != nil {
				scc := tt.scc.DeepCopy()
				scc.ObjectMeta = metav1.ObjectMeta{Name: "default"}
				objs = append(objs, scc)
			}
			e := newEnv(t, testConfig(), nil, objs)
			var got v1.CoordinatorConfig
			status, apiErr := e.do(http.MethodGet, v1.PathCoordinatorConfig, v1.CoordinatorConfigArgs{PodName: "web", PodNamespace: "default"}, &got)
			if tt.wantCode != "" {
				if apiErr == nil || apiErr.Code != tt.wantCode || apiErr.Message != tt.wantMsg || status != http.StatusServiceUnavailable {
					t.Fatalf("got %d %+v, want %s %q", status, apiErr, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			if diff := cmp.Diff(tt.want, &got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
