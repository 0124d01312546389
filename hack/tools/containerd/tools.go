//go:build tools

// Package tools pins containerd v2 (the daemon and its runc shim) for the sandbox's nodes, in a
// module of its own: containerd follows its own Kubernetes and gRPC lines.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
)
