// Package agent is the spiderpool-agent daemon: the per-node HTTP server on
// a unix socket that the spiderpool IPAM plugin and the coordinator plugin
// call (docs/design/behaviour.md#agent-api), the probes on the health port, the metrics on the
// metrics port, and the informer caches the handlers read.
//
// It owns the per-pod decisions around the pure IPAM core: which pod and
// incarnation (UID) a request is for (whether it is still alive and its top
// controller are asked of internal/workload, so that the controller and
// spiderpoolctl decide alike), which interfaces one ADD allocates (every NIC of
// ipam.spidernet.io/ippools on the first call, docs/design/behaviour.md#dual-stack-and-multiple-nics), the pod's
// SpiderEndpoint (create, idempotent reuse, replacement of a stale
// incarnation's, deletion on release), releasing every record of a pod UID
// on DEL (docs/design/behaviour.md#release-on-del), the coordinator settings merged from the
// SpiderCoordinator (docs/design/behaviour.md#coordinator-configuration), and the mapping of Go errors to HTTP
// statuses and api/agent/v1 error codes, which happens in one function
// (httpError).
//
// add.go holds the ADD as one pipeline, step after step; the StatefulSet
// takeover, its one special flow, is in statefulset.go. dns.go answers the
// pod's ipam.spidernet.io/dns annotation and master.go reads the master
// the plugin sends for match_master_subnet.
//
// Choosing pools and addresses belongs to internal/ipam and storage of
// pool records to internal/ipam/kubestore; this package only calls them.
// Only agent.go knows kubestore, so that the handlers are tested with
// ipamtest's in-memory store and a fake controller-runtime client. Flags
// are parsed in cmd/spiderpool-agent, never here; the plugin-side client
// lives in internal/agent/client.
package agent
