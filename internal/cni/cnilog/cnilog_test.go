package cnilog

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLevel(t *testing.T) {
	for name, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn, "error": slog.LevelError} {
		if got, ok := Level(name); !ok || got != want {
			t.Errorf("Level(%q) = %v, %v", name, got, ok)
		}
	}
	for _, bad := range []string{"", "trace", "fatal"} {
		if _, ok := Level(bad); ok {
			t.Errorf("Level(%q) accepted", bad)
		}
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "plugin.log")
	log, closeLog := Open(File{Path: path, Level: slog.LevelInfo, MaxSizeMB: 1, MaxAgeDays: 1, Max: 1})
	log.Debug("hidden")
	log.Info("shown", "pod", "default/a")
	closeLog()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("log holds %q, want only the info line", b)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "shown" || rec["pod"] != "default/a" || rec["pid"] == nil {
		t.Errorf("line %s (%v)", lines[0], err)
	}
	// An unusable path (a file where a directory must be) gives the discarding logger.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := Open(File{Path: filepath.Join(blocker, "x.log")}); got != Discard {
		t.Error("an unusable log path did not give Discard")
	}
}
