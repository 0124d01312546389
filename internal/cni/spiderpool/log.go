package spiderpool

import (
	"log/slog"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// newLogger opens the IPAM plugin's log file (log_file_path and friends) with rotation; see
// cnilog.Open.
func newLogger(c *IPAMConfig) (*slog.Logger, func()) {
	level, _ := cnilog.Level(c.LogLevel)
	return cnilog.Open(cnilog.File{Path: c.LogFilePath, Level: level, MaxSizeMB: c.LogFileMaxSize, MaxAgeDays: c.LogFileMaxAge, Max: c.LogFileMaxCount})
}
