// Package testenv starts a real control plane (etcd and kube-apiserver built by `make tools`) for
// integration tests, the sandbox and the benchmarks, and installs the CRDs of charts/spiderpool/crds.
//
// It never downloads anything: the binaries come from .tools/bin (or SPIDERPOOL_TOOLS_BIN). A test
// suite starts one Env in TestMain and shares it between its tests.
package testenv
