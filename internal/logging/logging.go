package logging

import (
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// SetupLibraries makes controller-runtime and klog log through h.
func SetupLibraries(h slog.Handler) {
	crlog.SetLogger(logr.FromSlogHandler(h))
	klog.SetLogger(logr.FromSlogHandler(h))
}
