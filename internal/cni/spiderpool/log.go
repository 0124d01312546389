package spiderpool

import (
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// logLevels maps the accepted ipam.log_level values (upper-cased) to slog levels.
var logLevels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug,
	"INFO":  slog.LevelInfo,
	"WARN":  slog.LevelWarn,
	"ERROR": slog.LevelError,
}

// discardLogger is used until the configuration is read and whenever the log file is unusable.
var discardLogger = slog.New(slog.DiscardHandler)

// newLogger returns a JSON logger writing to c.LogFilePath with rotation, and the function that
// closes the file. Logging is best effort: a pod must not fail to start because /var/log is
// read-only or full, so an unusable file yields a logger that discards everything.
func newLogger(c *IPAMConfig) (*slog.Logger, func()) {
	noop := func() {}
	// lumberjack opens the file on the first write and reports failure only to that write, which
	// slog drops; trying once here turns that into a clean "logging disabled".
	if err := os.MkdirAll(filepath.Dir(c.LogFilePath), 0o755); err != nil {
		return discardLogger, noop
	}
	f, err := os.OpenFile(c.LogFilePath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return discardLogger, noop
	}
	_ = f.Close()

	w := &lumberjack.Logger{
		Filename:   c.LogFilePath,
		MaxSize:    c.LogFileMaxSize,
		MaxAge:     c.LogFileMaxAge,
		MaxBackups: c.LogFileMaxCount,
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: logLevels[c.LogLevel]})
	// Concurrent ADDs of many pods interleave in one file; the pid tells their lines apart.
	return slog.New(h).With("pid", os.Getpid()), func() { _ = w.Close() }
}
