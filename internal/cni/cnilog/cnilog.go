// Package cnilog is the log file of our CNI plugins: JSON lines with rotation, opened per plugin
// invocation, and never a reason for a pod not to start.
package cnilog

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Discard is the logger used until the configuration is read and whenever the file is unusable.
var Discard = slog.New(slog.DiscardHandler)

// Level returns the slog level of a configured level name (debug, info, warn, error; any case).
func Level(name string) (slog.Level, bool) {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// File describes a plugin's log file.
type File struct {
	Path                       string
	Level                      slog.Level
	MaxSizeMB, MaxAgeDays, Max int // rotation: size, age, files kept
}

// Open returns a JSON logger writing to f with rotation, and the function that closes it. A pod
// must not fail to start because /var/log is read-only or full: an unusable file yields Discard.
// Concurrent invocations interleave in one file; each line carries the pid.
func Open(f File) (*slog.Logger, func()) {
	noop := func() {}
	// lumberjack opens the file on the first write and reports failure only to that write, which
	// slog drops; trying once here turns that into a clean "logging disabled".
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return Discard, noop
	}
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return Discard, noop
	}
	_ = fh.Close()
	w := &lumberjack.Logger{Filename: f.Path, MaxSize: f.MaxSizeMB, MaxAge: f.MaxAgeDays, MaxBackups: f.Max}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: f.Level})
	return slog.New(h).With("pid", os.Getpid()), func() { _ = w.Close() }
}
