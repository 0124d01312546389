// Package cluster runs a real Kubernetes cluster on one machine for the sandbox: a control plane
// (etcd, kube-apiserver, kube-controller-manager and kube-scheduler, the binaries hack/tools
// builds) inside a network namespace attached to the sandbox's underlay switch, and the nodes that
// join it (kubelet and kube-proxy in user-mode-linux guests).
//
// It owns the cluster's PKI (one CA, the serving and client certificates, the service-account
// key), the kubeconfigs every component and the user read, the components' processes and the
// loopback port through which kubectl and helm on the host reach the apiserver. Nothing here adds a
// route or an address to the host's own namespace: the host talks to the cluster only through
// that forwarded port.
package cluster
