package webhook

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

var (
	_ admission.Defaulter[*v2beta1.SpiderReservedIP] = (*ReservedIPWebhook)(nil)
	_ admission.Validator[*v2beta1.SpiderReservedIP] = (*ReservedIPWebhook)(nil)
)

// ReservedIPWebhook defaults and validates SpiderReservedIPs. Reserved IPs may overlap anything, so
// no other object is consulted.
type ReservedIPWebhook struct {
	EnableIPv4, EnableIPv6 bool
}

// Default implements admission.Defaulter.
func (w *ReservedIPWebhook) Default(_ context.Context, rip *v2beta1.SpiderReservedIP) error {
	v2beta1.DefaultSpiderReservedIP(rip)
	return nil
}

// ValidateCreate implements admission.Validator.
func (w *ReservedIPWebhook) ValidateCreate(_ context.Context, rip *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, invalid(rip, v2beta1.ValidateSpiderReservedIP(rip, w.EnableIPv4, w.EnableIPv6))
}

// ValidateUpdate implements admission.Validator.
func (w *ReservedIPWebhook) ValidateUpdate(_ context.Context, oldRIP, newRIP *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, invalid(newRIP, v2beta1.ValidateSpiderReservedIPUpdate(newRIP, oldRIP, w.EnableIPv4, w.EnableIPv6))
}

// ValidateDelete implements admission.Validator.
func (w *ReservedIPWebhook) ValidateDelete(context.Context, *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, nil
}
