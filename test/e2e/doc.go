// Package e2e runs the guides' scenarios end to end on the real cluster of internal/sandbox: a
// control plane, user-mode-linux nodes with containerd, the kubelet and kube-proxy, the
// project's images from a registry in the sandbox, and the chart installed by helm with each
// guide's flags. The tests need root, the tools of `make tools` and the images of `make images`
// (`make test-e2e` builds them); they skip, naming what is missing, otherwise.
package e2e
