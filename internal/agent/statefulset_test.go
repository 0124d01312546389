package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// staleEndpoint is the endpoint an earlier incarnation (UID old, on node
// worker) of StatefulSet pod default/name left behind, holding the
// addresses ips give it.
func staleEndpoint(name, old string, ips ...build.Option) *v2beta1.SpiderEndpoint {
	meta := []build.Option{build.Finalizer(v2beta1.Finalizer), build.PodUID(old), build.OnNode("worker"),
		build.TopController(workload.KindStatefulSet, "web")}
	return build.Endpoint("default", name, append(meta, ips...)...)
}

// eth0In gives an endpoint's eth0 the address addr of pool, with pool p's
// gateway 10.6.0.1.
func eth0In(pool, addr string) build.Option {
	return func(ep metav1.Object) {
		build.IPv4("eth0", addr, pool)(ep)
		build.IPv4Gateway("eth0", "10.6.0.1")(ep)
	}
}

// webSet is the StatefulSet default/web of replicas, with UID sts-web.
func webSet(replicas int32) *appsv1.StatefulSet {
	return build.StatefulSet("default", "web", build.UID("sts-web"), build.Replicas(replicas))
}

// The whole life of a StatefulSet pod on one agent (docs/design/behaviour.md#statefulset-fixed-ips, #release-on-del): the
// DEL of web-0 keeps its address, the recreated web-0 (new UID) gets it
// back with the pool record rewritten, a retried ADD changes nothing and a
// late DEL of the old incarnation frees nothing.
func TestAddStatefulSetNewIncarnationKeepsAddress(t *testing.T) {
	cfg := testConfig()
	cfg.EnableStatefulSet = true
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"))
	sts := webSet(2)
	web0 := newPod("web-0", "old", build.ControlledBy("apps/v1", "StatefulSet", "web", string(sts.UID)))
	web1 := newPod("web-1", "w1", build.ControlledBy("apps/v1", "StatefulSet", "web", string(sts.UID)))
	// filler holds the lowest address until web-0 has its own: once it is
	// freed, a fresh allocation for the new web-0 would take that one.
	filler := newPod("filler", "f")
	e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool}, baseObjects(sts, web0, web1, filler))

	e.mustAdd(addArgs("filler", "f", "eth0"))
	first := e.mustAdd(addArgs("web-0", "old", "eth0"))
	e.mustAdd(addArgs("web-1", "w1", "eth0"))
	if apiErr := e.del("default", "filler", "f", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	if apiErr := e.del("default", "web-0", "old", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	ctx := context.Background()
	if err := e.kube.Delete(ctx, web0); err != nil {
		t.Fatal(err)
	}
	reborn := newPod("web-0", "new", build.ControlledBy("apps/v1", "StatefulSet", "web", string(sts.UID)))
	if err := e.kube.Create(ctx, reborn); err != nil {
		t.Fatal(err)
	}

	second := e.mustAdd(addArgs("web-0", "new", "eth0"))
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("new incarnation's answer (-old +new):\n%s", diff)
	}
	addr := strings.TrimSuffix(first.IPs[0].Address, "/16")
	if got := e.records("p")[addr]; got != "new" {
		t.Errorf("record of %s held by %q, want the new UID; records %v", addr, got, e.records("p"))
	}
	for a, uid := range e.records("p") {
		if uid == "old" {
			t.Errorf("old UID still holds %s", a)
		}
	}
	ep := e.endpoint("default", "web-0")
	if ep.Status.Current.UID != "new" || ep.Status.Current.Node != "master" || len(ep.OwnerReferences) != 0 {
		t.Errorf("endpoint %+v owners %v", ep.Status.Current, ep.OwnerReferences)
	}

	// A retry answers from the endpoint without writing a pool.
	writes, _ := e.store.Stats()
	if diff := cmp.Diff(second, e.mustAdd(addArgs("web-0", "new", "eth0"))); diff != "" {
		t.Errorf("retried ADD (-first +retry):\n%s", diff)
	}
	if w, _ := e.store.Stats(); w != writes {
		t.Errorf("retried ADD wrote pools: %d writes, want %d", w, writes)
	}

	// The old incarnation's late DEL frees nothing of the new one.
	before := e.records("p")
	if apiErr := e.del("default", "web-0", "old", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	if diff := cmp.Diff(before, e.records("p")); diff != "" {
		t.Errorf("late DEL of the old UID changed records (-before +after):\n%s", diff)
	}
	if ep := e.endpoint("default", "web-0"); ep == nil || ep.Status.Current.UID != "new" {
		t.Errorf("endpoint after the late DEL: %+v", ep)
	}
	e.checkInvariants()
}

// What an ADD of the new incarnation web-0 (UID new) does with the
// endpoint of the old one (UID old, 10.6.0.15 of pool p).
func TestAddStatefulSetTakeover(t *testing.T) {
	p := func(opts ...build.Option) *v2beta1.SpiderIPPool {
		defaults := []build.Option{build.Default(), build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1")}
		return build.Pool("p", "10.6.0.0/16", append(defaults, opts...)...)
	}
	q := build.Pool("q", "10.7.0.0/16", build.IPs("10.7.0.10-10.7.0.20"))
	tests := []struct {
		name        string
		enabled     bool
		owner       string // kind of the pod's controller; "" for none
		pool        *v2beta1.SpiderIPPool
		annotations map[string]string
		wantAddr    string
		wantP       map[string]string
		wantQ       map[string]string
	}{
		{
			name: "keeps the address", enabled: true, owner: workload.KindStatefulSet,
			pool: p(build.Allocated("10.6.0.15", "default/web-0", "old")), wantAddr: "10.6.0.15/16",
			wantP: map[string]string{"10.6.0.15": "new"}, wantQ: map[string]string{},
		},
		{
			name: "feature off", owner: workload.KindStatefulSet,
			pool: p(build.Allocated("10.6.0.15", "default/web-0", "old")), wantAddr: "10.6.0.10/16",
			wantP: map[string]string{"10.6.0.10": "new"}, wantQ: map[string]string{},
		},
		{
			name: "not a StatefulSet pod", enabled: true,
			pool: p(build.Allocated("10.6.0.15", "default/web-0", "old")), wantAddr: "10.6.0.10/16",
			wantP: map[string]string{"10.6.0.10": "new"}, wantQ: map[string]string{},
		},
		{
			name: "pool annotation changed", enabled: true, owner: workload.KindStatefulSet,
			pool:        p(build.Allocated("10.6.0.15", "default/web-0", "old")),
			annotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["q"]}`}, wantAddr: "10.7.0.10/16",
			wantP: map[string]string{}, wantQ: map[string]string{"10.7.0.10": "new"},
		},
		{
			name: "recorded pool filtered out on this node", enabled: true, owner: workload.KindStatefulSet,
			pool:        p(build.NodeName("worker"), build.Allocated("10.6.0.15", "default/web-0", "old")),
			annotations: map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["p","q"]}`}, wantAddr: "10.7.0.10/16",
			wantP: map[string]string{}, wantQ: map[string]string{"10.7.0.10": "new"},
		},
		{
			name: "address lost to another pod", enabled: true, owner: workload.KindStatefulSet,
			pool: p(build.Allocated("10.6.0.15", "default/thief", "thief")), wantAddr: "10.6.0.10/16",
			wantP: map[string]string{"10.6.0.10": "new", "10.6.0.15": "thief"}, wantQ: map[string]string{},
		},
		{
			name: "record already moved by an earlier attempt", enabled: true, owner: workload.KindStatefulSet,
			pool: p(build.Allocated("10.6.0.15", "default/web-0", "new")), wantAddr: "10.6.0.15/16",
			wantP: map[string]string{"10.6.0.15": "new"}, wantQ: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.EnableStatefulSet = tt.enabled
			opts := []build.Option{build.Annotations(tt.annotations)}
			if tt.owner != "" {
				opts = append(opts, build.ControlledBy("apps/v1", tt.owner, "web", "sts-web"))
			}
			ep := staleEndpoint("web-0", "old", eth0In("p", "10.6.0.15/16"))
			e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{tt.pool, q.DeepCopy()},
				baseObjects(newPod("web-0", "new", opts...), webSet(2), ep))

			resp := e.mustAdd(addArgs("web-0", "new", "eth0"))
			if len(resp.IPs) != 1 || resp.IPs[0].Address != tt.wantAddr {
				t.Errorf("answer %+v, want %s", resp.IPs, tt.wantAddr)
			}
			if diff := cmp.Diff(tt.wantP, e.records("p")); diff != "" {
				t.Errorf("records of p (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantQ, e.records("q")); diff != "" {
				t.Errorf("records of q (-want +got):\n%s", diff)
			}
			got := e.endpoint("default", "web-0")
			if got == nil || got.Status.Current.UID != "new" || got.Status.Current.Node != "master" ||
				len(got.Status.Current.IPs) != 1 || deref(got.Status.Current.IPs[0].IPv4) != tt.wantAddr {
				t.Errorf("endpoint %+v", got)
			}
			e.checkInvariants()
		})
	}
}

// With ipam.spidernet.io/ippools the first NIC's ADD takes over every
// interface; the second NIC's ADD is answered from the endpoint.
func TestAddStatefulSetTakeoverMultiNIC(t *testing.T) {
	cfg := testConfig()
	cfg.EnableStatefulSet = true
	p := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.15", "default/web-0", "old"))
	q := build.Pool("q", "10.7.0.0/16", build.IPs("10.7.0.10-10.7.0.20"), build.Allocated("10.7.0.15", "default/web-0", "old"))
	pod := newPod("web-0", "new", build.ControlledBy("apps/v1", workload.KindStatefulSet, "web", "sts-web"),
		build.Annotation(v2beta1.AnnoPodIPPools, `[{"interface":"eth0","ipv4":["p"]},{"interface":"net1","ipv4":["q"]}]`))
	net1 := build.IPv4("net1", "10.7.0.15/16", "q")
	ep := staleEndpoint("web-0", "old", eth0In("p", "10.6.0.15/16"), net1)
	e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{p, q}, baseObjects(pod, webSet(1), ep))

	if resp := e.mustAdd(addArgs("web-0", "new", "eth0")); resp.IPs[0].Address != "10.6.0.15/16" {
		t.Errorf("eth0 answer %+v", resp.IPs)
	}
	writes, _ := e.store.Stats()
	if resp := e.mustAdd(addArgs("web-0", "new", "net1")); resp.IPs[0].Address != "10.7.0.15/16" {
		t.Errorf("net1 answer %+v", resp.IPs)
	}
	if w, _ := e.store.Stats(); w != writes {
		t.Errorf("net1 ADD wrote pools")
	}
	if diff := cmp.Diff(map[string]string{"10.6.0.15": "new"}, e.records("p")); diff != "" {
		t.Errorf("records of p (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"10.7.0.15": "new"}, e.records("q")); diff != "" {
		t.Errorf("records of q (-want +got):\n%s", diff)
	}
	e.checkInvariants()
}

// If the endpoint cannot be rewritten the records go back to the old UID,
// so that endpoint and pools still agree; a conflict is retried.
func TestAddStatefulSetTakeoverEndpointWriteFails(t *testing.T) {
	tests := []struct {
		name     string
		failures int // endpoint updates that fail before one succeeds
		err      error
		wantCode v1.Code
		wantP    map[string]string
	}{
		{name: "hard failure", failures: 1 << 10, err: errors.New("etcd is on fire"), wantCode: v1.CodeInternal,
			wantP: map[string]string{"10.6.0.15": "old"}},
		{name: "one conflict", failures: 1, err: apierrors.NewConflict(v2beta1.Resource("spiderendpoints"), "web-0", errors.New("stale")),
			wantP: map[string]string{"10.6.0.15": "new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.EnableStatefulSet = true
			pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
				build.Allocated("10.6.0.15", "default/web-0", "old"))
			pod := newPod("web-0", "new", build.ControlledBy("apps/v1", workload.KindStatefulSet, "web", "sts-web"))
			failures := tt.failures
			e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool},
				baseObjects(pod, webSet(1), staleEndpoint("web-0", "old", eth0In("p", "10.6.0.15/16"))),
				withInterceptor(interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					if _, ok := obj.(*v2beta1.SpiderEndpoint); ok && failures > 0 {
						failures--
						return tt.err
					}
					return c.Update(ctx, obj, opts...)
				}}))
			resp, apiErr := e.add(addArgs("web-0", "new", "eth0"))
			switch {
			case tt.wantCode != "" && (apiErr == nil || apiErr.Code != tt.wantCode):
				t.Fatalf("got %+v, want code %s", apiErr, tt.wantCode)
			case tt.wantCode == "" && apiErr != nil:
				t.Fatal(apiErr)
			case tt.wantCode == "" && resp.IPs[0].Address != "10.6.0.15/16":
				t.Errorf("answer %+v", resp.IPs)
			}
			if diff := cmp.Diff(tt.wantP, e.records("p")); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			e.checkInvariants()
		})
	}
}

// The old incarnation's DEL racing the new one's ADD never frees the
// address the new pod takes over, whichever runs first.
func TestAddStatefulSetTakeoverRacesOldDel(t *testing.T) {
	for i := range 20 {
		cfg := testConfig()
		cfg.EnableStatefulSet = true
		pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
			build.Allocated("10.6.0.15", "default/web-0", "old"))
		pod := newPod("web-0", "new", build.ControlledBy("apps/v1", workload.KindStatefulSet, "web", "sts-web"))
		e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool},
			baseObjects(pod, webSet(1), staleEndpoint("web-0", "old", eth0In("p", "10.6.0.15/16"))))
		var (
			wg     sync.WaitGroup
			delErr *v1.Error
			resp   *v1.IpamAddResponse
			addErr *v1.Error
		)
		wg.Go(func() { delErr = e.del("default", "web-0", "old", "eth0") })
		wg.Go(func() { resp, addErr = e.add(addArgs("web-0", "new", "eth0")) })
		wg.Wait()
		if delErr != nil || addErr != nil {
			t.Fatalf("round %d: DEL %v, ADD %v", i, delErr, addErr)
		}
		if resp.IPs[0].Address != "10.6.0.15/16" {
			t.Errorf("round %d: answer %+v", i, resp.IPs)
		}
		if diff := cmp.Diff(map[string]string{"10.6.0.15": "new"}, e.records("p")); diff != "" {
			t.Errorf("round %d: records (-want +got):\n%s", i, diff)
		}
	}
}

// Dual stack: an interface keeps both addresses or neither. When the IPv6
// record was lost, the IPv4 address moved to the new UID is released again
// and the interface is allocated afresh.
func TestAddStatefulSetTakeoverDualStack(t *testing.T) {
	tests := []struct {
		name             string
		v6Holder         string
		wantV4, wantV6   string
		wantV4R, wantV6R map[string]string
	}{
		{
			name: "both kept", v6Holder: "old", wantV4: "10.6.0.15/16", wantV6: "fd00:6::15/64",
			wantV4R: map[string]string{"10.6.0.15": "new"}, wantV6R: map[string]string{"fd00:6::15": "new"},
		},
		{
			name: "IPv6 lost", v6Holder: "thief", wantV4: "10.6.0.10/16", wantV6: "fd00:6::10/64",
			wantV4R: map[string]string{"10.6.0.10": "new"}, wantV6R: map[string]string{"fd00:6::10": "new", "fd00:6::15": "thief"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.EnableIPv6 = true
			cfg.EnableStatefulSet = true
			pools := []*v2beta1.SpiderIPPool{
				build.Pool("v4", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
					build.Allocated("10.6.0.15", "default/web-0", "old")),
				build.Pool("v6", "fd00:6::/64", build.Default(), build.IPs("fd00:6::10-fd00:6::20"),
					build.Allocated("fd00:6::15", "default/x", tt.v6Holder)),
			}
			ep := staleEndpoint("web-0", "old", build.IPv4("eth0", "10.6.0.15/16", "v4"), build.IPv6("eth0", "fd00:6::15/64", "v6"))
			pod := newPod("web-0", "new", build.ControlledBy("apps/v1", workload.KindStatefulSet, "web", "sts-web"))
			e := newEnv(t, cfg, pools, baseObjects(pod, webSet(1), ep))

			resp := e.mustAdd(addArgs("web-0", "new", "eth0"))
			if len(resp.IPs) != 2 || resp.IPs[0].Address != tt.wantV4 || resp.IPs[1].Address != tt.wantV6 {
				t.Errorf("answer %+v, want %s and %s", resp.IPs, tt.wantV4, tt.wantV6)
			}
			if diff := cmp.Diff(tt.wantV4R, e.records("v4")); diff != "" {
				t.Errorf("IPv4 records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantV6R, e.records("v6")); diff != "" {
				t.Errorf("IPv6 records (-want +got):\n%s", diff)
			}
			e.checkInvariants()
		})
	}
}

// An interface whose pools come from its own CNI configuration (not known
// during eth0's ADD) keeps its address as long as the recorded pool passes
// the filters; its own ADD answers from the endpoint.
func TestAddStatefulSetTakeoverNICFromCNIConfig(t *testing.T) {
	cfg := testConfig()
	cfg.EnableStatefulSet = true
	p := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"),
		build.Allocated("10.6.0.15", "default/web-0", "old"))
	q := build.Pool("q", "10.7.0.0/16", build.IPs("10.7.0.10-10.7.0.20"), build.Allocated("10.7.0.15", "default/web-0", "old"))
	pod := newPod("web-0", "new", build.ControlledBy("apps/v1", workload.KindStatefulSet, "web", "sts-web"))
	net1 := build.IPv4("net1", "10.7.0.15/16", "q")
	e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{p, q}, baseObjects(pod, webSet(1),
		staleEndpoint("web-0", "old", eth0In("p", "10.6.0.15/16"), net1)))

	if resp := e.mustAdd(addArgs("web-0", "new", "eth0")); resp.IPs[0].Address != "10.6.0.15/16" {
		t.Errorf("eth0 answer %+v", resp.IPs)
	}
	args := addArgs("web-0", "new", "net1")
	args.DefaultIPv4IPPool = []string{"q"}
	if resp := e.mustAdd(args); resp.IPs[0].Address != "10.7.0.15/16" {
		t.Errorf("net1 answer %+v", resp.IPs)
	}
	if diff := cmp.Diff(map[string]string{"10.7.0.15": "new"}, e.records("q")); diff != "" {
		t.Errorf("records of q (-want +got):\n%s", diff)
	}
	e.checkInvariants()
}
