package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func newAPIClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

// wantInvalid checks the error the apiserver would relay: Invalid, for our kind and object, naming
// every part.
func wantInvalid(t *testing.T, err error, kind, name string, parts ...string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("error %v, want Invalid", err)
	}
	msg := err.Error()
	prefix := kind + "." + v2beta1.GroupName + ` "` + name + `" is invalid: `
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("message %q does not start with %q", msg, prefix)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q lacks %q", msg, p)
		}
	}
}

func TestIPPoolWebhook(t *testing.T) {
	ctx := context.Background()
	existing := build.Pool("a", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20"))
	subnet := build.Subnet("s", "10.7.0.0/16", build.NoVersion(), build.IPs("10.7.0.1-10.7.0.9"))
	w := &IPPoolWebhook{Reader: newAPIClient(t, existing, subnet), EnableIPv4: true}

	p := build.Pool("b", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.15-10.6.0.30"))
	if err := w.Default(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.IPVersion == nil || *p.Spec.IPVersion != 4 {
		t.Errorf("Default left ipVersion %v", p.Spec.IPVersion)
	}
	_, err := w.ValidateCreate(ctx, p)
	wantInvalid(t, err, "SpiderIPPool", "b", "spec.ips", `"a"`, "10.6.0.15-10.6.0.20")

	_, err = w.ValidateCreate(ctx, build.Pool("c", "10.7.0.0/16", build.NoVersion(), build.IPs("10.7.0.50")))
	wantInvalid(t, err, "SpiderIPPool", "c", "spec.ips", `SpiderSubnet "s"`)

	_, err = w.ValidateCreate(ctx, build.Pool("v6", "fd00::/64", build.NoVersion()))
	wantInvalid(t, err, "SpiderIPPool", "v6", "IPv6")

	if _, err := w.ValidateCreate(ctx, build.Pool("d", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.21-10.6.0.30"))); err != nil {
		t.Errorf("disjoint pool of the same subnet refused: %v", err)
	}

	// A stored pool that breaks today's rules can still lose its finalizer, and deletion is never
	// refused, even with allocations: the finalizer holds the pool.
	stored := build.Pool("a", "10.6.0.0/16", build.NoVersion(), build.IPs("10.9.0.1"))
	stored.Finalizers = []string{v2beta1.Finalizer}
	stored.Status.AllocatedIPs = ptr.To(`{"10.6.0.10":{"pod":"default/x","podUid":"u"}}`)
	released := stored.DeepCopy()
	released.Finalizers = nil
	if _, err := w.ValidateUpdate(ctx, stored, released); err != nil {
		t.Errorf("metadata-only update refused: %v", err)
	}
	if _, err := w.ValidateDelete(ctx, stored); err != nil {
		t.Errorf("delete refused: %v", err)
	}
	changed := stored.DeepCopy()
	changed.Spec.Gateway = ptr.To("10.6.0.1")
	_, err = w.ValidateUpdate(ctx, stored, changed)
	wantInvalid(t, err, "SpiderIPPool", "a", "spec.ips[0]")
}

func TestMultusConfigWebhookNADName(t *testing.T) {
	ctx := context.Background()
	other := build.MultusConfig("ns", "other", build.Annotation(v2beta1.AnnoMultusConfigName, "net"))
	// No NAD kind in this client's scheme: a cluster without Multus' CRD is not an error.
	w := &MultusConfigWebhook{Reader: newAPIClient(t, other)}
	smc := build.MultusConfig("ns", "net")
	if err := w.Default(ctx, smc); err != nil {
		t.Fatal(err)
	}
	_, err := w.ValidateCreate(ctx, smc)
	wantInvalid(t, err, "SpiderMultusConfig", "net", "metadata.name", `SpiderMultusConfig "other"`)

	elsewhere := smc.DeepCopy()
	elsewhere.Namespace = "ns2"
	if _, err := w.ValidateCreate(ctx, elsewhere); err != nil {
		t.Errorf("same NAD name in another namespace refused: %v", err)
	}
}

func TestOptionsComplete(t *testing.T) {
	server := crwebhook.NewServer(crwebhook.Options{Port: 5722, CertDir: "/certs"})
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"auto in cluster", Options{Namespace: "kube-system"}, ""},
		{"auto needs namespace", Options{}, "namespace is required"},
		{"cert dir disagrees", Options{Namespace: "kube-system", CertDir: "/elsewhere"}, "differs"},
		{"provided only serves", Options{Mode: ModeProvided}, ""},
		{"unknown mode", Options{Mode: "certmanager"}, "want"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opts.complete(server)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.CertDir != "/certs" || got.ServiceName != DefaultServiceName || got.ServicePort != DefaultPort || got.SecretName != DefaultSecretName {
				t.Errorf("defaults not filled: %+v", got)
			}
		})
	}
}

// TestMultusConfigDefaultLeavingCustom: the enableCoordinator false a custom object stores is its
// type's artefact, so an update to another type that keeps it (a `kubectl apply` of a manifest
// without the field over spiderpool-init's placeholder) gets the new type's default; any other
// stored or requested value stands.
func TestMultusConfigDefaultLeavingCustom(t *testing.T) {
	custom, ipvlan := v2beta1.CniTypeCustom, v2beta1.CniTypeIPvlan
	tests := []struct {
		name     string
		old      *v2beta1.MultusCNIConfigSpec // nil: a create
		newType  string
		newCoord *bool
		want     bool
	}{
		{"placeholder filled in by apply", &v2beta1.MultusCNIConfigSpec{CniType: &custom, EnableCoordinator: ptr.To(false)}, ipvlan, ptr.To(false), true},
		{"placeholder filled in with the field", &v2beta1.MultusCNIConfigSpec{CniType: &custom, EnableCoordinator: ptr.To(false)}, ipvlan, ptr.To(true), true},
		{"ipvlan turned off before", &v2beta1.MultusCNIConfigSpec{CniType: &ipvlan, EnableCoordinator: ptr.To(false)}, ipvlan, ptr.To(false), false},
		{"create with false", nil, ipvlan, ptr.To(false), false},
		{"create without the field", nil, ipvlan, nil, true},
		{"still custom", &v2beta1.MultusCNIConfigSpec{CniType: &custom, EnableCoordinator: ptr.To(false)}, custom, ptr.To(false), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smc := &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ipvlan-ens5"},
				Spec: v2beta1.MultusCNIConfigSpec{CniType: &tc.newType, EnableCoordinator: tc.newCoord,
					IPVlanConfig: &v2beta1.SpiderIPvlanCniConfig{Master: []string{"ens5"}}}}
			req := admission.Request{}
			if tc.old != nil {
				raw, err := json.Marshal(&v2beta1.SpiderMultusConfig{ObjectMeta: smc.ObjectMeta, Spec: *tc.old})
				if err != nil {
					t.Fatal(err)
				}
				req.Operation = admissionv1.Update
				req.OldObject.Raw = raw
			} else {
				req.Operation = admissionv1.Create
			}
			ctx := admission.NewContextWithRequest(context.Background(), req)
			if err := (&MultusConfigWebhook{}).Default(ctx, smc); err != nil {
				t.Fatal(err)
			}
			if got := smc.Spec.EnableCoordinator; got == nil || *got != tc.want {
				t.Errorf("enableCoordinator = %v, want %v", ptr.Deref(got, false), tc.want)
			}
		})
	}
}

// notStartedReader fails like the manager's cache before it starts, the first n reads.
type notStartedReader struct {
	client.Reader
	n int
}

func (r *notStartedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if r.n > 0 {
		r.n--
		return &cache.ErrCacheNotStarted{}
	}
	return r.Reader.List(ctx, list, opts...)
}

// TestCacheReaderWaitsForStart: a request that arrives between the webhook server's start and the
// cache's is answered once the cache has started, not refused; a request whose deadline passes
// first gets the error.
func TestCacheReaderWaitsForStart(t *testing.T) {
	r := cacheReader{&notStartedReader{Reader: newAPIClient(t, build.Pool("a", "10.6.0.0/16", build.NoVersion())), n: 3}}
	var pools v2beta1.SpiderIPPoolList
	if err := r.List(context.Background(), &pools); err != nil {
		t.Fatalf("List() = %v, want it to wait for the start", err)
	}
	if len(pools.Items) != 1 {
		t.Errorf("listed %d pools, want 1", len(pools.Items))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = cacheReader{&notStartedReader{Reader: newAPIClient(t), n: 1 << 30}}
	var notStarted *cache.ErrCacheNotStarted
	if err := r.List(ctx, &pools); !errors.As(err, &notStarted) {
		t.Errorf("List() with a done context = %v, want ErrCacheNotStarted", err)
	}
}

// A pool in block format is judged by its blocks' records, not by its status mirror: removing an
// address a block records is refused even when the mirror (past its bound) lists nothing.
func TestIPPoolWebhookUpdateInBlocks(t *testing.T) {
	ctx := context.Background()
	stored := build.Pool("blk", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.10-10.6.0.20"),
		build.Allocated("10.6.0.12", "default/x", "u"))
	stored, blks := blockstoretest.InBlocks(t, stored, "n1")
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblock.AddToScheme(s))
	b := fake.NewClientBuilder().WithScheme(s)
	for _, blk := range blks {
		b = b.WithObjects(blk)
	}
	bc := b.Build()
	w := &IPPoolWebhook{Reader: newAPIClient(t), BlockReader: bc, BlockWriter: bc, EnableIPv4: true}

	shrunk := stored.DeepCopy()
	shrunk.Spec.IPs = []string{"10.6.0.13-10.6.0.20"}
	_, err := w.ValidateUpdate(ctx, stored, shrunk)
	wantInvalid(t, err, "SpiderIPPool", "blk", "spec.ips", "10.6.0.12")

	kept := stored.DeepCopy()
	kept.Spec.IPs = []string{"10.6.0.11-10.6.0.20"}
	if _, err := w.ValidateUpdate(ctx, stored, kept); err != nil {
		t.Errorf("update keeping every recorded address refused: %v", err)
	}
	// The free address it removes, 10.6.0.10, is fenced in its block.
	var list ipblock.SpiderIPBlockList
	if err := bc.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || len(list.Items[0].Spec.Fences) != 1 || fmt.Sprint(list.Items[0].Spec.Fences[0].IPs) != "[10.6.0.10]" {
		t.Errorf("blocks after the admitted update: %+v, want one fence of 10.6.0.10", list.Items)
	}
}
