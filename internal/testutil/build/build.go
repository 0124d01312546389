package build

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Option sets part of the object a builder makes. Options apply in order: of two that set one field
// the later wins, while those that add to a list or map (Label, Route, Allocated, ...) say so.
type Option func(obj metav1.Object)

// made applies opts to obj and returns it: the last step of every builder.
func made[T metav1.Object](obj T, opts []Option) T {
	for _, o := range opts {
		o(obj)
	}
	return obj
}

// misuse is the panic of an option given to a kind without its field.
func misuse(option string, obj metav1.Object) string {
	return fmt.Sprintf("build.%s does not apply to %T", option, obj)
}

// only makes an option for one kind.
func only[T any](option string, f func(*T)) Option {
	return func(obj metav1.Object) {
		t, ok := any(obj).(*T)
		if !ok {
			panic(misuse(option, obj))
		}
		f(t)
	}
}

// With applies f to the object when it is a *T, for the fields no option covers:
//
//	build.MultusConfig("default", "net", build.With(func(m *v2beta1.SpiderMultusConfig) { ... }))
func With[T any](f func(*T)) Option {
	return only("With", f)
}

// InNamespace sets metadata.namespace.
func InNamespace(ns string) Option { return func(obj metav1.Object) { obj.SetNamespace(ns) } }

// UID sets metadata.uid.
func UID(uid string) Option { return func(obj metav1.Object) { obj.SetUID(types.UID(uid)) } }

// Label adds the label key=value.
func Label(key, value string) Option {
	return func(obj metav1.Object) { obj.SetLabels(with(obj.GetLabels(), key, value)) }
}

// Annotation adds the annotation key=value.
func Annotation(key, value string) Option {
	return func(obj metav1.Object) { obj.SetAnnotations(with(obj.GetAnnotations(), key, value)) }
}

// Labels adds every label of m, as Label does each.
func Labels(m map[string]string) Option {
	return func(obj metav1.Object) {
		for k, v := range m {
			obj.SetLabels(with(obj.GetLabels(), k, v))
		}
	}
}

// Annotations adds every annotation of m, as Annotation does each.
func Annotations(m map[string]string) Option {
	return func(obj metav1.Object) {
		for k, v := range m {
			obj.SetAnnotations(with(obj.GetAnnotations(), k, v))
		}
	}
}

// with is m, made if nil, with key set to value.
func with(m map[string]string, key, value string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}

// Finalizer appends a finalizer.
func Finalizer(f string) Option {
	return func(obj metav1.Object) { obj.SetFinalizers(append(obj.GetFinalizers(), f)) }
}

// Deleting gives the object a deletion timestamp (the zero time): it is being deleted and only its
// finalizers, if any, keep it. The zero time encodes as null, so an object that goes through an API
// server or a fake client (both encode it) comes back without it: give those DeletedAt.
func Deleting() Option {
	return func(obj metav1.Object) { obj.SetDeletionTimestamp(&metav1.Time{}) }
}

// DeletedAt gives the object the deletion timestamp t: it is being deleted since t, and only its
// finalizers, if any, keep it.
func DeletedAt(t time.Time) Option {
	return func(obj metav1.Object) { obj.SetDeletionTimestamp(&metav1.Time{Time: t}) }
}

// DeletionGrace sets metadata.deletionGracePeriodSeconds: the grace period a deletion gave the
// object, which the API server sets beside the deletion timestamp.
func DeletionGrace(seconds int64) Option {
	return func(obj metav1.Object) { obj.SetDeletionGracePeriodSeconds(&seconds) }
}

// Owner appends an owner reference.
func Owner(ref metav1.OwnerReference) Option {
	return func(obj metav1.Object) { obj.SetOwnerReferences(append(obj.GetOwnerReferences(), ref)) }
}

// ControlledBy appends the owner reference of the controlling owner apiVersion/kind name with uid:
// Owner(ControllerRef(apiVersion, kind, name, uid)).
func ControlledBy(apiVersion, kind, name, uid string) Option {
	return Owner(ControllerRef(apiVersion, kind, name, uid))
}

// ControllerRef is the owner reference of a controlling owner (controller: true).
func ControllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: new(true)}
}

// BlockingControllerRef is ControllerRef with blockOwnerDeletion: true, as metav1.NewControllerRef
// and controller-runtime's SetControllerReference write it (a foreground deletion of the owner
// waits for the object).
func BlockingControllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	ref := ControllerRef(apiVersion, kind, name, uid)
	ref.BlockOwnerDeletion = new(true)
	return ref
}

// AutoPoolAffinity is the podAffinity the SpiderSubnet controller writes on the pool it creates for
// the apps/v1 workload kind ns/name.
func AutoPoolAffinity(kind, ns, name string) *metav1.LabelSelector {
	return Selector(
		v2beta1.AutoPoolPodAffinityAppAPIGrp, "apps",
		v2beta1.AutoPoolPodAffinityAppAPIVer, "v1",
		v2beta1.AutoPoolPodAffinityAppKind, kind,
		v2beta1.AutoPoolPodAffinityAppNS, ns,
		v2beta1.AutoPoolPodAffinityAppName, name,
	)
}

// Selector returns a label selector matching the key/value pairs kv.
func Selector(kv ...string) *metav1.LabelSelector {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}
