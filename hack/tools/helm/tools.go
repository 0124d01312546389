//go:build tools

// Package tools pins helm in a module of its own: helm follows its own Kubernetes client line, which
// must not be forced onto the kube-apiserver build of the parent module.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
