// Package integration holds suites that run against a real etcd and kube-apiserver (built by
// `make tools`) with our CRDs installed. Each suite shares one control plane started in TestMain.
package integration
