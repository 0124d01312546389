package build_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestPool(t *testing.T) {
	got := build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.ExcludeIPs("10.6.0.15"),
		build.Gateway("10.6.0.1"), build.Route("10.7.0.0/16", "10.6.0.1"), build.Default(), build.Label("k", "v"),
		build.Allocated("10.6.0.10", "ns/a", "u1"), build.Allocated("10.6.0.11", "ns/b", "u2"))
	want := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"k": "v"}},
		Spec: v2beta1.IPPoolSpec{IPVersion: new(int64(4)), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10-10.6.0.20"},
			ExcludeIPs: []string{"10.6.0.15"}, Gateway: new("10.6.0.1"), Routes: []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "10.6.0.1"}},
			Default: new(true)},
		Status: v2beta1.IPPoolStatus{
			AllocatedIPs:     new(`{"10.6.0.10":{"pod":"ns/a","podUid":"u1"},"10.6.0.11":{"pod":"ns/b","podUid":"u2"}}`),
			AllocatedIPCount: new(int64(2)),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Pool (-want +got):\n%s", diff)
	}

	for subnet, want := range map[string]*int64{"fd00::/64": new(int64(6)), "10.6.0.1/16": new(int64(4)), "oops": nil} {
		if diff := cmp.Diff(want, build.Pool("p", subnet).Spec.IPVersion); diff != "" {
			t.Errorf("ipVersion of subnet %q (-want +got):\n%s", subnet, diff)
		}
	}
	if v := build.Pool("p", "10.6.0.0/16", build.NoVersion()).Spec.IPVersion; v != nil {
		t.Errorf("NoVersion left ipVersion %d", *v)
	}
	if v := build.Subnet("s", "10.6.0.0/16", build.Version(5)).Spec.IPVersion; v == nil || *v != 5 {
		t.Errorf("Version(5) gave %v", v)
	}
}

func TestEndpoint(t *testing.T) {
	got := build.Endpoint("ns", "web-0", build.PodUID("u1"), build.OnNode("node-1"), build.TopController("StatefulSet", "web"),
		build.IPv4("eth0", "10.6.0.5/16", "v4"), build.IPv4("net1", "10.7.0.5/16", "v4b"), build.IPv6("eth0", "fd00::5/64", "v6"))
	want := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-0"},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{UID: "u1", Node: "node-1", IPs: []v2beta1.IPAllocationDetail{
				{NIC: "eth0", IPv4: new("10.6.0.5/16"), IPv4Pool: new("v4"), IPv6: new("fd00::5/64"), IPv6Pool: new("v6")},
				{NIC: "net1", IPv4: new("10.7.0.5/16"), IPv4Pool: new("v4b")},
			}},
			OwnerControllerType: "StatefulSet", OwnerControllerName: "web",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Endpoint (-want +got):\n%s", diff)
	}
}

func TestPod(t *testing.T) {
	got := build.Pod("ns", "web-0", build.UID("u1"), build.OnNode("node-1"), build.Phase(corev1.PodRunning),
		build.Container("c", "pause"), build.Annotation("a", "b"), build.Owner(build.ControllerRef("apps/v1", "StatefulSet", "web", "s1")),
		build.Deleting(), build.Finalizer("f"))
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-0", UID: "u1", Annotations: map[string]string{"a": "b"},
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "s1", Controller: new(true)}},
			DeletionTimestamp: &metav1.Time{}, Finalizers: []string{"f"}},
		Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Pod (-want +got):\n%s", diff)
	}
}

func TestStatefulSet(t *testing.T) {
	got := build.StatefulSet("ns", "web", build.UID("s1"), build.Replicas(2), build.PodSelector(build.Selector("app", "web")),
		build.Template(build.Label("app", "web"), build.Container("c", "busybox")))
	want := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "s1"},
		Spec: appsv1.StatefulSetSpec{Replicas: new(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("StatefulSet (-want +got):\n%s", diff)
	}
}

func TestNAD(t *testing.T) {
	got := build.NAD("kube-system", "macvlan", build.NADConfig(`{"cniVersion":"0.3.1"}`), build.Annotation("a", "b"),
		build.Owner(build.BlockingControllerRef("spiderpool.spidernet.io/v2beta1", "SpiderMultusConfig", "macvlan", "u1")))
	want := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"namespace": "kube-system", "name": "macvlan", "annotations": map[string]any{"a": "b"},
			"ownerReferences": []any{map[string]any{"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderMultusConfig",
				"name": "macvlan", "uid": "u1", "controller": true, "blockOwnerDeletion": true}}},
		"spec": map[string]any{"config": `{"cniVersion":"0.3.1"}`},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NAD (-want +got):\n%s", diff)
	}
}

// An API server and a fake client both encode what they are given: Deleting's zero time comes
// back as no deletion at all, DeletedAt's time comes back.
func TestDeletionTimestampEncoding(t *testing.T) {
	for name, tc := range map[string]struct {
		opt      build.Option
		survives bool
	}{
		"Deleting":  {build.Deleting(), false},
		"DeletedAt": {build.DeletedAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), true},
	} {
		raw, err := json.Marshal(build.Pod("ns", "p", tc.opt, build.Finalizer("f")))
		if err != nil {
			t.Fatal(err)
		}
		var back corev1.Pod
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if got := back.DeletionTimestamp != nil; got != tc.survives {
			t.Errorf("%s: deletion timestamp after encoding %v, want it kept %v", name, back.DeletionTimestamp, tc.survives)
		}
	}
}

// An option given to a kind without its field is a broken test: it panics, naming both.
func TestOptionOfAnotherKind(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "build.Gateway does not apply to *v1.Pod") {
			t.Errorf("recovered %v", r)
		}
	}()
	build.Pod("ns", "p", build.Gateway("10.6.0.1"))
}
