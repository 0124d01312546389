// Package v2beta1 holds the Go types of the spiderpool.spidernet.io/v2beta1 API: SpiderIPPool,
// SpiderSubnet, SpiderReservedIP, SpiderEndpoint, SpiderMultusConfig and SpiderCoordinator.
//
// Field names, JSON tags, defaults and schema markers are a public contract: manifests written for
// upstream Spiderpool must apply unchanged, so a tag here is never renamed. The CRD YAML in
// charts/spiderpool/crds is generated from these markers by controller-gen.
//
// Besides the types, the package owns the validation rules (Validate* functions returning
// field.ErrorList, with paths that name the offending field), the defaulting the mutating webhooks
// apply (Default*), the codecs of the JSON-in-a-string status fields, and the annotation, label and
// finalizer names of the contract. Rules that involve other objects take them as arguments
// (ValidateIPPoolOverlap, ValidatePoolInSubnet, ...): listing those objects is the webhooks' job. This
// package may import apimachinery and internal/ip, never client-go.
//
// +kubebuilder:object:generate=true
// +groupName=spiderpool.spidernet.io
package v2beta1
