package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// upstreamExamplesDir holds our own manifests written after upstream Spiderpool's docs/example
// files: the same kinds, fields and values (non-canonical spellings included), our own names. The
// first line of each names the upstream file it mirrors.
const upstreamExamplesDir = "testdata/upstream-examples"

// upstreamExample is one file of upstreamExamplesDir and what applying it needs.
type upstreamExample struct {
	file string
	// needs are the examples upstream's guide has the reader apply first (the pools an annotation
	// names, the namespace a patch targets). They are applied, and checked, before file.
	needs []string
	// namespace is created first, as upstream's guide has the reader do with kubectl create ns.
	namespace string
	// patches is the namespace this file is a merge patch of (upstream: kubectl patch ns --patch-file).
	patches string
	// pruned are fields upstream still writes that its own CRD dropped. The file is applied as
	// `kubectl apply --validate=warn` would; the apiserver must warn about exactly these and drop them.
	pruned []string
	// subnets maps object name to the spec.subnet it must read back as, where the file spells it
	// with host bits set as upstream does.
	subnets map[string]string
}

// upstreamExamples covers upstream's docs/example (github.com/spidernet-io/spiderpool at a7fbd3b2):
// its 24 files with spiderpool.spidernet.io/v2beta1 objects, its 16 Pod and Deployment files with
// ipam.spidernet.io annotations, the namespace patch of the namespace-default-pool guide with that
// guide's Deployment, and the NetworkAttachmentDefinitions of the multi-NIC guide. Left out:
// statefulset/statefulset-demo.yaml (no annotation, no CR) and alicloud-ccm/ (Alibaba's cloud
// controller manager).
var upstreamExamples = []upstreamExample{
	{file: "basic/pool-v4.yaml"},
	{file: "basic/pool-v6.yaml"},
	{file: "basic/subnet-v4.yaml"},
	{file: "basic/subnet-v6.yaml"},
	{file: "basic/deploy-pool-v4.yaml", needs: []string{"basic/pool-v4.yaml"}},
	{file: "basic/deploy-pool-dual.yaml", needs: []string{"basic/pool-v4.yaml", "basic/pool-v6.yaml"}},
	{file: "basic/deploy-subnet-dual.yaml", needs: []string{"basic/subnet-v4.yaml", "basic/subnet-v6.yaml"}},

	{file: "node-affinity/pool-master.yaml"},
	{file: "node-affinity/pool-worker.yaml"},
	{file: "node-affinity/deploy.yaml", needs: []string{"node-affinity/pool-master.yaml", "node-affinity/pool-worker.yaml"}},

	{file: "pod-affinity/pool-occupied.yaml"},
	{file: "pod-affinity/deploy-occupied.yaml", needs: []string{"pod-affinity/pool-occupied.yaml"}},
	{file: "pod-affinity/pool-shared.yaml"},
	{file: "pod-affinity/deploys-shared.yaml", needs: []string{"pod-affinity/pool-shared.yaml"}},
	{file: "pod-affinity/subnet-static.yaml"},
	{file: "pod-affinity/deploy-unmatched.yaml", needs: []string{"pod-affinity/subnet-static.yaml"}},

	{file: "namespace-affinity/pool.yaml"},
	{file: "namespace-affinity/deploys.yaml", namespace: "ex-affinity-ns", needs: []string{"namespace-affinity/pool.yaml"}},

	{file: "multi-pool/pools.yaml"},
	{file: "multi-pool/pod.yaml", needs: []string{"multi-pool/pools.yaml"}},
	{file: "multi-pool/deploy.yaml", needs: []string{"multi-pool/pools.yaml"}},

	{file: "namespace-default/pool.yaml"},
	{file: "namespace-default/namespace-patch.yaml", namespace: "ex-pool-ns", patches: "ex-pool-ns"},
	{file: "namespace-default/deploy.yaml", needs: []string{"namespace-default/pool.yaml", "namespace-default/namespace-patch.yaml"}},

	{file: "multi-nic/pools.yaml", subnets: map[string]string{"ex-nic-pool-ens192": "10.6.0.0/16", "ex-nic-pool-ens224": "10.7.0.0/16"}},
	{file: "multi-nic/subnets.yaml", pruned: []string{"spec.vlan"}, subnets: map[string]string{"ex-nic-subnet-ens192": "10.6.0.0/16", "ex-nic-subnet-ens224": "10.7.0.0/16"}},
	{file: "multi-nic/nads.yaml"},
	{file: "multi-nic/deploy-pools.yaml", needs: []string{"multi-nic/nads.yaml", "multi-nic/pools.yaml"}},
	{file: "multi-nic/deploy-subnets.yaml", needs: []string{"multi-nic/nads.yaml", "multi-nic/subnets.yaml"}},

	{file: "reserved-ip/pool-excluded-in-use.yaml"},
	{file: "reserved-ip/pool-other-owner.yaml"},
	{file: "reserved-ip/pool-without-exclude.yaml"},
	{file: "reserved-ip/pool-with-exclude.yaml"},
	{file: "reserved-ip/pool.yaml"},
	{file: "reserved-ip/reservedip.yaml"},
	{file: "reserved-ip/deploy.yaml", needs: []string{"reserved-ip/reservedip.yaml", "reserved-ip/pool.yaml"}},

	{file: "route/pool.yaml"},
	{file: "route/subnet.yaml"},
	{file: "route/deploy-pool.yaml", needs: []string{"route/pool.yaml"}},
	{file: "route/deploy-subnet.yaml", needs: []string{"route/subnet.yaml"}},

	{file: "subnet/subnets.yaml"},
	{file: "subnet/deploy.yaml", needs: []string{"subnet/subnets.yaml"}},
	{file: "subnet/multi-nic.yaml", subnets: map[string]string{"ex-subnet-eth0-v6": "2002::/64"}},
}

// Upstream's example manifests must apply unchanged, with our CRDs and both webhooks in the path,
// under kubectl's strict field validation; what they say must read back, every CIDR in canonical
// network form. Each file is applied on its own, as upstream's guides do: several are alternatives
// over the same addresses that our validator rightly refuses side by side.
func TestUpstreamExamplesApplyUnchanged(t *testing.T) {
	byFile := checkUpstreamExampleFiles(t)
	w := startWebhooks(t)
	for _, ex := range upstreamExamples {
		t.Run(ex.file, func(t *testing.T) {
			a := newExampleApplier(t, w, byFile)
			t.Cleanup(a.cleanup)
			a.apply(ex)
		})
	}
}

var mirrorsLine = regexp.MustCompile(`^# Mirrors upstream spiderpool (docs/example/\S+\.yaml)\b`)

// checkUpstreamExampleFiles checks that the table and the directory agree and that each file
// names the upstream example it mirrors, one file per upstream file.
func checkUpstreamExampleFiles(t *testing.T) map[string]upstreamExample {
	t.Helper()
	byFile := map[string]upstreamExample{}
	for _, ex := range upstreamExamples {
		if _, dup := byFile[ex.file]; dup {
			t.Fatalf("%s listed twice", ex.file)
		}
		byFile[ex.file] = ex
	}
	for _, ex := range upstreamExamples {
		for _, n := range ex.needs {
			if _, ok := byFile[n]; !ok {
				t.Fatalf("%s needs %s, which is not in the table", ex.file, n)
			}
		}
	}
	mirrored := map[string]string{}
	err := filepath.WalkDir(upstreamExamplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(upstreamExamplesDir, path)
		if err != nil {
			return err
		}
		if _, ok := byFile[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s is not in upstreamExamples", rel)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(string(data), "\n")
		m := mirrorsLine.FindStringSubmatch(first)
		if m == nil {
			t.Errorf("%s: first line %q does not name the upstream file it mirrors", rel, first)
			return nil
		}
		if other, dup := mirrored[m[1]]; dup {
			t.Errorf("%s and %s both mirror %s", other, rel, m[1])
		}
		mirrored[m[1]] = rel
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(mirrored) != len(upstreamExamples) {
		t.Errorf("%d files mirror an upstream example, the table lists %d", len(mirrored), len(upstreamExamples))
	}
	return byFile
}

// exampleApplier applies examples for one subtest and removes everything it created.
type exampleApplier struct {
	t       *testing.T
	w       *runningWebhooks
	byFile  map[string]upstreamExample
	c       client.Client
	warns   *warningRecorder
	applied map[string]bool
	created []client.Object
}

func newExampleApplier(t *testing.T, w *runningWebhooks, byFile map[string]upstreamExample) *exampleApplier {
	warns := &warningRecorder{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warns
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &exampleApplier{t: t, w: w, byFile: byFile, c: c, warns: warns, applied: map[string]bool{}}
}

// apply applies ex after what it needs, and checks that every document was accepted and reads back.
func (a *exampleApplier) apply(ex upstreamExample) {
	t := a.t
	t.Helper()
	if a.applied[ex.file] {
		return
	}
	a.applied[ex.file] = true
	for _, n := range ex.needs {
		a.apply(a.byFile[n])
	}
	ctx := testContext(t)
	if ex.namespace != "" {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ex.namespace}}
		if err := a.c.Create(ctx, ns); err != nil {
			t.Fatalf("create namespace %s: %v", ex.namespace, err)
		}
		a.created = append(a.created, ns)
	}
	docs := loadManifests(t, filepath.Join(upstreamExamplesDir, ex.file))
	if len(docs) == 0 {
		t.Fatalf("%s: no documents", ex.file)
	}
	if ex.patches != "" {
		a.patchNamespace(ex, docs)
		return
	}
	for _, doc := range docs {
		a.create(ex, doc)
	}
}

// create creates one document the way kubectl apply does on a fresh cluster and checks it.
func (a *exampleApplier) create(ex upstreamExample, doc *unstructured.Unstructured) {
	t := a.t
	t.Helper()
	ctx := testContext(t)
	obj := doc.DeepCopy()
	namespaced, err := a.c.IsObjectNamespaced(obj)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", ex.file, obj.GetKind(), obj.GetName(), err)
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	validation := metav1.FieldValidationStrict
	if len(ex.pruned) > 0 {
		validation = metav1.FieldValidationWarn
	}
	a.warns.reset()
	if err := a.c.Create(ctx, obj, &client.CreateOptions{FieldValidation: validation}); err != nil {
		t.Errorf("%s: %s %s refused: %v", ex.file, doc.GetKind(), doc.GetName(), err)
		return
	}
	a.created = append(a.created, obj)
	var want []string
	for _, f := range ex.pruned {
		want = append(want, fmt.Sprintf("unknown field %q", f))
	}
	if got := fieldWarnings(a.warns.take()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: %s %s: field validation warnings %q, want %q", ex.file, doc.GetKind(), doc.GetName(), got, want)
	}
	if obj.GroupVersionKind().Group == v2beta1.GroupName {
		a.w.cached(t, typedCopy(t, obj))
	}

	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(obj.GroupVersionKind())
	if err := a.c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatalf("%s: read back %s %s: %v", ex.file, doc.GetKind(), doc.GetName(), err)
	}
	expect := doc.DeepCopy()
	for _, f := range ex.pruned {
		path := strings.Split(f, ".")
		unstructured.RemoveNestedField(expect.Object, path...)
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, path...); found {
			t.Errorf("%s: %s %s: %s kept, want it dropped", ex.file, doc.GetKind(), doc.GetName(), f)
		}
	}
	for _, d := range manifestDiffs("", expect.Object, got.Object) {
		t.Errorf("%s: %s %s: %s", ex.file, doc.GetKind(), doc.GetName(), d)
	}
	if wantSubnet, ok := ex.subnets[doc.GetName()]; ok {
		spelled, _, _ := unstructured.NestedString(doc.Object, "spec", "subnet")
		if spelled == wantSubnet {
			t.Errorf("%s: %s spells spec.subnet %s: the file must keep upstream's non-canonical spelling", ex.file, doc.GetName(), spelled)
		}
		if read, _, _ := unstructured.NestedString(got.Object, "spec", "subnet"); read != wantSubnet {
			t.Errorf("%s: %s %s: spec.subnet %q reads back %q, want %q", ex.file, doc.GetKind(), doc.GetName(), spelled, read, wantSubnet)
		}
	}
}

// patchNamespace applies a namespace patch the way kubectl patch --type merge --patch-file does.
func (a *exampleApplier) patchNamespace(ex upstreamExample, docs []*unstructured.Unstructured) {
	t := a.t
	t.Helper()
	ctx := testContext(t)
	for _, doc := range docs {
		data, err := json.Marshal(doc.Object)
		if err != nil {
			t.Fatal(err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ex.patches}}
		if err := a.c.Patch(ctx, ns, client.RawPatch("application/merge-patch+json", data)); err != nil {
			t.Errorf("%s: patch namespace %s refused: %v", ex.file, ex.patches, err)
			continue
		}
		got, err := toUnstructured(ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range manifestDiffs("", doc.Object, got) {
			t.Errorf("%s: namespace %s: %s", ex.file, ex.patches, d)
		}
	}
}

// cleanup deletes what the subtest created, newest first, and waits until the apiserver and the
// webhooks' cache no longer hold it: the next example may reuse the same addresses.
func (a *exampleApplier) cleanup() {
	t := a.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := len(a.created) - 1; i >= 0; i-- {
		obj := a.created[i]
		deleteIgnoringFinalizers(ctx, t, obj)
		if ns, ok := obj.(*corev1.Namespace); ok {
			finalizeNamespace(ctx, t, ns.Name)
		}
		err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got := obj.DeepCopyObject().(client.Object)
			return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got)), nil
		})
		if err != nil {
			t.Errorf("%T %s still exists after delete", obj, obj.GetName())
			continue
		}
		if obj.GetObjectKind().GroupVersionKind().Group != v2beta1.GroupName {
			continue
		}
		typed := typedCopy(t, obj)
		err = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			return apierrors.IsNotFound(a.w.cache.Get(ctx, client.ObjectKeyFromObject(obj), typed)), nil
		})
		if err != nil {
			t.Errorf("%s %s never left the webhooks' cache", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		}
	}
}

// finalizeNamespace does the namespace controller's part, which the test control plane lacks:
// without it a deleted namespace stays Terminating for good.
func finalizeNamespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	var ns corev1.Namespace
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		if !apierrors.IsNotFound(err) {
			t.Errorf("get namespace %s: %v", name, err)
		}
		return
	}
	ns.Spec.Finalizers = nil
	if err := env.Client.SubResource("finalize").Update(ctx, &ns); client.IgnoreNotFound(err) != nil {
		t.Errorf("finalize namespace %s: %v", name, err)
	}
}

// typedCopy returns the typed object of u's kind with u's key and UID, for reading a typed cache.
func typedCopy(t *testing.T, obj client.Object) client.Object {
	t.Helper()
	gvk := obj.GetObjectKind().GroupVersionKind()
	ro, err := env.Scheme.New(gvk)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	typed := ro.(client.Object)
	typed.SetName(obj.GetName())
	typed.SetNamespace(obj.GetNamespace())
	typed.SetUID(obj.GetUID())
	return typed
}

func toUnstructured(obj any) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

// manifestDiffs lists where got does not say what want, a manifest, says. got may say more (CRD
// defaults, webhook defaults, server metadata). A string that parses as a CIDR must read back in
// canonical network form, whatever the manifest's spelling.
func manifestDiffs(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: read back %v, want an object", pathOrRoot(path), got)}
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing on read back, want %v", path, k, w[k]))
				continue
			}
			out = append(out, manifestDiffs(path+"."+k, w[k], g[k])...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: read back %v, want %v", pathOrRoot(path), got, w)}
		}
		var out []string
		for i := range w {
			out = append(out, manifestDiffs(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	case string:
		want := w
		if p, err := netip.ParsePrefix(w); err == nil {
			want = p.Masked().String()
		}
		if g, ok := got.(string); !ok || g != want {
			return []string{fmt.Sprintf("%s: %q reads back %v, want %q", pathOrRoot(path), w, got, want)}
		}
		return nil
	default:
		// Numbers decode as float64 from the manifest and int64 from the apiserver.
		if fmt.Sprint(w) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: %v reads back %v", pathOrRoot(path), w, got)}
		}
		return nil
	}
}

func pathOrRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// warningRecorder keeps the apiserver's warnings of a client's requests.
type warningRecorder struct {
	mu    sync.Mutex
	warns []string
}

var _ rest.WarningHandler = (*warningRecorder)(nil)

func (r *warningRecorder) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warns = append(r.warns, text)
}

// fieldWarnings keeps the warnings of field validation (unknown or duplicate fields), which
// --validate=strict turns into errors; others, such as the apiserver's advice on finalizer names,
// kubectl only prints.
func fieldWarnings(warns []string) []string {
	var out []string
	for _, w := range warns {
		if strings.HasPrefix(w, "unknown field ") || strings.HasPrefix(w, "duplicate field ") {
			out = append(out, w)
		}
	}
	return out
}

func (r *warningRecorder) reset() { _ = r.take() }

func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warns
	r.warns = nil
	return w
}
