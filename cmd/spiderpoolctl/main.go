// Command spiderpoolctl is the operator's command line for Spiderpool IP allocations; everything
// but the process plumbing is in internal/ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiderpool-go/spiderpool/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := ctl.Run(ctx, ctl.Options{Out: os.Stdout, Err: os.Stderr}, os.Args[1:]...)
	stop()
	os.Exit(code)
}
