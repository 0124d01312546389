package ifacer

import (
	"log/slog"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// newLogger opens the plugin's log file (logOptions) with rotation; see cnilog.Open.
func newLogger(o *LogOptions) (*slog.Logger, func()) {
	level, _ := cnilog.Level(o.LogLevel)
	return cnilog.Open(cnilog.File{Path: o.LogFile, Level: level, MaxSizeMB: 100, MaxAgeDays: 30, Max: 10})
}
