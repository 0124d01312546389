package integration

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// The NAD strings docs/design/behaviour.md#nad-generation gives for the guides' SpiderMultusConfigs. The API server
// stores those objects with CRD schema defaults only (there is no mutating webhook in this suite):
// cniType, enableCoordinator true, disableIPAM false and ipvlan/macvlan mtu 0 are set, but
// spec.coordinator is absent, because a schema default inside an object applies only when the
// object itself is present. Upstream's generator would then write a bare {"type":"coordinator"}.
// The reconciler runs the webhook's defaulting on its in-memory copy first, which turns the missing
// coordinator into {mode auto, tunePodRoutes true, ...}; hence the coordinator object below, the
// same as with the webhook. "mtu":0 comes from the schema default (and the webhook's).
const (
	wantIPvlanEth0 = `{"cniVersion":"0.3.1","name":"ipvlan-eth0","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`
	wantIPvlanEth1 = `{"cniVersion":"0.3.1","name":"ipvlan-eth1","plugins":[{"type":"ipvlan","master":"eth1","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`
	wantMacvlan    = `{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`
)

// startMultusConfigController runs a manager with only the SpiderMultusConfig reconciler until the
// test ends. Cleanups registered before this call run after the manager has stopped.
func startMultusConfigController(t *testing.T) {
	t.Helper()
	runManager(t, func(mgr ctrl.Manager) error {
		return controller.NewMultusConfigReconciler(mgr.GetClient(), mgr.GetEventRecorder("spiderpool-controller")).SetupWithManager(mgr)
	})
}

func getNAD(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(controller.NADGVK)
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, nad)
	return nad, err
}

// waitNAD polls until the NAD exists and cond holds, and returns it.
func waitNAD(ctx context.Context, t *testing.T, ns, name string, cond func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last *unstructured.Unstructured
	var lastErr error
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		nad, err := getNAD(ctx, ns, name)
		if err != nil {
			lastErr = client.IgnoreNotFound(err)
			return false, nil
		}
		last, lastErr = nad, nil
		return cond(nad), nil
	})
	if err != nil {
		var seen any
		if last != nil {
			seen = last.Object
		}
		t.Fatalf("NAD %s/%s: %v; last seen %v (last error %v)", ns, name, err, seen, lastErr)
	}
	return last
}

func nadConfig(nad *unstructured.Unstructured) string {
	s, _, _ := unstructured.NestedString(nad.Object, "spec", "config")
	return s
}

func hasConfig(want string) func(*unstructured.Unstructured) bool {
	return func(nad *unstructured.Unstructured) bool { return nadConfig(nad) == want }
}

func TestMultusConfigGeneratesGuideNADs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var smcs []*unstructured.Unstructured
	for _, file := range []string{"testdata/public-cloud.yaml", "testdata/calico-overlay.yaml"} {
		for _, o := range loadManifests(t, file) {
			if o.GetKind() == "SpiderMultusConfig" {
				smcs = append(smcs, o)
			}
		}
	}
	intruder := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1",
		"kind":       "SpiderMultusConfig",
		"metadata": map[string]any{"name": "macvlan-intruder", "namespace": "default",
			"annotations": map[string]any{v2beta1.AnnoMultusConfigName: "macvlan-ens192"}},
		"spec": map[string]any{"cniType": "macvlan", "macvlan": map[string]any{"master": []any{"ens224"}}},
	}}
	nads := []types.NamespacedName{{Namespace: "kube-system", Name: "ipvlan-eth0"}, {Namespace: "kube-system", Name: "ipvlan-eth1"},
		{Namespace: "default", Name: "macvlan-ens192"}}
	// No garbage collector runs against this control plane, so the NADs are removed by hand,
	// after the manager has stopped (cleanups run last-registered first).
	t.Cleanup(func() {
		ctx := context.Background()
		deleteAll(ctx, t, env.Client, append(smcs, intruder))
		for _, key := range nads {
			nad := &unstructured.Unstructured{}
			nad.SetGroupVersionKind(controller.NADGVK)
			nad.SetNamespace(key.Namespace)
			nad.SetName(key.Name)
			if err := env.Client.Delete(ctx, nad); client.IgnoreNotFound(err) != nil {
				t.Errorf("delete NAD %s: %v", key, err)
			}
		}
	})
	startMultusConfigController(t)

	if err := applyStrict(ctx, env.Client, smcs); err != nil {
		t.Fatalf("apply guide SpiderMultusConfigs: %v", err)
	}

	want := map[types.NamespacedName]string{nads[0]: wantIPvlanEth0, nads[1]: wantIPvlanEth1, nads[2]: wantMacvlan}
	for _, key := range nads {
		smc := getSMC(t, key.Namespace, key.Name)
		stored, _ := json.Marshal(smc.Spec)
		t.Logf("stored %s spec: %s", key, stored)
		if smc.Spec.CoordinatorConfig != nil {
			t.Errorf("%s: stored spec.coordinator = %+v; the expected strings assume the schema leaves it out", key, smc.Spec.CoordinatorConfig)
		}

		nad := waitNAD(ctx, t, key.Namespace, key.Name, hasConfig(want[key]))
		t.Logf("NAD %s spec.config: %s", key, nadConfig(nad))
		wantRef := []metav1.OwnerReference{{APIVersion: "spiderpool.spidernet.io/v2beta1", Kind: "SpiderMultusConfig",
			Name: smc.Name, UID: smc.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
		if got := nad.GetOwnerReferences(); !equalRefs(got, wantRef) {
			t.Errorf("%s ownerReferences = %+v, want %+v", key, got, wantRef)
		}
		if !maps.Equal(nad.GetAnnotations(), smc.Annotations) {
			t.Errorf("%s annotations = %v, want the SpiderMultusConfig's %v", key, nad.GetAnnotations(), smc.Annotations)
		}
	}

	t.Run("updating the SpiderMultusConfig updates the NAD", func(t *testing.T) {
		smc := getSMC(t, "default", "macvlan-ens192")
		patch := []byte(`{"metadata":{"annotations":{"multus.spidernet.io/cni-version":"1.0.0","example.com/team":"net"}},"spec":{"macvlan":{"mtu":1400}}}`)
		if err := env.Client.Patch(ctx, smc, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		const wantUpdated = `{"cniVersion":"1.0.0","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":1400,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`
		nad := waitNAD(ctx, t, "default", "macvlan-ens192", hasConfig(wantUpdated))
		wantAnno := map[string]string{v2beta1.AnnoMultusConfigCNIVersion: "1.0.0", "example.com/team": "net"}
		if !maps.Equal(nad.GetAnnotations(), wantAnno) {
			t.Errorf("annotations = %v, want %v", nad.GetAnnotations(), wantAnno)
		}
	})

	t.Run("a NAD controlled by another SpiderMultusConfig is left alone", func(t *testing.T) {
		before, err := getNAD(ctx, "default", "macvlan-ens192")
		if err != nil {
			t.Fatal(err)
		}
		if err := applyStrict(ctx, env.Client, []*unstructured.Unstructured{intruder}); err != nil {
			t.Fatal(err)
		}
		// The Warning event proves the intruder was reconciled; the NAD must be untouched after it.
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		err = testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
			var evs eventsv1.EventList
			if err := env.Client.List(ctx, &evs, client.InNamespace("default")); err != nil {
				return false, err
			}
			for _, ev := range evs.Items {
				if ev.Regarding.Name == "macvlan-intruder" && ev.Reason == controller.ReasonNADConflict && ev.Type == "Warning" {
					t.Logf("event: %s", ev.Note)
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("no NADConflict event for macvlan-intruder: %v", err)
		}
		after, err := getNAD(ctx, "default", "macvlan-ens192")
		if err != nil {
			t.Fatal(err)
		}
		if after.GetResourceVersion() != before.GetResourceVersion() {
			t.Errorf("NAD rewritten: %s\nbefore: %v", nadConfig(after), before.Object)
		}
	})

	t.Run("a deleted NAD comes back", func(t *testing.T) {
		old, err := getNAD(ctx, "kube-system", "ipvlan-eth1")
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		nad := waitNAD(ctx, t, "kube-system", "ipvlan-eth1", func(n *unstructured.Unstructured) bool {
			return n.GetUID() != old.GetUID() && nadConfig(n) == wantIPvlanEth1
		})
		if ref := metav1.GetControllerOf(nad); ref == nil || ref.Name != "ipvlan-eth1" {
			t.Errorf("recreated NAD controller = %+v", ref)
		}
	})
}

func equalRefs(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].APIVersion != b[i].APIVersion || a[i].Kind != b[i].Kind || a[i].Name != b[i].Name || a[i].UID != b[i].UID ||
			!ptr.Equal(a[i].Controller, b[i].Controller) || !ptr.Equal(a[i].BlockOwnerDeletion, b[i].BlockOwnerDeletion) {
			return false
		}
	}
	return true
}
