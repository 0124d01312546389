//go:build tools

// Package tools pins Whereabouts, the IPAM the IPAM benchmark compares against, in a module of its
// own: it follows its own Kubernetes client line.
package tools

import (
	_ "github.com/k8snetworkplumbingwg/whereabouts/cmd"
)
