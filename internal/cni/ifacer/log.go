package ifacer

import (
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// logLevels maps the accepted logOptions.logLevel values (lower-cased) to slog levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

var discardLogger = slog.New(slog.DiscardHandler)

// newLogger returns a JSON logger writing to the log file with rotation, and its closer. Logging
// is best effort: an unusable file (a read-only /var/log) yields a logger that discards
// everything rather than a pod that fails to start.
func newLogger(o *LogOptions) (*slog.Logger, func()) {
	noop := func() {}
	if err := os.MkdirAll(filepath.Dir(o.LogFile), 0o755); err != nil {
		return discardLogger, noop
	}
	f, err := os.OpenFile(o.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return discardLogger, noop
	}
	_ = f.Close()
	w := &lumberjack.Logger{Filename: o.LogFile, MaxSize: 100, MaxAge: 30, MaxBackups: 10}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: logLevels[o.LogLevel]})
	return slog.New(h).With("pid", os.Getpid()), func() { _ = w.Close() }
}
