// Package workload holds the facts about pods and their owners that the agent, the controller and
// spiderpoolctl all decide on, so that they decide alike: whether a pod is alive or finished
// (PodAlive, PodFinished), which workload a pod belongs to (TopController: Deployment via
// ReplicaSet, CronJob via Job, StatefulSet, DaemonSet, or the bare pod; StatefulSetOf), and
// whether a StatefulSet will (re)create a pod and therefore keeps its addresses (docs/design/behaviour.md#statefulset-fixed-ips,
// #release-on-del, #garbage-collection). It reads through a client.Reader and never writes; it must not import the IPAM core or
// any daemon package.
package workload
