// Package coordinator is the coordinator CNI plugin (docs/design/behaviour.md#coordinator). Chained after the main plugin,
// it reads prevResult, resolves its mode (underlay/overlay/disabled) and wires the pod so that it
// reaches its node and the cluster's services: in underlay mode a veth pair between the pod and
// the node, host addresses and hijacked CIDRs routed through it, and a host policy-routing table
// pointing back at the pod; an underlay secondary NIC reuses the pair and, with tunePodRoutes,
// gets its own policy table. In overlay mode (docs/design/behaviour.md#overlay-mode (the sentence around it is stale: overlay mode is built, overlay.go)), for a secondary NIC of a pod whose first
// NIC comes from an overlay CNI, the pod reaches its node through that first NIC's veth instead. It prints prevResult
// unchanged.
//
// Settings come from the NetworkAttachmentDefinition's plugin object and, for every key it leaves
// out, from spiderpool-agent (the SpiderCoordinator). The pure parts — configuration, merge, mode
// resolution and table numbering — are kept apart from the netlink work (internal/netlinkx) so
// that they are tested without privileges.
//
// logOptions.logFile must lie under /var/log/spidernet, or under the directory the node operator
// names in the plugin's environment variable SPIDERPOOL_CNI_LOG_DIR; any other fails the command
// (internal/cni/cnilog says why).
//
// cmd/coordinator hands Funcs to cnirun.Main, which runs each command through skel and turns a panic or
// failure into the CNI error, logged once; everything else lives here so tests can reach it.
package coordinator
