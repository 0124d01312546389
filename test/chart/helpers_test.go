package chart

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// rendered caches renderings: each costs a helm process, and several tests render the same lines.
var rendered sync.Map // strings.Join(args, " ") -> *rendering

type rendering struct {
	once sync.Once
	raw  []byte
	objs []*unstructured.Unstructured
	err  error
}

// render renders the chart with args and fails the test when helm does.
func render(t *testing.T, args ...string) *manifests {
	t.Helper()
	helm, dir := Require(t)
	v, _ := rendered.LoadOrStore(strings.Join(args, "\x00"), &rendering{})
	r := v.(*rendering)
	r.once.Do(func() {
		r.raw, r.err = Template(helm, dir, args...)
		if r.err == nil {
			r.objs, r.err = Decode(r.raw)
		}
	})
	if r.err != nil {
		t.Fatalf("render %v: %v", args, r.err)
	}
	return &manifests{raw: r.raw, objs: r.objs}
}

// manifests is one rendering of the chart.
type manifests struct {
	raw  []byte
	objs []*unstructured.Unstructured
}

// get returns the object of kind and name, or nil.
func (m *manifests) get(kind, name string) *unstructured.Unstructured {
	for _, o := range m.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ofKind returns every object of kind.
func (m *manifests) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// typed converts the object kind/name into out, failing the test when it is missing.
func (m *manifests) typed(t *testing.T, kind, name string, out any) {
	t.Helper()
	o := m.get(kind, name)
	if o == nil {
		t.Fatalf("no %s %q rendered", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("convert %s %s: %v", kind, name, err)
	}
}

// typedIn is typed for an object of kind in namespace ns.
func (m *manifests) typedIn(t *testing.T, kind, ns, name string, out any) {
	t.Helper()
	for _, o := range m.objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
				t.Fatalf("convert %s %s/%s: %v", kind, ns, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s/%s rendered", kind, ns, name)
}

func (m *manifests) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	m.typed(t, "Deployment", name, &d)
	return &d
}

func (m *manifests) daemonSet(t *testing.T, name string) *appsv1.DaemonSet {
	t.Helper()
	var d appsv1.DaemonSet
	m.typed(t, "DaemonSet", name, &d)
	return &d
}

func (m *manifests) job(t *testing.T, name string) *batchv1.Job {
	t.Helper()
	var j batchv1.Job
	m.typed(t, "Job", name, &j)
	return &j
}

func (m *manifests) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	var c corev1.ConfigMap
	m.typed(t, "ConfigMap", name, &c)
	return &c
}

// podSpecs returns the pod template of every workload, keyed "Kind/name".
func (m *manifests) podSpecs(t *testing.T) map[string]corev1.PodSpec {
	t.Helper()
	specs := map[string]corev1.PodSpec{}
	for _, o := range m.objs {
		key := o.GetKind() + "/" + o.GetName()
		switch o.GetKind() {
		case "Deployment":
			specs[key] = m.deployment(t, o.GetName()).Spec.Template.Spec
		case "DaemonSet":
			specs[key] = m.daemonSet(t, o.GetName()).Spec.Template.Spec
		case "Job":
			specs[key] = m.job(t, o.GetName()).Spec.Template.Spec
		case "Pod", "StatefulSet", "ReplicaSet", "CronJob":
			t.Fatalf("%s: a workload kind the tests do not inspect", key)
		}
	}
	return specs
}

// container returns the container (or init container) name of spec.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func hasContainer(spec corev1.PodSpec, name string) bool {
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// flags parses --name=value arguments; a flag given twice fails the test.
func flags(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Fatalf("container %s: argument %q is not --name=value", c.Name, a)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("container %s: flag --%s given twice", c.Name, name)
		}
		out[name] = value
	}
	return out
}

// envs returns the literal environment variables of c; those from fieldRefs map to "fieldRef:<path>".
func envs(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			out[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom != nil:
			out[e.Name] = "valueFrom"
		default:
			out[e.Name] = e.Value
		}
	}
	return out
}

// rule is one (apiGroup, resource, verb) permission, optionally limited to resource names.
type rule struct{ group, resource, verb string }

func (r rule) String() string {
	g := r.group
	if g == "" {
		g = "core"
	}
	return fmt.Sprintf("%s/%s:%s", g, r.resource, r.verb)
}

// expand turns policy rules into single permissions; named rules are returned apart.
func expand(rules []rbacv1.PolicyRule) (unnamed map[rule]bool, named map[rule][]string) {
	unnamed, named = map[rule]bool{}, map[rule][]string{}
	for _, pr := range rules {
		for _, g := range pr.APIGroups {
			for _, res := range pr.Resources {
				for _, v := range pr.Verbs {
					r := rule{g, res, v}
					if len(pr.ResourceNames) > 0 {
						named[r] = append(named[r], pr.ResourceNames...)
					} else {
						unnamed[r] = true
					}
				}
			}
		}
	}
	return unnamed, named
}

func (m *manifests) clusterRole(t *testing.T, name string) *rbacv1.ClusterRole {
	t.Helper()
	var r rbacv1.ClusterRole
	m.typed(t, "ClusterRole", name, &r)
	return &r
}

func (m *manifests) role(t *testing.T, name string) *rbacv1.Role {
	t.Helper()
	var r rbacv1.Role
	m.typed(t, "Role", name, &r)
	return &r
}
