package integration

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// startCoordinatorController runs a manager with only the SpiderCoordinator reconciler until the
// test ends. Start it after installing any CRD the reconciler should watch: the watches are chosen
// from the APIs served at setup.
func startCoordinatorController(t *testing.T) {
	t.Helper()
	runManager(t, func(mgr ctrl.Manager) error {
		return controller.NewCoordinatorReconciler(mgr.GetClient(), mgr.GetAPIReader()).SetupWithManager(mgr)
	})
}

// createGuideCoordinator creates the Calico-overlay guide's SpiderCoordinator "default" with the
// given podCIDRType and deletes it at the end of the test. Deletion waits for the reconciler to
// remove its finalizer, so register it after startCoordinatorController (cleanups run in reverse).
func createGuideCoordinator(t *testing.T, podCIDRType string) {
	t.Helper()
	ctx := testContext(t)
	var obj *unstructured.Unstructured
	for _, o := range loadManifests(t, "testdata/calico-overlay.yaml") {
		if o.GetKind() == "SpiderCoordinator" {
			obj = o
		}
	}
	if obj == nil {
		t.Fatal("no SpiderCoordinator in testdata/calico-overlay.yaml")
	}
	// The guide's manifest carries the finalizer; drop it to check that the reconciler adds it.
	obj.SetFinalizers(nil)
	if err := unstructured.SetNestedField(obj.Object, podCIDRType, "spec", "podCIDRType"); err != nil {
		t.Fatal(err)
	}
	if err := applyStrict(ctx, env.Client, []*unstructured.Unstructured{obj}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := testContext(t)
		scc := &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
		if err := env.Client.Delete(ctx, scc); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete SpiderCoordinator: %v", err)
		}
		err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(scc), scc)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Errorf("SpiderCoordinator not gone (finalizers %v): %v", scc.Finalizers, err)
		}
	})
}

// createWithCleanup creates obj and deletes it at the end of the test.
func createWithCleanup(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(testContext(t), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(testContext(t), obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete %T %s: %v", obj, obj.GetName(), err)
		}
	})
}

// guideKubeadmConfig is the Calico-overlay guide's kubeadm-config workaround with the guide's CIDRs.
func guideKubeadmConfig() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data: map[string]string{"ClusterConfiguration": "networking:\n" +
			"  podSubnet: 10.244.64.0/18\n" +
			"  serviceSubnet: 10.233.0.0/18\n"},
	}
}

// waitForCoordinatorStatus polls the default coordinator until its status is want.
func waitForCoordinatorStatus(t *testing.T, want v2beta1.CoordinatorStatus) *v2beta1.SpiderCoordinator {
	t.Helper()
	ctx := testContext(t)
	var scc v2beta1.SpiderCoordinator
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "default"}, &scc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return coordinatorStatusEqual(want, scc.Status), nil
	})
	if err != nil {
		t.Fatalf("SpiderCoordinator status (-want +got):\n%s", cmp.Diff(want, scc.Status))
	}
	return &scc
}

// coordinatorStatusEqual compares statuses with nil and empty lists alike: [] written by the controller may be
// read back either way.
func coordinatorStatusEqual(a, b v2beta1.CoordinatorStatus) bool {
	return a.Phase == b.Phase && a.Reason == b.Reason &&
		slices.Equal(a.OverlayPodCIDR, b.OverlayPodCIDR) && slices.Equal(a.ServiceCIDR, b.ServiceCIDR)
}

// apiserverServiceCIDRs returns what the test apiserver's ServiceCIDR objects hold. kube-apiserver
// creates ServiceCIDR "kubernetes" from its --service-cluster-ip-range (testenv.ServiceCIDR, the
// guides' 10.233.0.0/18); the controller prefers these objects to kubeadm-config because they are
// what ClusterIPs come from.
func apiserverServiceCIDRs(t *testing.T) []string {
	t.Helper()
	ctx := testContext(t)
	var out []string
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		var list networkingv1.ServiceCIDRList
		if err := env.Client.List(ctx, &list); err != nil {
			return false, err
		}
		out = nil
		for _, s := range list.Items {
			out = append(out, s.Spec.CIDRs...)
		}
		return len(out) > 0, nil
	})
	if err != nil {
		t.Fatalf("the apiserver has no ServiceCIDR: %v", err)
	}
	return out
}

func TestCoordinatorWaitsForKubeadmConfig(t *testing.T) {
	startCoordinatorController(t)
	createGuideCoordinator(t, v2beta1.PodCIDRTypeCluster)

	scc := waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase: v2beta1.CoordinatorPhaseNotReady,
		Reason: "Neither kubeadm-config ConfigMap nor kube-controller-manager Pod can be found; " +
			"create ConfigMap kube-system/kubeadm-config with key ClusterConfiguration holding networking.podSubnet and networking.serviceSubnet",
		OverlayPodCIDR: []string{},
		ServiceCIDR:    []string{},
	})
	if !slices.Contains(scc.Finalizers, v2beta1.Finalizer) {
		t.Errorf("finalizers = %v, want %s", scc.Finalizers, v2beta1.Finalizer)
	}
	t.Logf("before kubeadm-config: %+v", scc.Status)

	// docs/guides/calico-overlay.md#7-troubleshooting (kubeadm-config workaround) and docs/design/behaviour.md#spidercoordinator-status: creating the ConfigMap must turn the coordinator Synced without a restart.
	createWithCleanup(t, guideKubeadmConfig())
	if svc := apiserverServiceCIDRs(t); !slices.Equal(svc, []string{"10.233.0.0/18"}) {
		t.Fatalf("apiserver ServiceCIDRs = %v, want the guide's [10.233.0.0/18]", svc)
	}
	// The Calico-overlay guide's oracle (docs/guides/calico-overlay.md#4-what-you-should-see).
	scc = waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: []string{"10.244.64.0/18"},
		ServiceCIDR:    []string{"10.233.0.0/18"},
	})
	t.Logf("after kubeadm-config: %+v", scc.Status)
}

func TestCoordinatorCalicoIPPools(t *testing.T) {
	installCalicoIPPoolCRD(t)
	createWithCleanup(t, guideKubeadmConfig())
	createWithCleanup(t, calicoIPPool("default-ipv4-ippool", "10.244.64.0/18", false))
	createWithCleanup(t, calicoIPPool("disabled", "10.250.0.0/18", true))
	startCoordinatorController(t)
	// The guide's own spec: podCIDRType calico.
	createGuideCoordinator(t, v2beta1.PodCIDRTypeCalico)
	svc := apiserverServiceCIDRs(t)

	scc := waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: []string{"10.244.64.0/18"},
		ServiceCIDR:    svc,
	})
	t.Logf("calico: %+v", scc.Status)

	// A pool added later is picked up from its watch event, well before the 60 s resync.
	createWithCleanup(t, calicoIPPool("second", "10.245.0.0/18", false))
	scc = waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: []string{"10.244.64.0/18", "10.245.0.0/18"},
		ServiceCIDR:    svc,
	})
	t.Logf("calico after a second pool: %+v", scc.Status)
}

func TestCoordinatorCiliumConfig(t *testing.T) {
	createWithCleanup(t, guideKubeadmConfig())
	startCoordinatorController(t)
	createGuideCoordinator(t, v2beta1.PodCIDRTypeCilium)

	waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseNotReady,
		Reason:         "podCIDRType cilium: ConfigMap kube-system/cilium-config not found: install Cilium or point global.ciliumConfigMap at its ConfigMap",
		OverlayPodCIDR: []string{},
		ServiceCIDR:    []string{},
	})
	createWithCleanup(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cilium-config"},
		Data:       map[string]string{"ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.244.64.0/18"},
	})
	scc := waitForCoordinatorStatus(t, v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: []string{"10.244.64.0/18"},
		ServiceCIDR:    apiserverServiceCIDRs(t),
	})
	t.Logf("cilium: %+v", scc.Status)
}

func calicoIPPool(name, cidr string, disabled bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1",
		"kind":       "IPPool",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"cidr": cidr, "disabled": disabled, "ipipMode": "Always", "natOutgoing": true},
	}}
	return u
}

// installCalicoIPPoolCRD installs testdata/calico-ippool-crd.yaml (installCRDs).
func installCalicoIPPoolCRD(t *testing.T) {
	t.Helper()
	installCRDs(t, "testdata/calico-ippool-crd.yaml")
}

// installCRDs installs the CRDs of the manifest file path, waits until each kind can be listed,
// and removes them at the end of the test.
func installCRDs(t *testing.T, path string) {
	t.Helper()
	ctx := testContext(t)
	objs := loadManifests(t, path)
	if len(objs) == 0 {
		t.Fatalf("no CRD in %s", path)
	}
	for _, o := range objs {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, crd); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, crd); err != nil {
			t.Fatalf("create CRD %s: %v", crd.Name, err)
		}
		t.Cleanup(func() {
			ctx := testContext(t)
			if err := env.Client.Delete(ctx, crd); client.IgnoreNotFound(err) != nil {
				t.Errorf("delete CRD: %v", err)
			}
			// Wait so that a later test installing it again does not find it terminating.
			err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
				err := env.Client.Get(ctx, client.ObjectKeyFromObject(crd), &apiextensionsv1.CustomResourceDefinition{})
				return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
			})
			if err != nil {
				t.Errorf("CRD %s not gone: %v", crd.Name, err)
			}
		})
		var lastErr error
		err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
			var got apiextensionsv1.CustomResourceDefinition
			if lastErr = env.Client.Get(ctx, client.ObjectKeyFromObject(crd), &got); lastErr != nil {
				return false, nil
			}
			established := slices.ContainsFunc(got.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
				return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
			})
			if !established {
				lastErr = errors.New("not Established")
				return false, nil
			}
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion(crd.Spec.Group + "/" + crd.Spec.Versions[0].Name)
			list.SetKind(crd.Spec.Names.ListKind)
			lastErr = env.Client.List(ctx, list, client.Limit(1))
			return lastErr == nil, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not usable: %v (last error: %v)", crd.Name, err, lastErr)
		}
	}
}
