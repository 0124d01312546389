//go:build tools

// Package tools pins the Multus thin CNI plugin (cmd/multus of multus-cni v4, not the thick
// daemon or its shim) in a module of its own: it follows its own Kubernetes client line, so
// its k8s.io versions are the ones Multus itself pins.
package tools

import (
	_ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/install_multus"
	_ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus"
	_ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/passthru-cni"
	_ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/thin_entrypoint"
)
