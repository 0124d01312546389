package workload

import (
	"context"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// Kinds of top controllers the IPAM decisions single out, as SpiderEndpoints record them in
// status.ownerControllerType.
const (
	KindPod         = "Pod"
	KindStatefulSet = "StatefulSet"
)

// Controller names the top controller of a pod: the workload users name, which a SpiderEndpoint
// records and pool selection by application matches. It is the IPAM core's own type.
type Controller = ipam.Controller

// parents are the owners worth one more lookup: a ReplicaSet is normally run by a Deployment and a
// Job by a CronJob, and the workload users name is the top one.
var parents = map[schema.GroupKind]schema.GroupVersionKind{
	{Group: appsv1.GroupName, Kind: "ReplicaSet"}: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
	{Group: batchv1.GroupName, Kind: "Job"}:       batchv1.SchemeGroupVersion.WithKind("Job"),
}

// TopController returns the pod's top controller: its controller owner (a StatefulSet, a
// DaemonSet, ...), or that owner's own controller for a ReplicaSet (a Deployment) or a Job (a
// CronJob), or the pod itself (KindPod and the pod's name) when it has no controller. Only the
// intermediate owner is read, as metadata through r. When that read fails, or the owner was
// recreated under the same name (the pod is then an orphan of the old one), the answer is the
// owner itself; a failed read is also returned as err, unwrapped, for the caller to log: the answer
// only labels the SpiderEndpoint and decides StatefulSet handling, which depends on the first level
// alone. cache, when not nil, remembers the answer per intermediate owner.
func TopController(ctx context.Context, r client.Reader, pod *corev1.Pod, cache *OwnerCache) (Controller, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Controller{APIVersion: "v1", Kind: KindPod, Namespace: pod.Namespace, Name: pod.Name}, nil
	}
	top := Controller{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return top, nil
	}
	gvk, ok := parents[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if !ok {
		return top, nil
	}
	if c, ok := cache.get(ref.UID); ok {
		return c, nil
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(gvk)
	if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, meta); err != nil {
		return top, err
	}
	if meta.UID != ref.UID {
		return top, nil
	}
	if p := metav1.GetControllerOf(meta); p != nil {
		top = Controller{APIVersion: p.APIVersion, Kind: p.Kind, Namespace: pod.Namespace, Name: p.Name}
	}
	cache.put(ref.UID, top)
	return top, nil
}

// maxOwnerEntries bounds an OwnerCache; it is cleared when full, which only costs lookups again.
const maxOwnerEntries = 4096

// OwnerCache remembers the top controller of ReplicaSets and Jobs by UID for TopController: an
// owner reference never changes, and every pod of a Deployment would otherwise cost a GET. The zero
// value is ready for use and safe for concurrent use; a nil *OwnerCache remembers nothing.
type OwnerCache struct {
	mu sync.Mutex
	m  map[types.UID]Controller
}

func (c *OwnerCache) get(uid types.UID) (Controller, bool) {
	if c == nil {
		return Controller{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[uid]
	return v, ok
}

func (c *OwnerCache) put(uid types.UID, v Controller) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxOwnerEntries {
		c.m = make(map[types.UID]Controller)
	}
	c.m[uid] = v
}

// StatefulSetOf names the StatefulSet whose member the pod name is: from the pod's controller
// when the pod exists (an apps StatefulSet, in any version of the group), otherwise from the
// SpiderEndpoint an agent kept for it; "" when neither says so. Either may be nil.
func StatefulSetOf(pod *corev1.Pod, ep *v2beta1.SpiderEndpoint) string {
	if pod != nil {
		if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == KindStatefulSet && strings.HasPrefix(ref.APIVersion, appsv1.GroupName+"/") {
			return ref.Name
		}
		return ""
	}
	if ep != nil && ep.Status.OwnerControllerType == KindStatefulSet {
		return ep.Status.OwnerControllerName
	}
	return ""
}
