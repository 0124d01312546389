// Package chart renders charts/spiderpool with the pinned helm binary for the chart's tests: the
// rendering tests in this directory and the apiserver dry-run in test/integration. It holds the
// install lines of the user guides (docs/guides/public-cloud.md#1-install and docs/guides/calico-overlay.md#1-install) so that both suites check the same lines.
//
// The tests here need no cluster: they lint and render the chart, compare it with golden files,
// with the flags our binaries accept, with the environment spiderpool-init reads and with the RBAC
// that controller-gen derives from the +kubebuilder:rbac markers. They skip when helm is not built.
package chart
