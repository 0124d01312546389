// Package binding binds an address to a pod by hand, outside any CNI ADD: the operator's "force
// set" that spiderpoolctl ip set and spiderpool-controller's PUT /v1/ipam/ip both perform, here
// once. It writes the two records an ADD leaves: the pool's record of the address for the pod's
// UID (through the compare-and-swap of the pool's status, or of the SpiderIPBlock holding the
// address for a pool in block format: NewStore) and the interface's entry in the pod's
// SpiderEndpoint, creating the endpoint (NewEndpoint) when the pod has none. Refusals are *Error
// values naming the request field they are about, so that a CLI and an HTTP API report them alike.
//
// It reads and writes through one client that must reach the API server directly (no informer
// cache): a just-created pod or a just-released record must be seen. It must not import the
// agent, the controller or the CLI.
package binding
