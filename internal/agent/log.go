package agent

import (
	"context"
	"log/slog"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
)

// Log keys, constant so that logs can be queried by field.
const (
	keyPod         = "pod"
	keyPodUID      = "podUID"
	keyIfName      = "ifName"
	keyContainerID = "containerID"
	keyDuration    = "duration"
	keyIPs         = "ips"
	keyOutcome     = "outcome"
	keyMethod      = "method"
	keyPath        = "path"
	keyCode        = "code"
	keyError       = "error"
	keyNode        = "node"
	keySocket      = "socket"
	keyServer      = "server"
)

type loggerKey struct{}

// withLogger attaches a request-scoped logger, so that writeError logs the
// failure with the request's fields.
func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// addresses lists the addresses of an answer, for the log.
func addresses(resp *v1.IpamAddResponse) []string {
	out := make([]string, len(resp.IPs))
	for i, c := range resp.IPs {
		out[i] = c.Address
	}
	return out
}
