// Command spiderpoolctl is the operator's command line for Spiderpool IP allocations; everything
// but the process plumbing is in internal/ctl.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiderpool-go/spiderpool/internal/ctl"
	"github.com/spiderpool-go/spiderpool/internal/logging"
)

func main() {
	// client-go and controller-runtime log through these; only their warnings matter here.
	logging.SetupLibraries(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := ctl.Run(ctx, ctl.Options{Out: os.Stdout, Err: os.Stderr}, os.Args[1:]...)
	stop()
	os.Exit(code)
}
