// Package cnilog is the log file of our CNI plugins: JSON lines with rotation, opened per plugin
// invocation, and never a reason for a pod not to start.
//
// The plugins run as root, and the path of their log file comes from the network configuration,
// which anyone who may write a NetworkAttachmentDefinition chooses. So that such an author cannot
// make a plugin append to, rename or delete a host file of their choice (/etc/shadow), every log
// file lies under one directory, /var/log/spidernet: Path refuses a configured path outside it
// (relative paths and ".." escapes included), and Open reaches the file through that directory
// without following a symlink out of it, refuses a symlink, a hard link or a non-regular file as
// the log file itself, and rotates by renaming and removing entries of the file's own directory
// only, through a descriptor of that directory.
//
// The node operator, not a configuration author, may move the directory: the environment variable
// SPIDERPOOL_CNI_LOG_DIR of the plugin process names another absolute directory. Container runtimes
// pass their own environment to CNI plugins, and a network configuration cannot set it. Tests set
// it to a temporary directory so that they never write to the host's /var/log/spidernet.
package cnilog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is the directory log files must lie under unless DirEnv names another.
const DefaultDir = "/var/log/spidernet"

// DirEnv is the environment variable of the plugin process that replaces DefaultDir.
const DirEnv = "SPIDERPOOL_CNI_LOG_DIR"

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

// Dir returns the directory log files must lie under: $SPIDERPOOL_CNI_LOG_DIR (cleaned) when set,
// DefaultDir otherwise.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return filepath.Clean(d)
	}
	return DefaultDir
}

// Path returns the log file a plugin writes: the configured path, cleaned, or the file called name
// in Dir when the configuration names none. A configured path that is not a file under Dir is an
// error naming key, the configuration field, and the directory; so is a relative DirEnv.
func Path(key, configured, name string) (string, error) {
	return checkPath(Dir(), key, configured, name)
}

func checkPath(dir, key, configured, name string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s %q must be an absolute directory", DirEnv, dir)
	}
	if configured == "" {
		return filepath.Join(dir, name), nil
	}
	if strings.ContainsRune(configured, 0) {
		return "", fmt.Errorf("%s %q contains a NUL byte", key, configured)
	}
	p := filepath.Clean(configured)
	if !filepath.IsAbs(p) || !within(dir, p) {
		return "", fmt.Errorf("%s %q: must be a file under %s", key, configured, dir)
	}
	return p, nil
}

// within reports whether the clean absolute path p lies strictly below the clean absolute dir.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// File describes a plugin's log file.
type File struct {
	Path  string // under Dir; see Path
	Level slog.Level
	// Rotation limits in MB, days and files; 0 means 100 MB, no age limit and no count limit
	// respectively (the meanings upstream's keys took from lumberjack).
	MaxSizeMB, MaxAgeDays, Max int
}

// Open returns a JSON logger writing to f with rotation, and the function that closes it. A pod
// must not fail to start because /var/log is read-only or full, nor because of what lies in the
// log directory: an unusable file, including one Open refuses to reach (see the package comment),
// yields Discard. Concurrent invocations interleave in one file; each line carries the pid.
func Open(f File) (*slog.Logger, func()) {
	w, err := openRotating(Dir(), f)
	if err != nil {
		return Discard, func() {}
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: f.Level})
	return slog.New(h).With("pid", os.Getpid()), func() { _ = w.Close() }
}
