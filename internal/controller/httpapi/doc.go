// Package httpapi is spiderpool-controller's HTTP API on its HTTP port (Helm
// spiderpoolController.httpPort, 5720): the liveness and readiness probes next to the
// operator endpoints that spiderpoolctl calls, POST /v1/ipam/gc_ips (a full IP GC scan now,
// docs/design/behaviour.md#garbage-collection), GET /v1/ipam/status (a read-only summary of pools and endpoints) and
// PUT /v1/ipam/ip (bind an address to a pod by hand, through internal/binding, the code of
// spiderpoolctl ip set). The operator endpoints answer on loopback only. docs/controller-api.md
// documents them. It depends on the GC only through the Trigger interface and must not import
// internal/controller, which wires it.
package httpapi
