package cnilog

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPath: no configured path panics Path, and an accepted one is a clean absolute path strictly
// below the log directory that no ".." leads out of, accepted again unchanged (so a normalised
// configuration is a fixed point); a refused one is refused with the field's name.
func FuzzPath(f *testing.F) {
	for _, s := range []string{
		"", "/var/log/spidernet/spiderpool.log", "/var/log/spidernet/a/../b.log", "/var/log/spidernet",
		"/var/log/spidernet/", "/var/log/spidernet/..", "/var/log/spidernet2/x", "/etc/shadow",
		"../../etc/shadow", "x.log", "/var/log/spidernet/../spidernet/x", "//var//log/spidernet//x", "/var/log/spidernet/\x00",
	} {
		f.Add(s)
	}
	const dir, key = DefaultDir, "logOptions.logFile"
	f.Fuzz(func(t *testing.T, configured string) {
		got, err := checkPath(dir, key, configured, "plugin.log")
		if err != nil {
			if !strings.HasPrefix(err.Error(), key+" ") {
				t.Fatalf("error %q does not name %s", err, key)
			}
			return
		}
		if got != filepath.Clean(got) || !filepath.IsAbs(got) || !strings.HasPrefix(got, dir+"/") || strings.ContainsRune(got, 0) {
			t.Fatalf("accepted %q as %q", configured, got)
		}
		for _, elem := range strings.Split(got, "/") {
			if elem == ".." || elem == "." {
				t.Fatalf("accepted %q as %q", configured, got)
			}
		}
		again, err := checkPath(dir, key, got, "plugin.log")
		if err != nil || again != got {
			t.Fatalf("the accepted %q (from %q) gives %q, %v", got, configured, again, err)
		}
	})
}
