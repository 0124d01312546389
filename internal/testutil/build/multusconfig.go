package build

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// MultusConfig makes the SpiderMultusConfig ns/name as a user writes it, before the mutating
// webhook's defaults (v2beta1.DefaultSpiderMultusConfig); its cniType is unset unless CNIType sets
// it.
func MultusConfig(ns, name string, opts ...Option) *v2beta1.SpiderMultusConfig {
	return made(&v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, opts)
}

// CNIType sets spec.cniType of a SpiderMultusConfig.
func CNIType(t string) Option {
	return only("CNIType", func(m *v2beta1.SpiderMultusConfig) { m.Spec.CniType = &t })
}

// NAD makes the Multus NetworkAttachmentDefinition ns/name (k8s.cni.cncf.io/v1). It is an
// unstructured object, as the components handle it: they do not import Multus's Go types.
func NAD(ns, name string, opts ...Option) *unstructured.Unstructured {
	nad := &unstructured.Unstructured{}
	nad.SetAPIVersion("k8s.cni.cncf.io/v1")
	nad.SetKind("NetworkAttachmentDefinition")
	nad.SetNamespace(ns)
	nad.SetName(name)
	return made(nad, opts)
}

// NADConfig sets spec.config of a NetworkAttachmentDefinition: the CNI configuration, as JSON
// text, that Multus runs for it.
func NADConfig(config string) Option {
	return only("NADConfig", func(nad *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(nad.Object, config, "spec", "config"); err != nil {
			panic(err)
		}
	})
}
