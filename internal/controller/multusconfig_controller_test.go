package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

const ipvlanEth0Config = `{"cniVersion":"0.3.1","name":"ipvlan-eth0","plugins":[{"type":"ipvlan","master":"eth0","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`

// storedIPVlanEth0 is the Alibaba guide's ipvlan-eth0 as the API server stores it without the
// mutating webhook: CRD schema defaults only, no spec.coordinator.
func storedIPVlanEth0() *v2beta1.SpiderMultusConfig {
	return build.MultusConfig("kube-system", "ipvlan-eth0", build.UID("uid-ipvlan-eth0"), build.Annotation("example.com/team", "net"),
		build.CNIType("ipvlan"), build.With(func(smc *v2beta1.SpiderMultusConfig) {
			smc.Spec.EnableCoordinator, smc.Spec.DisableIPAM = new(true), new(false)
			smc.Spec.IPVlanConfig = &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}, MTU: new(int32(0))}
		}))
}

// smcOwner is the owner reference the controller gives the NAD of SpiderMultusConfig name with uid.
func smcOwner(name, uid string) metav1.OwnerReference {
	return build.BlockingControllerRef("spiderpool.spidernet.io/v2beta1", "SpiderMultusConfig", name, uid)
}

type smcFixture struct {
	c        client.Client
	r        *MultusConfigReconciler
	recorder *events.FakeRecorder
}

func newSMCFixture(t *testing.T, objs ...client.Object) *smcFixture {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(v2beta1.SchemeGroupVersion.WithKind("SpiderMultusConfig"), meta.RESTScopeNamespace)
	mapper.Add(NADGVK, meta.RESTScopeNamespace)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithRESTMapper(mapper).WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(20)
	return &smcFixture{c: c, r: NewMultusConfigReconciler(c, rec), recorder: rec}
}

func (f *smcFixture) reconcile(t *testing.T, ns, name string) reconcile.Result {
	t.Helper()
	res, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		t.Fatalf("Reconcile %s/%s: %v", ns, name, err)
	}
	return res
}

func (f *smcFixture) nad(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, nad); err != nil {
		t.Fatalf("get NAD %s/%s: %v", ns, name, err)
	}
	return nad
}

func (f *smcFixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func nadConfigOf(nad *unstructured.Unstructured) string {
	s, _, _ := unstructured.NestedString(nad.Object, "spec", "config")
	return s
}

func TestMultusConfigCreatesNAD(t *testing.T) {
	f := newSMCFixture(t, storedIPVlanEth0())
	res := f.reconcile(t, "kube-system", "ipvlan-eth0")
	if res.RequeueAfter != multusConfigResync {
		t.Errorf("RequeueAfter = %v, want the %v resync", res.RequeueAfter, multusConfigResync)
	}
	nad := f.nad(t, "kube-system", "ipvlan-eth0")
	if got := nadConfigOf(nad); got != ipvlanEth0Config {
		t.Errorf("spec.config\n got: %s\nwant: %s", got, ipvlanEth0Config)
	}
	if diff := cmp.Diff(map[string]string{"example.com/team": "net"}, nad.GetAnnotations()); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]metav1.OwnerReference{smcOwner("ipvlan-eth0", "uid-ipvlan-eth0")}, nad.GetOwnerReferences()); diff != "" {
		t.Errorf("ownerReferences (-want +got):\n%s", diff)
	}
}

func TestMultusConfigNADNameAndResourceAnnotation(t *testing.T) {
	smc := build.MultusConfig("default", "sriov-smc", build.UID("u1"), build.Annotation(v2beta1.AnnoMultusConfigName, "sriov-rdma"),
		build.CNIType("sriov"), build.With(func(smc *v2beta1.SpiderMultusConfig) {
			smc.Spec.SriovConfig = &v2beta1.SpiderSRIOVCniConfig{
				ResourceName: new("spidernet.io/mellanoxrdma"), VlanID: new(int32(100)), RdmaIsolation: new(true)}
		}))
	f := newSMCFixture(t, smc)
	f.reconcile(t, "default", "sriov-smc")
	nad := f.nad(t, "default", "sriov-rdma")
	want := map[string]string{v2beta1.AnnoMultusConfigName: "sriov-rdma", v2beta1.AnnoNADResourceName: "spidernet.io/mellanoxrdma"}
	if diff := cmp.Diff(want, nad.GetAnnotations()); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	wantConfig := `{"cniVersion":"0.3.1","name":"sriov-rdma","plugins":[{"vlan":100,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":{"type":"spiderpool"}},{"type":"rdma"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}`
	if got := nadConfigOf(nad); got != wantConfig {
		t.Errorf("spec.config\n got: %s\nwant: %s", got, wantConfig)
	}
}

func TestMultusConfigUpdatesNAD(t *testing.T) {
	ref := smcOwner("ipvlan-eth0", "uid-ipvlan-eth0")
	team := build.Annotation("example.com/team", "net")
	tests := []struct {
		name string
		nad  *unstructured.Unstructured
	}{
		{"stale config", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(`{"old":true}`), team, build.Owner(ref))},
		{"no config", build.NAD("kube-system", "ipvlan-eth0", team, build.Owner(ref))},
		{"extra annotation", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(ipvlanEth0Config), team, build.Annotation("x", "y"),
			build.Owner(ref))},
		{"missing annotation", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(ipvlanEth0Config), build.Owner(ref))},
		{"owner reference removed", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(ipvlanEth0Config), team)},
		{"no controller owner is taken over, other owners kept", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(`{}`),
			build.Owner(metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "keep", UID: "cm"}))},
		{"controller gone (SpiderMultusConfig recreated with a new UID)", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(`{}`),
			build.Owner(smcOwner("ipvlan-eth0", "uid-of-deleted-smc")))},
		{"controlled by another kind", build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(`{}`),
			build.ControlledBy("apps/v1", "Deployment", "d", "d"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSMCFixture(t, storedIPVlanEth0(), tt.nad)
			f.reconcile(t, "kube-system", "ipvlan-eth0")
			nad := f.nad(t, "kube-system", "ipvlan-eth0")
			if got := nadConfigOf(nad); got != ipvlanEth0Config {
				t.Errorf("spec.config\n got: %s\nwant: %s", got, ipvlanEth0Config)
			}
			if diff := cmp.Diff(map[string]string{"example.com/team": "net"}, nad.GetAnnotations()); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
			owner := metav1.GetControllerOf(nad)
			if owner == nil || !cmp.Equal(ref, *owner) {
				t.Errorf("controller reference = %+v, want %+v", owner, ref)
			}
			for _, o := range tt.nad.GetOwnerReferences() {
				if o.Controller == nil && !hasOwner(nad, o.UID) {
					t.Errorf("non-controller owner %s dropped", o.Name)
				}
			}
		})
	}
}

func hasOwner(obj metav1.Object, uid types.UID) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.UID == uid {
			return true
		}
	}
	return false
}

func TestMultusConfigUpToDateNADIsNotWritten(t *testing.T) {
	f := newSMCFixture(t, storedIPVlanEth0())
	f.reconcile(t, "kube-system", "ipvlan-eth0")
	before := f.nad(t, "kube-system", "ipvlan-eth0").GetResourceVersion()
	f.reconcile(t, "kube-system", "ipvlan-eth0")
	if after := f.nad(t, "kube-system", "ipvlan-eth0").GetResourceVersion(); after != before {
		t.Errorf("NAD written although up to date: resourceVersion %s -> %s", before, after)
	}
}

func TestMultusConfigLeavesNADOfAnotherMultusConfig(t *testing.T) {
	owner := storedIPVlanEth0()
	intruder := storedIPVlanEth0()
	intruder.Name, intruder.UID = "intruder", "uid-intruder"
	intruder.Annotations = map[string]string{v2beta1.AnnoMultusConfigName: "ipvlan-eth0"}
	intruder.Spec.IPVlanConfig.Master = []string{"eth9"}
	theirs := build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(ipvlanEth0Config), build.Annotation("example.com/team", "net"),
		build.Owner(smcOwner("ipvlan-eth0", "uid-ipvlan-eth0")))

	f := newSMCFixture(t, owner, intruder, theirs)
	before := f.nad(t, "kube-system", "ipvlan-eth0").GetResourceVersion()
	f.reconcile(t, "kube-system", "intruder")
	nad := f.nad(t, "kube-system", "ipvlan-eth0")
	if nad.GetResourceVersion() != before || nadConfigOf(nad) != ipvlanEth0Config {
		t.Errorf("NAD of another SpiderMultusConfig was overwritten: %v", nad.Object)
	}
	evs := f.events()
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning NADConflict ") || !strings.Contains(evs[0], "ipvlan-eth0") {
		t.Errorf("events = %q, want one Warning NADConflict naming the owner", evs)
	}
}

func TestMultusConfigWaitsForDeletingNAD(t *testing.T) {
	deleting := build.NAD("kube-system", "ipvlan-eth0", build.NADConfig(`{"old":true}`), build.Owner(smcOwner("ipvlan-eth0", "uid-ipvlan-eth0")),
		build.Finalizer("example.com/hold"), build.DeletedAt(time.Now()))
	f := newSMCFixture(t, storedIPVlanEth0(), deleting)
	res := f.reconcile(t, "kube-system", "ipvlan-eth0")
	if res.RequeueAfter != nadDeletionPoll {
		t.Errorf("RequeueAfter = %v, want %v while the NAD is being deleted", res.RequeueAfter, nadDeletionPoll)
	}
	if got := nadConfigOf(f.nad(t, "kube-system", "ipvlan-eth0")); got != `{"old":true}` {
		t.Errorf("NAD being deleted was written: %s", got)
	}
}

func TestMultusConfigInvalidIsNotGenerated(t *testing.T) {
	smc := storedIPVlanEth0()
	smc.Spec.IPVlanConfig.Master = []string{"eth0", "eth1"} // two masters need a bond
	f := newSMCFixture(t, smc)
	f.reconcile(t, "kube-system", "ipvlan-eth0")
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	err := f.c.Get(context.Background(), types.NamespacedName{Namespace: "kube-system", Name: "ipvlan-eth0"}, nad)
	if client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("NAD of an invalid SpiderMultusConfig: err=%v, obj=%v", err, nad.Object)
	}
	evs := f.events()
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning InvalidConfig ") || !strings.Contains(evs[0], "spec.ipvlan.bond") {
		t.Errorf("events = %q, want one Warning InvalidConfig naming spec.ipvlan.bond", evs)
	}
}

func TestMultusConfigCustomWithoutConfig(t *testing.T) {
	smc := build.MultusConfig("kube-system", "default-net", build.UID("u"))
	f := newSMCFixture(t, smc)
	f.reconcile(t, "kube-system", "default-net")
	nad := f.nad(t, "kube-system", "default-net")
	if _, found := nad.Object["spec"]; found {
		t.Errorf("custom SpiderMultusConfig without customCNI gave a NAD spec: %v", nad.Object["spec"])
	}
}

func TestMultusConfigGoneOrDeleting(t *testing.T) {
	f := newSMCFixture(t)
	if res := f.reconcile(t, "default", "missing"); res != (reconcile.Result{}) {
		t.Errorf("missing SpiderMultusConfig: result %+v", res)
	}

	smc := storedIPVlanEth0()
	smc.Finalizers = []string{"example.com/hold"}
	smc.DeletionTimestamp = new(metav1.Now())
	f = newSMCFixture(t, smc)
	f.reconcile(t, "kube-system", "ipvlan-eth0")
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: "kube-system", Name: "ipvlan-eth0"}, nad); err == nil {
		t.Errorf("NAD created for a SpiderMultusConfig being deleted")
	}
}
