// Package webhook owns spiderpool-controller's admission webhooks (docs/design/behaviour.md#admission-webhooks): one defaulter and
// one validator per kind (<kind>_webhook.go), the serving certificate, and the
// MutatingWebhookConfiguration/ValidatingWebhookConfiguration that point the apiserver at them.
//
// The rules themselves live in api/v2beta1 (Default* and Validate*); this package only decodes the
// request, lists the other objects a rule needs, and turns a field.ErrorList into an Invalid status
// so that kubectl names the offending field. The webhooks never cover the status subresource: the
// agents keep allocating while the controller is down. Nothing here reconciles objects; that is
// internal/controller's job.
package webhook
