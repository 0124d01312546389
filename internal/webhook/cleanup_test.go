package webhook

import (
	"context"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestCleanup(t *testing.T) {
	helm := map[string]string{managedByLabel: managedByHelm}
	tests := []struct {
		name        string
		objs        []client.Object
		wantDeleted []string
		wantLeft    []client.Object
	}{
		{
			name: "auto: the controller's configurations and Secret go",
			objs: []client.Object{
				&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}},
				&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: DefaultSecretName}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "unrelated"}},
			},
			wantDeleted: []string{"MutatingWebhookConfiguration /spiderpool-controller", "ValidatingWebhookConfiguration /spiderpool-controller", "Secret kube-system/spiderpool-controller-server-certs"},
			wantLeft:    []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "unrelated"}}},
		},
		{
			name: "provided: what the chart ships is Helm's to remove",
			objs: []client.Object{
				&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName, Labels: helm}},
				&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName, Labels: helm}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: DefaultSecretName, Labels: helm}},
			},
			wantLeft: []client.Object{
				&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}},
				&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: DefaultSecretName}},
			},
		},
		{name: "nothing there: nothing to do"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClient(tc.objs...)
			deleted, err := Cleanup(context.Background(), c, "kube-system", "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(deleted, tc.wantDeleted) {
				t.Errorf("deleted %q, want %q", deleted, tc.wantDeleted)
			}
			for _, o := range tc.objs {
				err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o.DeepCopyObject().(client.Object))
				left := slices.ContainsFunc(tc.wantLeft, func(w client.Object) bool {
					return w.GetName() == o.GetName() && w.GetNamespace() == o.GetNamespace() && fmtKind(w) == fmtKind(o)
				})
				switch {
				case left && err != nil:
					t.Errorf("%s %s should be left: %v", fmtKind(o), o.GetName(), err)
				case !left && !apierrors.IsNotFound(err):
					t.Errorf("%s %s should be gone: %v", fmtKind(o), o.GetName(), err)
				}
			}
		})
	}
}

func fmtKind(o client.Object) string {
	switch o.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return "mutating"
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return "validating"
	default:
		return "secret"
	}
}
