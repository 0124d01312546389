package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	return s
}

// clusterAPIs says which optional APIs the fake cluster serves.
type clusterAPIs struct {
	serviceCIDR bool
	calico      bool
	ciliumPools bool
}

func testMapper(apis clusterAPIs) meta.RESTMapper {
	// Version-less lookups (CiliumPodIPPool) need the group's version among the defaults, as
	// discovery's preferred version is in a real cluster.
	m := meta.NewDefaultRESTMapper([]schema.GroupVersion{ciliumPodIPPoolGK.WithVersion("v2alpha1").GroupVersion()})
	m.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	m.Add(corev1.SchemeGroupVersion.WithKind("Pod"), meta.RESTScopeNamespace)
	m.Add(v2beta1.SchemeGroupVersion.WithKind("SpiderCoordinator"), meta.RESTScopeRoot)
	if apis.serviceCIDR {
		m.Add(networkingv1.SchemeGroupVersion.WithKind("ServiceCIDR"), meta.RESTScopeRoot)
	}
	if apis.calico {
		m.Add(calicoIPPoolGVK, meta.RESTScopeRoot)
	}
	if apis.ciliumPools {
		m.Add(ciliumPodIPPoolGK.WithVersion("v2alpha1"), meta.RESTScopeRoot)
	}
	return m
}

// coordinator is the SpiderCoordinator default the chart installs, with podCIDRType.
func coordinator(podCIDRType string) *v2beta1.SpiderCoordinator {
	return build.Coordinator("default", build.PodCIDRType(podCIDRType), build.With(func(c *v2beta1.SpiderCoordinator) {
		c.Spec.Mode, c.Spec.HijackCIDR, c.Spec.TunePodRoutes = ptr.To("auto"), []string{"169.254.0.0/16"}, ptr.To(true)
		c.Spec.HostRuleTable, c.Spec.PodRPFilter = ptr.To(500), ptr.To(0)
	}))
}

func kubeadmConfig(text string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data:       map[string]string{"ClusterConfiguration": text},
	}
}

// guideKubeadmConfig() is the Calico-overlay guide's workaround with the guide's CIDRs.
func guideKubeadmConfig() *corev1.ConfigMap {
	return kubeadmConfig("networking:\n  podSubnet: 10.244.64.0/18\n  serviceSubnet: 10.233.0.0/18\n")
}

// controllerManagerPod is kubeadm's static kube-controller-manager pod, run with args.
func controllerManagerPod(args ...string) *corev1.Pod {
	return build.Pod("kube-system", "kube-controller-manager-master1",
		build.Label("component", "kube-controller-manager"), build.Label("tier", "control-plane"),
		build.With(func(p *corev1.Pod) {
			p.Spec.Containers = []corev1.Container{{
				Name:    "kube-controller-manager",
				Command: []string{"kube-controller-manager", "--allocate-node-cidrs=true"},
				Args:    args,
			}}
		}))
}

func ciliumConfig(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cilium-config"}, Data: data}
}

func serviceCIDR(name string, created time.Time, cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: cidrs},
	}
}

func calicoPool(name, cidr string, created time.Time, disabled, deleting bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"cidr": cidr, "disabled": disabled, "ipipMode": "Always", "natOutgoing": true},
	}}
	u.SetGroupVersionKind(calicoIPPoolGVK)
	u.SetName(name)
	u.SetCreationTimestamp(metav1.NewTime(created))
	if deleting {
		u.SetFinalizers([]string{"example.com/hold"})
		u.SetDeletionTimestamp(ptr.To(metav1.NewTime(created.Add(time.Hour))))
	}
	return u
}

func ciliumPodIPPool(name string, created time.Time, v4, v6 []any) *unstructured.Unstructured {
	spec := map[string]any{}
	if v4 != nil {
		spec["ipv4"] = map[string]any{"cidrs": v4, "maskSize": int64(24)}
	}
	if v6 != nil {
		spec["ipv6"] = map[string]any{"cidrs": v6, "maskSize": int64(120)}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(ciliumPodIPPoolGK.WithVersion("v2alpha1"))
	u.SetName(name)
	u.SetCreationTimestamp(metav1.NewTime(created))
	return u
}

type fixture struct {
	c   client.Client
	r   *CoordinatorReconciler
	req reconcile.Request
}

func newFixture(t *testing.T, apis clusterAPIs, funcs *interceptor.Funcs, objs ...client.Object) *fixture {
	t.Helper()
	b := fake.NewClientBuilder().
		WithScheme(testScheme(t)).
		WithRESTMapper(testMapper(apis)).
		WithStatusSubresource(&v2beta1.SpiderCoordinator{}).
		WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	c := b.Build()
	r := NewCoordinatorReconciler(c, c)
	r.CNIConfigDir = t.TempDir()
	return &fixture{c: c, r: r, req: reconcile.Request{NamespacedName: client.ObjectKey{Name: "default"}}}
}

func (f *fixture) reconcile(t *testing.T) (reconcile.Result, *v2beta1.SpiderCoordinator) {
	t.Helper()
	res, err := f.r.Reconcile(context.Background(), f.req)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	var got v2beta1.SpiderCoordinator
	if err := f.c.Get(context.Background(), f.req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	return res, &got
}

const noSourceReason = "Neither kubeadm-config ConfigMap nor kube-controller-manager Pod can be found; " +
	"create ConfigMap kube-system/kubeadm-config with key ClusterConfiguration holding networking.podSubnet and networking.serviceSubnet"

func synced(overlay, svc []string) v2beta1.CoordinatorStatus {
	return v2beta1.CoordinatorStatus{Phase: "Synced", OverlayPodCIDR: overlay, ServiceCIDR: svc}
}

func notReady(reason string) v2beta1.CoordinatorStatus {
	return v2beta1.CoordinatorStatus{Phase: "NotReady", Reason: reason, OverlayPodCIDR: []string{}, ServiceCIDR: []string{}}
}

func TestCoordinatorStatus(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		podCIDRType string
		apis        clusterAPIs
		cniConfig   string // written as 10-main.conflist when set
		objs        []client.Object
		want        v2beta1.CoordinatorStatus
		// wantReason is matched as a substring when the exact reason is not worth spelling out.
		wantReason string
	}{
		{
			name: "no cluster source", podCIDRType: "cluster",
			want: notReady(noSourceReason),
		},
		{
			name: "no cluster source, calico type", podCIDRType: "calico", apis: clusterAPIs{calico: true},
			objs: []client.Object{calicoPool("default-ipv4-ippool", "10.244.64.0/18", t0, false, false)},
			want: notReady(noSourceReason),
		},
		{
			name: "kubeadm-config only", podCIDRType: "cluster",
			objs: []client.Object{guideKubeadmConfig()},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "kube-controller-manager only", podCIDRType: "cluster",
			objs: []client.Object{controllerManagerPod("--cluster-cidr=10.244.0.0/16,fd00:10:244::/56", "--service-cluster-ip-range=10.96.0.0/12")},
			want: synced([]string{"10.244.0.0/16", "fd00:10:244::/56"}, []string{"10.96.0.0/12"}),
		},
		{
			name: "kubeadm-config without serviceSubnet falls back per value", podCIDRType: "cluster",
			objs: []client.Object{
				kubeadmConfig("networking:\n  podSubnet: 10.244.64.0/18\n"),
				controllerManagerPod("--cluster-cidr=10.1.0.0/16", "--service-cluster-ip-range=10.96.0.0/12"),
			},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.96.0.0/12"}),
		},
		{
			name: "kubeadm-config with placeholders", podCIDRType: "cluster",
			objs:       []client.Object{kubeadmConfig("networking:\n  podSubnet: ${POD_SUBNET}\n  serviceSubnet: ${SERVICE_SUBNET}\n")},
			wantReason: `ConfigMap kube-system/kubeadm-config: kubeadm-config podSubnet: invalid CIDR "${POD_SUBNET}"`,
		},
		{
			name: "kubeadm-config without pod CIDR, cluster type", podCIDRType: "cluster",
			objs:       []client.Object{kubeadmConfig("networking:\n  serviceSubnet: 10.233.0.0/18\n")},
			wantReason: "podCIDRType cluster: no pod CIDR found",
		},
		{
			name: "ServiceCIDR objects preferred", podCIDRType: "cluster", apis: clusterAPIs{serviceCIDR: true},
			objs: []client.Object{
				guideKubeadmConfig(),
				serviceCIDR("extra", t0.Add(time.Minute), "10.234.0.0/18"),
				serviceCIDR("kubernetes", t0, "10.233.0.0/18", "fd00:10:233::/112"),
			},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18", "fd00:10:233::/112", "10.234.0.0/18"}),
		},
		{
			name: "ServiceCIDR API without objects", podCIDRType: "cluster", apis: clusterAPIs{serviceCIDR: true},
			objs: []client.Object{guideKubeadmConfig()},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			// docs/guides/calico-overlay.md#4-what-you-should-see oracle: the Calico-overlay guide's status.
			name: "calico", podCIDRType: "calico", apis: clusterAPIs{calico: true},
			objs: []client.Object{
				guideKubeadmConfig(),
				calicoPool("newer", "10.245.0.0/18", t0.Add(time.Minute), false, false),
				calicoPool("default-ipv4-ippool", "10.244.64.0/18", t0, false, false),
				calicoPool("disabled", "10.246.0.0/18", t0, true, false),
				calicoPool("deleting", "10.247.0.0/18", t0, false, true),
			},
			want: synced([]string{"10.244.64.0/18", "10.245.0.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "calico without pools", podCIDRType: "calico", apis: clusterAPIs{calico: true},
			objs: []client.Object{guideKubeadmConfig()},
			want: synced([]string{}, []string{"10.233.0.0/18"}),
		},
		{
			name: "calico not installed", podCIDRType: "calico",
			objs:       []client.Object{guideKubeadmConfig()},
			wantReason: "the Calico IPPool API (crd.projectcalico.org/v1) is not installed",
		},
		{
			name: "cilium cluster-pool", podCIDRType: "cilium",
			objs: []client.Object{guideKubeadmConfig(), ciliumConfig(map[string]string{"ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.244.64.0/18"})},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "cilium kubernetes", podCIDRType: "cilium",
			objs: []client.Object{guideKubeadmConfig(), ciliumConfig(map[string]string{"ipam": "kubernetes"})},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "cilium multi-pool", podCIDRType: "cilium", apis: clusterAPIs{ciliumPools: true},
			objs: []client.Object{
				guideKubeadmConfig(), ciliumConfig(map[string]string{"ipam": "multi-pool"}),
				ciliumPodIPPool("second", t0.Add(time.Minute), []any{"10.20.0.0/16"}, nil),
				ciliumPodIPPool("default", t0, []any{"10.10.0.0/16", "10.11.0.0/16"}, []any{"fd00:10::/104"}),
			},
			want: synced([]string{"10.10.0.0/16", "10.11.0.0/16", "fd00:10::/104", "10.20.0.0/16"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "cilium multi-pool without the API", podCIDRType: "cilium",
			objs:       []client.Object{guideKubeadmConfig(), ciliumConfig(map[string]string{"ipam": "multi-pool"})},
			wantReason: "Cilium ipam multi-pool: the CiliumPodIPPool API (cilium.io) is not installed",
		},
		{
			name: "cilium unsupported mode", podCIDRType: "cilium",
			objs: []client.Object{guideKubeadmConfig(), ciliumConfig(map[string]string{"ipam": "eni"})},
			want: notReady("ConfigMap kube-system/cilium-config: unsupported CIlium IPAM mode: eni"),
		},
		{
			name: "cilium ConfigMap missing", podCIDRType: "cilium",
			objs:       []client.Object{guideKubeadmConfig()},
			wantReason: "ConfigMap kube-system/cilium-config not found",
		},
		{
			name: "none", podCIDRType: "none",
			objs: []client.Object{guideKubeadmConfig()},
			want: synced([]string{}, []string{"10.233.0.0/18"}),
		},
		{
			name: "auto resolves flannel to cluster", podCIDRType: "auto", cniConfig: `{"name":"flannel","plugins":[]}`,
			objs: []client.Object{guideKubeadmConfig()},
			want: synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}),
		},
		{
			name: "auto without CNI config", podCIDRType: "auto",
			objs:       []client.Object{guideKubeadmConfig()},
			wantReason: "podCIDRType auto: no *.conf or *.conflist file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.apis, nil, append(tt.objs, coordinator(tt.podCIDRType))...)
			if tt.cniConfig != "" {
				if err := os.WriteFile(filepath.Join(f.r.CNIConfigDir, "10-main.conflist"), []byte(tt.cniConfig), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			res, got := f.reconcile(t)
			if res.RequeueAfter != time.Minute {
				t.Errorf("RequeueAfter = %v, want 1m", res.RequeueAfter)
			}
			if !cmp.Equal(got.Finalizers, []string{v2beta1.Finalizer}) {
				t.Errorf("finalizers = %v", got.Finalizers)
			}
			if tt.wantReason != "" {
				if got.Status.Phase != "NotReady" || !strings.Contains(got.Status.Reason, tt.wantReason) {
					t.Errorf("status = %+v, want NotReady with reason containing %q", got.Status, tt.wantReason)
				}
				tt.want = notReady(got.Status.Reason)
			}
			if diff := cmp.Diff(tt.want, got.Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			// The status lists are written as [] rather than omitted: the plugin reads them as lists.
			if got.Status.OverlayPodCIDR == nil || got.Status.ServiceCIDR == nil {
				t.Errorf("nil lists in status %+v", got.Status)
			}
		})
	}
}

func TestCoordinatorTurnsSyncedWhenKubeadmConfigAppears(t *testing.T) {
	f := newFixture(t, clusterAPIs{}, nil, coordinator("cluster"))
	if _, got := f.reconcile(t); got.Status.Phase != "NotReady" {
		t.Fatalf("status = %+v, want NotReady", got.Status)
	}
	if err := f.c.Create(context.Background(), guideKubeadmConfig()); err != nil {
		t.Fatal(err)
	}
	_, got := f.reconcile(t)
	if diff := cmp.Diff(synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"}), got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestCoordinatorStatusWrittenOnlyOnChange(t *testing.T) {
	var statusWrites int
	funcs := &interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			statusWrites++
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}
	f := newFixture(t, clusterAPIs{}, funcs, guideKubeadmConfig(), coordinator("cluster"))
	_, first := f.reconcile(t)
	_, second := f.reconcile(t)
	if statusWrites != 1 {
		t.Errorf("status written %d times, want 1", statusWrites)
	}
	if first.ResourceVersion != second.ResourceVersion {
		t.Errorf("resourceVersion changed from %s to %s without a change of status", first.ResourceVersion, second.ResourceVersion)
	}
}

func TestCoordinatorAPIErrorKeepsStatus(t *testing.T) {
	boom := errors.New("etcd is on fire")
	funcs := &interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.ConfigMap); ok {
				return boom
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}
	coord := coordinator("cluster")
	coord.Status = synced([]string{"10.244.64.0/18"}, []string{"10.233.0.0/18"})
	f := newFixture(t, clusterAPIs{}, funcs, coord)
	if _, err := f.r.Reconcile(context.Background(), f.req); !errors.Is(err, boom) {
		t.Fatalf("Reconcile error = %v, want %v", err, boom)
	}
	var got v2beta1.SpiderCoordinator
	if err := f.c.Get(context.Background(), f.req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != "Synced" {
		t.Errorf("a failed read changed the status to %+v", got.Status)
	}
}

func TestCoordinatorDeletionRemovesFinalizer(t *testing.T) {
	coord := coordinator("cluster")
	coord.Finalizers = []string{v2beta1.Finalizer}
	f := newFixture(t, clusterAPIs{}, nil, guideKubeadmConfig(), coord)
	if err := f.c.Delete(context.Background(), coord.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reconcile(context.Background(), f.req); err != nil {
		t.Fatal(err)
	}
	var got v2beta1.SpiderCoordinator
	if err := f.c.Get(context.Background(), f.req.NamespacedName, &got); err == nil {
		t.Errorf("coordinator still exists with finalizers %v", got.Finalizers)
	}
	// A request for a coordinator that is gone is not an error.
	if _, err := f.r.Reconcile(context.Background(), f.req); err != nil {
		t.Errorf("Reconcile of a deleted coordinator: %v", err)
	}
}

func TestCoordinatorNotReadyEvents(t *testing.T) {
	tests := []struct {
		name        string
		podCIDRType string
		objs        []client.Object
		want        string
	}{
		{name: "no cluster source", podCIDRType: "cluster", want: "Warning ClusterNotReady Neither kubeadm-config ConfigMap"},
		{name: "cilium", podCIDRType: "cilium", objs: []client.Object{guideKubeadmConfig()}, want: "Warning CiliumNotReady podCIDRType cilium: ConfigMap kube-system/cilium-config not found"},
		{name: "calico", podCIDRType: "calico", objs: []client.Object{guideKubeadmConfig()}, want: "Warning CalicoNotReady podCIDRType calico: the Calico IPPool API"},
		{name: "auto", podCIDRType: "auto", objs: []client.Object{guideKubeadmConfig()}, want: "Warning CoordinatorNotReady podCIDRType auto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, clusterAPIs{}, nil, append(tt.objs, coordinator(tt.podCIDRType))...)
			rec := events.NewFakeRecorder(10)
			f.r.Recorder = rec
			f.reconcile(t)
			f.reconcile(t) // unchanged status: no second event
			if len(rec.Events) != 1 {
				t.Fatalf("%d events, want 1", len(rec.Events))
			}
			if got := <-rec.Events; !strings.HasPrefix(got, tt.want) {
				t.Errorf("event %q, want prefix %q", got, tt.want)
			}
		})
	}
}

// The object the controller creates when none exists must pass its own webhook's validation.
func TestDefaultCoordinatorIsValid(t *testing.T) {
	c := v2beta1.HelmDefaultCoordinator("default")
	if errs := v2beta1.ValidateSpiderCoordinator(c); len(errs) > 0 {
		t.Errorf("default SpiderCoordinator is invalid: %v", errs.ToAggregate())
	}
	if *c.Spec.HostRuleTable != 500 || *c.Spec.PodRPFilter != 0 || !*c.Spec.TunePodRoutes {
		t.Errorf("Helm defaults not applied: %+v", c.Spec)
	}
}
