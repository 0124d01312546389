package workload

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func podOwnedBy(refs ...metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: refs}}
}

func TestTopController(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	meta := func(name, uid string, refs ...metav1.OwnerReference) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid), OwnerReferences: refs}
	}
	objs := []client.Object{
		&appsv1.ReplicaSet{ObjectMeta: meta("web-5d9", "rs-1", build.ControllerRef("apps/v1", "Deployment", "web", "dep-1"))},
		&appsv1.ReplicaSet{ObjectMeta: meta("bare-rs", "rs-2")},
		&appsv1.ReplicaSet{ObjectMeta: meta("recreated", "rs-new", build.ControllerRef("apps/v1", "Deployment", "other", "dep-2"))},
		&batchv1.Job{ObjectMeta: meta("nightly-2901", "job-1", build.ControllerRef("batch/v1", "CronJob", "nightly", "cj-1"))},
	}
	type result struct {
		Top Controller
		Err bool
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		want result
	}{
		"bare pod": {
			pod:  podOwnedBy(),
			want: result{Top: Controller{APIVersion: "v1", Kind: KindPod, Namespace: "ns", Name: "p"}},
		},
		"owner that is not the controller": {
			pod:  podOwnedBy(metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d9", UID: "rs-1"}),
			want: result{Top: Controller{APIVersion: "v1", Kind: KindPod, Namespace: "ns", Name: "p"}},
		},
		"Deployment via ReplicaSet": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "web-5d9", "rs-1")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "web"}},
		},
		"CronJob via Job": {
			pod:  podOwnedBy(build.ControllerRef("batch/v1", "Job", "nightly-2901", "job-1")),
			want: result{Top: Controller{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "ns", Name: "nightly"}},
		},
		"StatefulSet": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", KindStatefulSet, "db", "sts-1")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: KindStatefulSet, Namespace: "ns", Name: "db"}},
		},
		"DaemonSet": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", "DaemonSet", "agent", "ds-1")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: "DaemonSet", Namespace: "ns", Name: "agent"}},
		},
		"ReplicaSet without a controller": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "bare-rs", "rs-2")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "bare-rs"}},
		},
		"ReplicaSet recreated under the same name": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "recreated", "rs-old")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "recreated"}},
		},
		"ReplicaSet gone": {
			pod:  podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "gone", "rs-3")),
			want: result{Top: Controller{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "gone"}, Err: true},
		},
		"a ReplicaSet of another group is not looked up": {
			pod:  podOwnedBy(build.ControllerRef("example.com/v1", "ReplicaSet", "web-5d9", "rs-1")),
			want: result{Top: Controller{APIVersion: "example.com/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "web-5d9"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
			top, err := TopController(context.Background(), c, tc.pod, nil)
			if diff := cmp.Diff(tc.want, result{Top: top, Err: err != nil}); diff != "" {
				t.Errorf("TopController() (-want +got):\n%s", diff)
			}
		})
	}
}

// The cache answers a ReplicaSet's top controller without a GET; what is not found is not
// remembered.
func TestTopControllerCache(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	gets := 0
	c := fake.NewClientBuilder().WithScheme(s).
		WithObjects(&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-5d9", UID: "rs-1",
			OwnerReferences: []metav1.OwnerReference{build.ControllerRef("apps/v1", "Deployment", "web", "dep-1")}}}).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	var cache OwnerCache
	deployment := Controller{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "web"}
	for i := range 3 {
		top, err := TopController(context.Background(), c, podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "web-5d9", "rs-1")), &cache)
		if err != nil || top != deployment {
			t.Fatalf("call %d: TopController() = %+v, %v; want %+v", i, top, err, deployment)
		}
	}
	for range 2 {
		if _, err := TopController(context.Background(), c, podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "gone", "rs-2")), &cache); err == nil {
			t.Fatal("TopController() of a missing ReplicaSet: no error")
		}
	}
	if diff := cmp.Diff(3, gets); diff != "" {
		t.Errorf("GETs (-want +got):\n%s", diff)
	}
}

func TestStatefulSetOf(t *testing.T) {
	endpoint := func(kind, name string) *v2beta1.SpiderEndpoint {
		return build.Endpoint("", "", build.TopController(kind, name))
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		ep   *v2beta1.SpiderEndpoint
		want string
	}{
		"member":                             {pod: podOwnedBy(build.ControllerRef("apps/v1", KindStatefulSet, "db", "u")), want: "db"},
		"member by an older apps version":    {pod: podOwnedBy(build.ControllerRef("apps/v1beta2", KindStatefulSet, "db", "u")), want: "db"},
		"StatefulSet of another group":       {pod: podOwnedBy(build.ControllerRef("apps.kruise.io/v1beta1", KindStatefulSet, "db", "u"))},
		"owned but not controlled":           {pod: podOwnedBy(metav1.OwnerReference{APIVersion: "apps/v1", Kind: KindStatefulSet, Name: "db", UID: "u"})},
		"Deployment pod":                     {pod: podOwnedBy(build.ControllerRef("apps/v1", "ReplicaSet", "web-5d9", "u"))},
		"the pod decides, not the endpoint":  {pod: podOwnedBy(), ep: endpoint(KindStatefulSet, "db")},
		"pod gone, endpoint of a member":     {ep: endpoint(KindStatefulSet, "db"), want: "db"},
		"pod gone, endpoint of a Deployment": {ep: endpoint("Deployment", "web")},
		"both gone":                          {},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, StatefulSetOf(tc.pod, tc.ep)); diff != "" {
				t.Errorf("StatefulSetOf() (-want +got):\n%s", diff)
			}
		})
	}
}
