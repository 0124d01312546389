package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// Kinds of top controllers the agent treats specially.
const (
	kindPod         = "Pod"
	kindStatefulSet = "StatefulSet"
)

// getCachedOrLive reads key into obj from the cache and, when the cache has
// not seen it yet (new objects race the informers), from the API.
func (s *Server) getCachedOrLive(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := s.cache.Get(ctx, key, obj)
	if !apierrors.IsNotFound(err) {
		return err
	}
	return s.live.Get(ctx, key, obj)
}

// pod returns the pod namespace/name whose UID is uid. The cache may still
// hold an older incarnation of a recreated pod, so a UID mismatch there is
// checked against the API before it is believed.
func (s *Server) pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	pod := &corev1.Pod{}
	err := s.cache.Get(ctx, key, pod)
	switch {
	case err == nil && string(pod.UID) == uid:
		return pod, nil
	case err == nil || apierrors.IsNotFound(err):
		if err := s.live.Get(ctx, key, pod); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &reasonError{ErrNotFound, fmt.Sprintf("pod %s/%s not found", namespace, name)}
			}
			return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
		}
	default:
		return nil, fmt.Errorf("get pod %s/%s from cache: %w", namespace, name, err)
	}
	if string(pod.UID) != uid {
		return nil, &reasonError{ErrNotFound, fmt.Sprintf(
			"pod %s/%s has UID %s, not %s: the requested pod incarnation no longer exists", namespace, name, pod.UID, uid)}
	}
	return pod, nil
}

// alive reports whether the pod may still be given addresses: it is not
// terminating and has not finished (evicted pods are Failed).
func alive(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func deadPod(pod *corev1.Pod) error {
	// Upstream's text, typo included: users and tests search for it.
	return &reasonError{ErrDeadPod, fmt.Sprintf("dead Pod %s/%s, we cannot allocate IP addresees to it", pod.Namespace, pod.Name)}
}

// parents are the owners worth one more lookup: a ReplicaSet is normally
// run by a Deployment and a Job by a CronJob, and the workload users name
// is the top one.
var parents = map[schema.GroupKind]schema.GroupVersionKind{
	{Group: appsv1.GroupName, Kind: "ReplicaSet"}: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
	{Group: batchv1.GroupName, Kind: "Job"}:       batchv1.SchemeGroupVersion.WithKind("Job"),
}

// topController returns the pod's top controller: its controller owner,
// or that owner's controller for a ReplicaSet (Deployment) or Job
// (CronJob), or the pod itself. A failed lookup of the intermediate owner
// falls back to that owner: the answer only labels the SpiderEndpoint and
// decides StatefulSet handling, which depends on the first level alone.
func (s *Server) topController(ctx context.Context, pod *corev1.Pod) ipam.Controller {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return ipam.Controller{APIVersion: "v1", Kind: kindPod, Namespace: pod.Namespace, Name: pod.Name}
	}
	top := ipam.Controller{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return top
	}
	gvk, ok := parents[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if !ok {
		return top
	}
	if c, ok := s.owners.get(ref.UID); ok {
		return c
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(gvk)
	if err := s.live.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, meta); err != nil {
		s.log.Debug("look up owner of pod", keyPod, pod.Namespace+"/"+pod.Name, slog.String("owner", ref.Kind+"/"+ref.Name), keyError, err)
		return top
	}
	if meta.UID != ref.UID {
		return top // the owner was recreated; the pod is an orphan of the old one
	}
	if p := metav1.GetControllerOf(meta); p != nil {
		top = ipam.Controller{APIVersion: p.APIVersion, Kind: p.Kind, Namespace: pod.Namespace, Name: p.Name}
	}
	s.owners.put(ref.UID, top)
	return top
}

// maxOwnerEntries bounds ownerCache; it is cleared when full, which only
// costs lookups again.
const maxOwnerEntries = 4096

// ownerCache remembers the top controller of ReplicaSets and Jobs by UID:
// an owner reference never changes, and every pod of a Deployment would
// otherwise cost a GET.
type ownerCache struct {
	mu sync.Mutex
	m  map[types.UID]ipam.Controller
}

func (c *ownerCache) get(uid types.UID) (ipam.Controller, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[uid]
	return v, ok
}

func (c *ownerCache) put(uid types.UID, v ipam.Controller) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxOwnerEntries {
		c.m = make(map[types.UID]ipam.Controller)
	}
	c.m[uid] = v
}
