package build

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Pod makes the Pod ns/name. Its phase is unset unless Phase sets it.
func Pod(ns, name string, opts ...Option) *corev1.Pod {
	return made(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, opts)
}

// OnNode places a pod (spec.nodeName) or an endpoint's pod (status.current.node) on node.
func OnNode(node string) Option {
	return func(obj metav1.Object) {
		switch o := obj.(type) {
		case *corev1.Pod:
			o.Spec.NodeName = node
		case *v2beta1.SpiderEndpoint:
			o.Status.Current.Node = node
		default:
			panic(misuse("OnNode", obj))
		}
	}
}

// Container appends a container to a pod; the API server refuses a pod without one.
func Container(name, image string) Option {
	return only("Container", func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: image})
	})
}

// Phase sets status.phase of a pod.
func Phase(phase corev1.PodPhase) Option {
	return only("Phase", func(p *corev1.Pod) { p.Status.Phase = phase })
}

// Namespace makes the Namespace name.
func Namespace(name string, opts ...Option) *corev1.Namespace {
	return made(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts)
}

// Node makes the Node name.
func Node(name string, opts ...Option) *corev1.Node {
	return made(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts)
}

// TerminationGrace sets spec.terminationGracePeriodSeconds of a pod: how long its kubelet waits
// for it to stop once it is deleted.
func TerminationGrace(seconds int64) Option {
	return only("TerminationGrace", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = &seconds })
}

// StatefulSet makes the StatefulSet ns/name; spec.replicas is unset unless Replicas sets it.
func StatefulSet(ns, name string, opts ...Option) *appsv1.StatefulSet {
	return made(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, opts)
}

// Deployment makes the Deployment ns/name; spec.replicas is unset unless Replicas sets it.
func Deployment(ns, name string, opts ...Option) *appsv1.Deployment {
	return made(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, opts)
}

// Replicas sets spec.replicas of a StatefulSet or Deployment.
func Replicas(n int32) Option {
	return func(obj metav1.Object) { *podsOf("Replicas", obj).replicas = &n }
}

// PodSelector sets spec.selector of a StatefulSet or Deployment: the pods it counts as its own.
func PodSelector(sel *metav1.LabelSelector) Option {
	return func(obj metav1.Object) { *podsOf("PodSelector", obj).selector = sel }
}

// Template sets spec.template of a StatefulSet or Deployment to the metadata and spec of the pod
// opts make:
//
//	build.Template(build.Label("app", "web"), build.Container("c", "busybox"))
func Template(opts ...Option) Option {
	return func(obj metav1.Object) {
		p := Pod("", "", opts...)
		*podsOf("Template", obj).template = corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
	}
}

// podFields points at the fields the workloads that run copies of a pod share.
type podFields struct {
	replicas **int32
	selector **metav1.LabelSelector
	template *corev1.PodTemplateSpec
}

func podsOf(option string, obj metav1.Object) podFields {
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		return podFields{&o.Spec.Replicas, &o.Spec.Selector, &o.Spec.Template}
	case *appsv1.Deployment:
		return podFields{&o.Spec.Replicas, &o.Spec.Selector, &o.Spec.Template}
	}
	panic(misuse(option, obj))
}
