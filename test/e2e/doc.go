// Package e2e runs the guides' scenarios end to end on the sandbox (internal/sandbox): a real
// control plane, controller, agents, the Multus thin plugin and the CNI chain in network
// namespaces. The tests need root and the tools of `make tools`; they skip, naming what is
// missing, otherwise.
package e2e
