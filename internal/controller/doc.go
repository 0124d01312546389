// Package controller holds the reconcilers of spiderpool-controller, one per kind in
// <kind>_controller.go (SpiderCoordinator status, SpiderMultusConfig to NetworkAttachmentDefinition,
// and the others listed in docs/design/behaviour.md#controller-reconcilers), plus the pure helpers they need, such as the NAD
// configuration generator in nadconfig.go, which are kept free of I/O so that they are tested
// without a cluster. The reconcilers talk to the Kubernetes API only through controller-runtime
// clients; this package must not import internal/agent or the CNI plugin packages (internal/cni/...),
// which run on the nodes and have nothing to reconcile.
package controller
