// Package httpapi is spiderpool-controller's HTTP API on its HTTP port (Helm
// spiderpoolController.httpPort, 5720): the liveness and readiness probes next to the
// operator endpoints that spiderpoolctl calls, POST /v1/ipam/gc_ips (a full IP GC scan now,
// SPEC.md 3.10) and GET /v1/ipam/status (a read-only summary of pools and endpoints). It depends
// on the GC only through the Trigger interface and must not import internal/controller, which
// wires it.
package httpapi
