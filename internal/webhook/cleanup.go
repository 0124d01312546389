package webhook

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managedByHelm marks objects the chart ships (tls.method provided or certmanager); Helm removes
// those itself.
const managedByLabel, managedByHelm = "app.kubernetes.io/managed-by", "Helm"

// Cleanup removes what the controller made outside the chart's manifests in tls.method auto: both
// webhook configurations and the certificate Secret, so that `helm uninstall` leaves no webhook
// that nobody serves (every later write of a Spiderpool object would fail on it). Objects the
// chart ships are left to Helm; missing ones are fine. It returns what it deleted.
func Cleanup(ctx context.Context, c client.Client, namespace, secretName string) ([]string, error) {
	if secretName == "" {
		secretName = DefaultSecretName
	}
	objs := []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
		&corev1.Secret{},
	}
	keys := []client.ObjectKey{{Name: ConfigurationName}, {Name: ConfigurationName}, {Namespace: namespace, Name: secretName}}
	var deleted []string
	var errs []error
	for i, obj := range objs {
		kind := fmt.Sprintf("%T", obj)[len("*v1."):]
		err := c.Get(ctx, keys[i], obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("get %s %s: %w", kind, keys[i], err))
			continue
		}
		if obj.GetLabels()[managedByLabel] == managedByHelm {
			continue
		}
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", kind, keys[i], err))
			continue
		}
		deleted = append(deleted, kind+" "+keys[i].String())
	}
	return deleted, errors.Join(errs...)
}
