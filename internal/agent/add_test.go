package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// The Alibaba Cloud guide: helm install ... --set ipam.enableStatefulSet=false
// --set multus.multusCNI.defaultCniCRName="ipvlan-eth0"; the DaemonSets
// test-app-1 and test-app-2 pick their NAD with
// v1.multus-cni.io/default-network. One agent per node.
func TestAddPublicCloudTopology(t *testing.T) {
	tests := []struct {
		node, pod, network string // network "" means the cluster default
		wantPool, wantAddr string
		wantGW             string
	}{
		{"master", "test-app-1-ddlx7", "kube-system/ipvlan-eth0", "master-172", "172.31.199.185/20", "172.31.207.253"},
		{"master", "test-app-2-qbhwx", "kube-system/ipvlan-eth1", "master-192", "192.168.0.156/24", "192.168.0.253"},
		{"master", "plain", "", "master-172", "172.31.199.186/20", "172.31.207.253"},
		{"worker", "test-app-1-jpfkj", "kube-system/ipvlan-eth0", "worker-172", "172.31.199.190/20", "172.31.207.253"},
		{"worker", "test-app-2-r6gwx", "kube-system/ipvlan-eth1", "worker-192", "192.168.0.161/24", "192.168.0.253"},
	}
	var objs []client.Object
	for i, tt := range tests {
		opts := []build.Option{build.OnNode(tt.node), build.ControlledBy("apps/v1", "DaemonSet", "test-app", "ds")}
		if tt.network != "" {
			opts = append(opts, build.Annotation(v2beta1.AnnoMultusDefaultNetwork, tt.network))
		}
		objs = append(objs, newPod(tt.pod, fmt.Sprint("uid-", i), opts...))
	}
	envs := map[string]*testEnv{}
	for _, node := range []string{"master", "worker"} {
		cfg := testConfig()
		cfg.NodeName = node
		cfg.ClusterDefaultNAD = "ipvlan-eth0"
		envs[node] = newEnv(t, cfg, ipamtest.PublicCloudPools(), append(objs, build.Node(node, build.Label("kubernetes.io/hostname", node)),
			build.Namespace("default", build.Label("kubernetes.io/metadata.name", "default"))))
	}
	for i, tt := range tests {
		t.Run(tt.node+"/"+tt.pod, func(t *testing.T) {
			e := envs[tt.node]
			e.t = t
			resp := e.mustAdd(addArgs(tt.pod, fmt.Sprint("uid-", i), "eth0"))
			want := &v1.IpamAddResponse{IPs: []v1.IPConfig{{
				Version: 4, Address: tt.wantAddr, IPPool: tt.wantPool, Gateway: tt.wantGW, Nic: "eth0",
			}}}
			if diff := cmp.Diff(want, resp); diff != "" {
				t.Errorf("ADD answer (-want +got):\n%s", diff)
			}
			e.checkInvariants()
		})
	}
	for node, e := range envs {
		for _, pool := range []string{node + "-172", node + "-192"} {
			if n := len(e.records(pool)); n == 0 {
				t.Errorf("pool %s has no record", pool)
			}
		}
	}
}

func TestAddIsIdempotent(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "u1")))

	first := e.mustAdd(addArgs("web", "u1", "eth0"))
	writes, _ := e.store.Stats()
	retry := addArgs("web", "u1", "eth0")
	retry.ContainerID = "another-sandbox"
	second := e.mustAdd(retry)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("retried ADD answered differently (-first +second):\n%s", diff)
	}
	if w, _ := e.store.Stats(); w != writes {
		t.Errorf("retried ADD wrote the pool: %d writes, want %d", w, writes)
	}
	if got := e.records("p"); len(got) != 1 {
		t.Errorf("records %v, want exactly one", got)
	}
	e.checkInvariants()
}

func TestAddMultiNICFromIPPoolsAnnotation(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		wantEth0   string
		wantNet1   string
	}{
		{
			name:       "two pools",
			annotation: `[{"interface":"eth0","ipv4":["master-172"]},{"interface":"net1","ipv4":["master-192"],"cleangateway":true}]`,
			wantEth0:   "172.31.199.185/20", wantNet1: "192.168.0.156/24",
		},
		{
			name:       "one pool for both",
			annotation: `[{"interface":"eth0","ipv4":["master-172"]},{"interface":"net1","ipv4":["master-172"],"cleangateway":true}]`,
			wantEth0:   "172.31.199.185/20", wantNet1: "172.31.199.186/20",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod("multi", "u1", build.Annotation(v2beta1.AnnoPodIPPools, tt.annotation),
				build.Annotation(v2beta1.AnnoMultusNetworks, "kube-system/ipvlan-eth1"))
			cfg := testConfig()
			cfg.ClusterDefaultNAD = "ipvlan-eth0"
			pools := ipamtest.PublicCloudPools()
			if tt.name == "one pool for both" {
				// master-172 serves ipvlan-eth0 only, and net1 comes from ipvlan-eth1.
				pools[0].Spec.MultusName = nil
			}
			e := newEnv(t, cfg, pools, baseObjects(pod))

			eth0 := e.mustAdd(addArgs("multi", "u1", "eth0"))
			if len(eth0.IPs) != 1 || eth0.IPs[0].Address != tt.wantEth0 || eth0.IPs[0].Nic != "eth0" || eth0.IPs[0].Gateway == "" {
				t.Fatalf("eth0 answer %+v", eth0.IPs)
			}
			ep := e.endpoint("default", "multi")
			if ep == nil || len(ep.Status.Current.IPs) != 2 {
				t.Fatalf("endpoint after the eth0 call: %+v", ep)
			}
			if got := deref(ep.Status.Current.IPs[1].IPv4); got != tt.wantNet1 {
				t.Errorf("net1 allocated with eth0: %q, want %q", got, tt.wantNet1)
			}

			writes, _ := e.store.Stats()
			net1 := e.mustAdd(addArgs("multi", "u1", "net1"))
			want := []v1.IPConfig{{Version: 4, Address: tt.wantNet1, IPPool: deref(ep.Status.Current.IPs[1].IPv4Pool), Nic: "net1"}}
			if diff := cmp.Diff(want, net1.IPs); diff != "" {
				t.Errorf("net1 answer (-want +got):\n%s", diff)
			}
			if w, _ := e.store.Stats(); w != writes {
				t.Errorf("net1 call wrote a pool; it must be served from the endpoint")
			}
			e.checkInvariants()
		})
	}
}

// A pod without the ippools annotation gets one interface per call; the
// second interface's call must not be mistaken for a retry of the first
// even when both come from one pool and the cache has not seen the
// endpoint written by the first call yet.
func TestAddSecondNICWithLaggingCache(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	pod := newPod("two", "u1", build.Annotation(v2beta1.AnnoMultusNetworks, "macvlan"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(pod),
		withCache(func(r client.Reader) client.Reader { return hideEndpoints{r} }))

	eth0 := e.mustAdd(addArgs("two", "u1", "eth0"))
	net1 := e.mustAdd(addArgs("two", "u1", "net1"))
	if eth0.IPs[0].Address == net1.IPs[0].Address {
		t.Fatalf("eth0 and net1 both got %s", eth0.IPs[0].Address)
	}
	ep := e.endpoint("default", "two")
	if got := []string{deref(ep.Status.Current.IPs[0].IPv4), deref(ep.Status.Current.IPs[1].IPv4)}; !cmp.Equal(got, []string{eth0.IPs[0].Address, net1.IPs[0].Address}) {
		t.Errorf("endpoint records %v", got)
	}
	if got := e.records("p"); len(got) != 2 {
		t.Errorf("records %v, want two (none released, none leaked)", got)
	}
	// A retry of net1, still through the lagging cache, answers the same.
	again := e.mustAdd(addArgs("two", "u1", "net1"))
	if diff := cmp.Diff(net1, again); diff != "" {
		t.Errorf("retried net1 (-first +retry):\n%s", diff)
	}
	if got := e.records("p"); len(got) != 2 {
		t.Errorf("records after retry %v, want two", got)
	}
	e.checkInvariants()
}

func TestAddRefusals(t *testing.T) {
	full := build.Pool("full", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10"), build.Allocated("10.6.0.10", "default/other", "o1"))
	elsewhere := build.Pool("elsewhere", "10.7.0.0/16", build.Default(), build.IPs("10.7.0.10"), build.NodeName("worker"))
	tests := []struct {
		name     string
		pools    []*v2beta1.SpiderIPPool
		pod      *corev1.Pod
		args     func(*v1.IpamAddArgs)
		opts     []envOption
		status   int
		code     v1.Code
		contains []string
	}{
		{
			name: "terminating pod", pod: newPod("x", "u1", build.DeletedAt(time.Now()), build.Finalizer("test/keep")),
			status: http.StatusGone, code: v1.CodeDeadPod,
			contains: []string{"dead Pod default/x, we cannot allocate IP addresees to it"},
		},
		{
			name: "finished pod", pod: newPod("x", "u1", build.Phase(corev1.PodSucceeded)),
			status: http.StatusGone, code: v1.CodeDeadPod, contains: []string{"dead Pod default/x"},
		},
		{
			name: "UID mismatch", pod: newPod("x", "u-new"),
			status: http.StatusNotFound, code: v1.CodeNotFound,
			contains: []string{"pod default/x has UID u-new, not u1"},
		},
		{
			name: "unknown pod", pod: newPod("y", "u1"),
			status: http.StatusNotFound, code: v1.CodeNotFound, contains: []string{"pod default/x not found"},
		},
		{
			name: "pod of another node", pod: newPod("x", "u1", build.OnNode("worker")),
			status: http.StatusBadRequest, code: v1.CodeInvalidRequest, contains: []string{"runs on node worker"},
		},
		{
			name: "missing fields", pod: newPod("x", "u1"), args: func(a *v1.IpamAddArgs) { a.IfName, a.ContainerID = "", "" },
			status: http.StatusBadRequest, code: v1.CodeInvalidRequest, contains: []string{"missing required field(s): containerID, ifName"},
		},
		{
			name: "pool exhausted", pools: []*v2beta1.SpiderIPPool{full}, pod: newPod("x", "u1"),
			status: http.StatusInternalServerError, code: v1.CodePoolExhausted,
			contains: []string{"failed to allocate any IPv4 IP address to NIC eth0 from IPPools [full]", "all IP addresses used out"},
		},
		{
			name: "no candidate", pools: []*v2beta1.SpiderIPPool{elsewhere}, pod: newPod("x", "u1"),
			status: http.StatusInternalServerError, code: v1.CodeNoCandidatePool,
			contains: []string{"no IPPool available, all IPv4 IPPools [elsewhere] of eth0 filtered out", "elsewhere: "},
		},
		{
			name: "unknown pool in annotation", pod: newPod("x", "u1", build.Annotation(v2beta1.AnnoPodIPPool, `{"ipv4":["nope"]}`)),
			status: http.StatusInternalServerError, code: v1.CodeNoCandidatePool, contains: []string{"nope"},
		},
		{
			name: "bad annotation", pod: newPod("x", "u1", build.Annotation(v2beta1.AnnoPodIPPools, `[{"ipv4":["a"]}`)),
			status: http.StatusBadRequest, code: v1.CodeInvalidRequest, contains: []string{v2beta1.AnnoPodIPPools},
		},
		{
			name: "not ready", pod: newPod("x", "u1"), opts: []envOption{notReady()},
			status: http.StatusServiceUnavailable, code: v1.CodeNotReady, contains: []string{"not ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := tt.pools
			if pools == nil {
				pools = []*v2beta1.SpiderIPPool{build.Pool("p", "10.8.0.0/16", build.Default(), build.IPs("10.8.0.10"))}
			}
			e := newEnv(t, testConfig(), pools, baseObjects(tt.pod), tt.opts...)
			args := addArgs("x", "u1", "eth0")
			if tt.args != nil {
				tt.args(&args)
			}
			status, apiErr := e.do(http.MethodPost, v1.PathIPAMIP, args, nil)
			if apiErr == nil {
				t.Fatalf("ADD succeeded")
			}
			if status != tt.status || apiErr.Code != tt.code {
				t.Errorf("got %d %s, want %d %s (%s)", status, apiErr.Code, tt.status, tt.code, apiErr.Message)
			}
			for _, s := range tt.contains {
				if !strings.Contains(apiErr.Message, s) {
					t.Errorf("message %q lacks %q", apiErr.Message, s)
				}
			}
			if e.endpoint("default", "x") != nil {
				t.Errorf("a refused ADD wrote an endpoint")
			}
			e.checkInvariants()
		})
	}
}

func TestAddBadBodies(t *testing.T) {
	e := newEnv(t, testConfig(), nil, baseObjects())
	tests := map[string][]byte{
		"not JSON": []byte("{"),
		"empty":    nil,
		"too big":  []byte(`{"containerID":"` + strings.Repeat("x", maxBodyBytes) + `"}`),
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			var b any = body
			if body == nil {
				b = []byte{}
			}
			status, apiErr := e.do(http.MethodPost, v1.PathIPAMIP, b, nil)
			if status != http.StatusBadRequest || apiErr == nil || apiErr.Code != v1.CodeInvalidRequest {
				t.Errorf("got %d %+v", status, apiErr)
			}
		})
	}
}

// The endpoint records what the interface was given, its owner
// (ReplicaSet -> Deployment, Job -> CronJob) and the pod reference.
func TestAddPersistsEndpoint(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"),
		build.Route("10.7.0.0/16", "10.6.0.254"))
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nginx-4653bc4f24", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{build.ControllerRef("apps/v1", "Deployment", "nginx", "deploy-uid")}}}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backup-2901", UID: "job-uid",
		OwnerReferences: []metav1.OwnerReference{build.ControllerRef("batch/v1", "CronJob", "backup", "cron-uid")}}}
	tests := []struct {
		name             string
		pod              *corev1.Pod
		wantKind, wantCt string
	}{
		{"deployment", newPod("nginx-4653bc4f24-rswak", "u1", build.ControlledBy("apps/v1", "ReplicaSet", "nginx-4653bc4f24", "rs-uid"),
			build.Annotation(v2beta1.AnnoPodRoutes, `[{"dst":"172.10.40.0/24","gw":"10.6.0.253"},{"dst":"172.10.41.0/24","gw":"192.168.1.1"}]`)),
			"Deployment", "nginx"},
		{"cronjob", newPod("backup-2901-abcde", "u1", build.ControlledBy("batch/v1", "Job", "backup-2901", "job-uid")), "CronJob", "backup"},
		{"orphan replicaset", newPod("lone-abcde", "u1", build.ControlledBy("apps/v1", "ReplicaSet", "lone", "lone-uid")), "ReplicaSet", "lone"},
		{"bare pod", newPod("bare", "u1"), "Pod", "bare"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(tt.pod, rs, job))
			resp := e.mustAdd(addArgs(tt.pod.Name, "u1", "eth0"))
			ep := e.endpoint("default", tt.pod.Name)
			if ep == nil {
				t.Fatal("no endpoint")
			}
			wantRoutes := []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "10.6.0.254"}}
			wantRespRoutes := []v1.Route{{IfName: "eth0", Dst: "10.7.0.0/16", Gw: "10.6.0.254"}}
			if tt.name == "deployment" {
				// Only the annotation route whose gateway is in the NIC's subnet.
				wantRoutes = append(wantRoutes, v2beta1.Route{Dst: "172.10.40.0/24", Gw: "10.6.0.253"})
				wantRespRoutes = append(wantRespRoutes, v1.Route{IfName: "eth0", Dst: "172.10.40.0/24", Gw: "10.6.0.253"})
			}
			want := v2beta1.WorkloadEndpointStatus{
				Current: v2beta1.PodIPAllocation{UID: "u1", Node: "master", IPs: []v2beta1.IPAllocationDetail{{
					NIC: "eth0", IPv4: new("10.6.0.10/16"), IPv4Pool: new("p"), IPv4Gateway: new("10.6.0.1"),
					CleanGateway: new(false), Routes: wantRoutes,
				}}},
				OwnerControllerType: tt.wantKind, OwnerControllerName: tt.wantCt,
			}
			if diff := cmp.Diff(want, ep.Status); diff != "" {
				t.Errorf("endpoint status (-want +got):\n%s", diff)
			}
			wantRefs := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: tt.pod.Name, UID: "u1",
				Controller: new(false), BlockOwnerDeletion: new(false)}}
			if diff := cmp.Diff(wantRefs, ep.OwnerReferences); diff != "" {
				t.Errorf("owner references (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{v2beta1.Finalizer}, ep.Finalizers); diff != "" {
				t.Errorf("finalizers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantRespRoutes, resp.Routes); diff != "" {
				t.Errorf("answer routes (-want +got):\n%s", diff)
			}
		})
	}
}

// With ipam.enableStatefulSet a StatefulSet pod's endpoint has no owner
// reference: it must survive the pod.
func TestAddStatefulSetEndpointHasNoOwner(t *testing.T) {
	cfg := testConfig()
	cfg.EnableStatefulSet = true
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	pod := newPod("db-0", "u1", build.ControlledBy("apps/v1", "StatefulSet", "db", "sts-db"))
	sts := build.StatefulSet("default", "db", build.UID("sts-db"), build.Replicas(1))
	e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool}, baseObjects(pod, sts))
	e.mustAdd(addArgs("db-0", "u1", "eth0"))
	ep := e.endpoint("default", "db-0")
	if len(ep.OwnerReferences) != 0 || ep.Status.OwnerControllerType != "StatefulSet" || ep.Status.OwnerControllerName != "db" {
		t.Errorf("endpoint owners %v, controller %s/%s", ep.OwnerReferences, ep.Status.OwnerControllerType, ep.Status.OwnerControllerName)
	}
}

// An endpoint left by an earlier incarnation of the pod (same name, other
// UID) is retired: its records are released and the new pod starts afresh.
func TestAddReplacesStaleEndpoint(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
		build.Allocated("10.6.0.10", "default/web", "old"), build.Allocated("10.6.0.11", "default/keep", "k"))
	stale := build.Endpoint("default", "web", build.Finalizer(v2beta1.Finalizer), build.PodUID("old"), build.OnNode("worker"),
		build.IPv4("eth0", "10.6.0.10/16", "p"), build.TopController("Pod", "web"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "new"), stale))
	resp := e.mustAdd(addArgs("web", "new", "eth0"))
	if resp.IPs[0].Address != "10.6.0.10/16" {
		t.Errorf("new pod got %s, want the freed 10.6.0.10/16", resp.IPs[0].Address)
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.10": "new", "10.6.0.11": "k"}, e.records("p")); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	ep := e.endpoint("default", "web")
	if ep.Status.Current.UID != "new" || ep.Status.Current.Node != "master" || len(ep.Status.Current.IPs) != 1 {
		t.Errorf("endpoint %+v", ep.Status.Current)
	}
	e.checkInvariants()
}

// If the endpoint cannot be written, the addresses just allocated are
// released: nothing leaks.
func TestAddReleasesWhenEndpointWriteFails(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	boom := errors.New("etcd is on fire")
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "u1")),
		withInterceptor(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*v2beta1.SpiderEndpoint); ok {
				return boom
			}
			return c.Create(ctx, obj, opts...)
		}}))
	_, apiErr := e.add(addArgs("web", "u1", "eth0"))
	if apiErr == nil || apiErr.Code != v1.CodeInternal || !strings.Contains(apiErr.Message, boom.Error()) {
		t.Fatalf("got %+v", apiErr)
	}
	if got := e.records("p"); len(got) != 0 {
		t.Errorf("records %v left after the failed ADD", got)
	}
	e.checkInvariants()
}

// Endpoint writes that keep losing races give up with Conflict and leave
// no record behind.
func TestAddGivesUpOnEndlessConflicts(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("web", "u1")),
		withInterceptor(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*v2beta1.SpiderEndpoint); ok {
				return apierrors.NewAlreadyExists(v2beta1.Resource("spiderendpoints"), obj.GetName())
			}
			return c.Create(ctx, obj, opts...)
		}}))
	_, apiErr := e.add(addArgs("web", "u1", "eth0"))
	if apiErr == nil || apiErr.Code != v1.CodeConflict {
		t.Fatalf("got %+v", apiErr)
	}
	if got := e.records("p"); len(got) != 0 {
		t.Errorf("records %v left after the failed ADD", got)
	}
}

// Many pods at once on one pool: every one gets its own address.
func TestAddConcurrentPods(t *testing.T) {
	const pods = 24
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.200"))
	var objs []client.Object
	for i := range pods {
		objs = append(objs, newPod(fmt.Sprint("pod-", i), fmt.Sprint("u", i)))
	}
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(objs...))
	e.store.SetConflictRate(0.3, 7)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]string{}
	)
	for i := range pods {
		wg.Go(func() {
			for range 2 { // each pod's ADD is retried once
				resp, apiErr := e.add(addArgs(fmt.Sprint("pod-", i), fmt.Sprint("u", i), "eth0"))
				if apiErr != nil {
					t.Errorf("pod-%d: %v", i, apiErr)
					return
				}
				mu.Lock()
				if other, dup := seen[resp.IPs[0].Address]; dup && other != fmt.Sprint(i) {
					t.Errorf("%s given to pod-%s and pod-%d", resp.IPs[0].Address, other, i)
				}
				seen[resp.IPs[0].Address] = fmt.Sprint(i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got := len(e.records("p")); got != pods {
		t.Errorf("%d records, want %d", got, pods)
	}
	e.checkInvariants()
}

func TestAddDualStackAndDetectionFlags(t *testing.T) {
	cfg := testConfig()
	cfg.EnableIPv6 = true
	cfg.EnableIPConflictDetection = true
	cfg.EnableGatewayDetection = true
	pools := []*v2beta1.SpiderIPPool{
		build.Pool("v4", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1")),
		build.Pool("v6", "fd00:6::/64", build.Default(), build.IPs("fd00:6::10-fd00:6::20")),
	}
	e := newEnv(t, cfg, pools, baseObjects(newPod("web", "u1")))
	resp := e.mustAdd(addArgs("web", "u1", "eth0"))
	want := []v1.IPConfig{
		{Version: 4, Address: "10.6.0.10/16", IPPool: "v4", Gateway: "10.6.0.1", Nic: "eth0",
			EnableGatewayDetection: true, EnableIPConflictDetection: true},
		// No gateway, so nothing to probe.
		{Version: 6, Address: "fd00:6::10/64", IPPool: "v6", Nic: "eth0", EnableIPConflictDetection: true},
	}
	if diff := cmp.Diff(want, resp.IPs); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	ep := e.endpoint("default", "web")
	if d := ep.Status.Current.IPs[0]; deref(d.IPv4) != "10.6.0.10/16" || deref(d.IPv6) != "fd00:6::10/64" || deref(d.IPv6Pool) != "v6" {
		t.Errorf("endpoint entry %+v", d)
	}
	if apiErr := e.del("default", "web", "u1", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	if len(e.records("v4"))+len(e.records("v6")) != 0 {
		t.Errorf("records left: %v %v", e.records("v4"), e.records("v6"))
	}
	e.checkInvariants()
}
