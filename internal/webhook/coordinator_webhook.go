package webhook

import (
	"context"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

var (
	_ admission.Defaulter[*v2beta1.SpiderCoordinator] = (*CoordinatorWebhook)(nil)
	_ admission.Validator[*v2beta1.SpiderCoordinator] = (*CoordinatorWebhook)(nil)
)

// CoordinatorWebhook defaults and validates SpiderCoordinators.
type CoordinatorWebhook struct{}

// Default implements admission.Defaulter.
func (w *CoordinatorWebhook) Default(_ context.Context, c *v2beta1.SpiderCoordinator) error {
	v2beta1.DefaultSpiderCoordinator(c)
	return nil
}

// ValidateCreate implements admission.Validator.
func (w *CoordinatorWebhook) ValidateCreate(_ context.Context, c *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	return nil, invalid(c, v2beta1.ValidateSpiderCoordinator(c))
}

// ValidateUpdate implements admission.Validator. A metadata-only update (the finalizer's removal)
// passes even if the stored spec predates a rule.
func (w *CoordinatorWebhook) ValidateUpdate(_ context.Context, oldC, newC *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	if apiequality.Semantic.DeepEqual(oldC.Spec, newC.Spec) {
		return nil, nil
	}
	return nil, invalid(newC, v2beta1.ValidateSpiderCoordinator(newC))
}

// ValidateDelete implements admission.Validator.
func (w *CoordinatorWebhook) ValidateDelete(context.Context, *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	return nil, nil
}
