package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// loadManifests reads a multi-document YAML file into unstructured objects, as kubectl would.
func loadManifests(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode %s: %v", path, err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// applyStrict creates each object with strict field validation, the way `kubectl apply` validates by
// default: an unknown or duplicated field fails the request instead of being silently dropped.
func applyStrict(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetNamespace() == "" && namespaced(o.GetKind()) {
			o.SetNamespace("default")
		}
		// FieldValidation must be set on the options themselves: controller-runtime copies them over Raw.
		opts := &client.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
		if err := c.Create(ctx, o, opts); err != nil {
			return fmt.Errorf("create %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

func namespaced(kind string) bool {
	switch kind {
	case "SpiderMultusConfig", "SpiderEndpoint", "NetworkAttachmentDefinition", "Pod":
		return true
	}
	return false
}

// deleteAll removes objects created by a test, ignoring those already gone. Finalizers set by the
// manifests themselves are cleared so that no object lingers into the next test.
func deleteAll(ctx context.Context, t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetNamespace() == "" && namespaced(o.GetKind()) {
			o.SetNamespace("default")
		}
		if len(o.GetFinalizers()) > 0 {
			patch := []byte(`{"metadata":{"finalizers":null}}`)
			_ = c.Patch(ctx, o, client.RawPatch("application/merge-patch+json", patch))
		}
		if err := c.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
