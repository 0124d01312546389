// Package ctl is spiderpoolctl, the operator's command line (docs/reference/flags.md#spiderpoolctl): it inspects and repairs
// IP allocations through the Kubernetes API (ip show, ip release, ip set through internal/binding,
// pool usage, doctor) and asks spiderpool-controller's HTTP API for a GC scan (gc). Pool records
// are decoded with the api/v2beta1 codecs and changed only through kubestore's compare-and-swap
// UpdatePool, so the command line races agents and the controller as safely as they race each
// other. The doctor checks are pure functions over a Snapshot. It must not import the agent or
// the controller.
package ctl
