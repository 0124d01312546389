// Package v1alpha1 holds Spiderpool-Go's internal kinds (group internal.spiderpool-go.io): objects
// the agents and the controller write for their own bookkeeping. They are not part of upstream
// Spiderpool's spiderpool.spidernet.io/v2beta1 contract: users read SpiderIPPools and
// SpiderEndpoints, and the shape of these kinds may change between releases without notice.
//
// +kubebuilder:object:generate=true
// +groupName=internal.spiderpool-go.io
package v1alpha1
