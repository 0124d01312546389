package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// testEnv is an agent Server on a real unix socket, over ipamtest's store
// and a fake API.
type testEnv struct {
	t       *testing.T
	store   *ipamtest.Store
	kube    client.WithWatch
	srv     *Server
	metrics *Metrics
	http    *http.Client
}

// envOption tweaks what newEnv builds.
type envOption func(*envSetup)

type envSetup struct {
	funcs     interceptor.Funcs
	wrapCache func(client.Reader) client.Reader
	notReady  bool
}

// withInterceptor routes the fake API's calls through funcs.
func withInterceptor(funcs interceptor.Funcs) envOption {
	return func(s *envSetup) { s.funcs = funcs }
}

// withCache wraps the cache reader, e.g. to make it lag.
func withCache(wrap func(client.Reader) client.Reader) envOption {
	return func(s *envSetup) { s.wrapCache = wrap }
}

// notReady leaves the server unsynced.
func notReady() envOption { return func(s *envSetup) { s.notReady = true } }

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := ipblockv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// testConfig is the configuration of the public-cloud guides on node
// master: the chart's defaults (both families on, the guides' pools IPv4
// only) with the guides' --set ipam.enableStatefulSet=false.
func testConfig() Config {
	cfg := DefaultConfig("master")
	cfg.EnableStatefulSet = false
	return cfg
}

func newEnv(t *testing.T, cfg Config, pools []*v2beta1.SpiderIPPool, objs []client.Object, opts ...envOption) *testEnv {
	t.Helper()
	var setup envSetup
	for _, o := range opts {
		o(&setup)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	kube := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithInterceptorFuncs(setup.funcs).
		WithIndex(&v2beta1.SpiderEndpoint{}, endpointUIDIndex, indexEndpointUID).Build()
	store := ipamtest.NewStore(pools...)
	metrics := NewMetrics(MetricsOptions{Debug: true})
	metrics.CollectPools(store)
	var cache client.Reader = kube
	if setup.wrapCache != nil {
		cache = setup.wrapCache(kube)
	}
	// Wired as Run wires production: the conflict quarantine shared by server and core.
	if err := cfg.complete(); err != nil {
		t.Fatal(err)
	}
	icfg := cfg.ipamConfig()
	icfg.Quarantine = ipam.NewQuarantine(cfg.ConflictQuarantine)
	observed := metrics.ObserveStore(store)
	srv, err := NewServer(cfg, Deps{Cache: cache, Live: kube, IPAM: ipam.New(observed, icfg), Store: observed, Metrics: metrics, Quarantine: icfg.Quarantine})
	if err != nil {
		t.Fatal(err)
	}
	if !setup.notReady {
		srv.SetReady()
	}

	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	httpc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(httpc.CloseIdleConnections)
	return &testEnv{t: t, store: store, kube: kube, srv: srv, metrics: metrics, http: httpc}
}

// do sends a request over the socket and decodes a 200 answer into out
// (when not nil) or the error body.
func (e *testEnv) do(method, path string, body, out any) (int, *v1.Error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://agent"+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr v1.Error
		if err := json.Unmarshal(raw, &apiErr); err != nil {
			e.t.Fatalf("%s %s: status %d with undecodable body %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, &apiErr
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

func (e *testEnv) add(args v1.IpamAddArgs) (*v1.IpamAddResponse, *v1.Error) {
	e.t.Helper()
	var resp v1.IpamAddResponse
	_, apiErr := e.do(http.MethodPost, v1.PathIPAMIP, args, &resp)
	if apiErr != nil {
		return nil, apiErr
	}
	return &resp, nil
}

// mustAdd allocates and fails the test on error.
func (e *testEnv) mustAdd(args v1.IpamAddArgs) *v1.IpamAddResponse {
	e.t.Helper()
	resp, apiErr := e.add(args)
	if apiErr != nil {
		e.t.Fatalf("ADD %s/%s %s: %v", args.PodNamespace, args.PodName, args.IfName, apiErr)
	}
	return resp
}

func (e *testEnv) del(ns, name, uid, ifName string) *v1.Error {
	e.t.Helper()
	_, apiErr := e.do(http.MethodDelete, v1.PathIPAMIP, v1.IpamDelArgs{
		ContainerID: "c-" + uid, IfName: ifName, PodNamespace: ns, PodName: name, PodUID: uid,
	}, nil)
	return apiErr
}

func (e *testEnv) workloadEndpoint(ns, name string) (*v1.WorkloadEndpoint, int, *v1.Error) {
	e.t.Helper()
	var we v1.WorkloadEndpoint
	q := url.Values{"podNamespace": {ns}, "podName": {name}}
	status, apiErr := e.do(http.MethodGet, v1.PathWorkloadEndpoint+"?"+q.Encode(), nil, &we)
	return &we, status, apiErr
}

// endpoint returns the SpiderEndpoint ns/name, or nil.
func (e *testEnv) endpoint(ns, name string) *v2beta1.SpiderEndpoint {
	e.t.Helper()
	ep := &v2beta1.SpiderEndpoint{}
	err := e.kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ep)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return ep
}

// records returns the records of pool: address -> pod UID.
func (e *testEnv) records(pool string) map[string]string {
	e.t.Helper()
	p := e.store.Pool(pool)
	if p == nil {
		e.t.Fatalf("no pool %q", pool)
	}
	allocs, err := p.Status.Allocations()
	if err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string]string, len(allocs))
	for addr, a := range allocs {
		out[addr] = a.PodUID
	}
	return out
}

// checkInvariants asserts the IPAM invariants over every pool.
func (e *testEnv) checkInvariants() {
	e.t.Helper()
	pools, err := e.store.Pools(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ipamtest.CheckInvariants(pools); err != nil {
		e.t.Fatalf("invariants: %v", err)
	}
}

// addArgs is an ADD of ifName for pod default/name with UID uid.
func addArgs(name, uid, ifName string) v1.IpamAddArgs {
	return v1.IpamAddArgs{
		ContainerID: "c-" + uid, IfName: ifName, NetNamespace: "/var/run/netns/" + name,
		PodNamespace: "default", PodName: name, PodUID: uid,
	}
}

// newPod is the pod default/name with UID uid and label app=name, pending on node master where the
// tests' agent runs; opts change the rest.
func newPod(name, uid string, opts ...build.Option) *corev1.Pod {
	defaults := []build.Option{build.UID(uid), build.Label("app", name), build.OnNode("master"), build.Phase(corev1.PodPending)}
	return build.Pod("default", name, append(defaults, opts...)...)
}

// baseObjects are the node and namespaces every test needs.
func baseObjects(objs ...client.Object) []client.Object {
	return append([]client.Object{build.Node("master", build.Label("kubernetes.io/hostname", "master")),
		build.Namespace("default", build.Label("kubernetes.io/metadata.name", "default")),
		build.Namespace("kube-system", build.Label("kubernetes.io/metadata.name", "kube-system"))}, objs...)
}

// hideEndpoints is a cache that has not seen any SpiderEndpoint yet.
type hideEndpoints struct{ client.Reader }

func (h hideEndpoints) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v2beta1.SpiderEndpoint); ok {
		return apierrors.NewNotFound(v2beta1.Resource("spiderendpoints"), key.Name)
	}
	return h.Reader.Get(ctx, key, obj, opts...)
}
