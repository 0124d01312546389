package cnilog

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

func TestPath(t *testing.T) {
	const key = "ipam.log_file_path"
	tests := []struct {
		name       string
		env        string // SPIDERPOOL_CNI_LOG_DIR
		configured string
		want       string // "" when refused
		wantErr    string
	}{
		{name: "unset takes the default name", want: "/var/log/spidernet/spiderpool.log"},
		{name: "inside", configured: "/var/log/spidernet/x.log", want: "/var/log/spidernet/x.log"},
		{name: "sub-directory", configured: "/var/log/spidernet/a/b.log", want: "/var/log/spidernet/a/b.log"},
		{name: "cleaned", configured: "/var/log/spidernet/./a//b/../c.log", want: "/var/log/spidernet/a/c.log"},
		{name: ".. staying inside", configured: "/var/log/spidernet/a/../x.log", want: "/var/log/spidernet/x.log"},
		{name: "outside", configured: "/etc/shadow", wantErr: `ipam.log_file_path "/etc/shadow": must be a file under /var/log/spidernet`},
		{name: "relative", configured: "spiderpool.log", wantErr: `ipam.log_file_path "spiderpool.log": must be a file under /var/log/spidernet`},
		{name: "relative with the directory's name", configured: "var/log/spidernet/x.log", wantErr: "must be a file under /var/log/spidernet"},
		{name: ".. escape", configured: "/var/log/spidernet/../../../etc/shadow", wantErr: `"/var/log/spidernet/../../../etc/shadow": must be a file under`},
		{name: "the directory itself", configured: "/var/log/spidernet", wantErr: "must be a file under"},
		{name: "the directory with a slash", configured: "/var/log/spidernet/", wantErr: "must be a file under"},
		{name: "the directory's parent", configured: "/var/log/spidernet/..", wantErr: "must be a file under"},
		{name: "a sibling sharing the prefix", configured: "/var/log/spidernet2/x.log", wantErr: "must be a file under"},
		{name: "NUL byte", configured: "/var/log/spidernet/x\x00.log", wantErr: "contains a NUL byte"},
		{name: "override: default", env: "/tmp/logs", want: "/tmp/logs/spiderpool.log"},
		{name: "override: inside", env: "/tmp/logs/", configured: "/tmp/logs/x.log", want: "/tmp/logs/x.log"},
		{name: "override: the default directory is outside", env: "/tmp/logs", configured: "/var/log/spidernet/x.log",
			wantErr: `ipam.log_file_path "/var/log/spidernet/x.log": must be a file under /tmp/logs`},
		{name: "override: relative", env: "logs", configured: "logs/x.log", wantErr: `SPIDERPOOL_CNI_LOG_DIR "logs" must be an absolute directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(DirEnv, tt.env)
			got, err := Path(key, tt.configured, "spiderpool.log")
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Path(%q) = %q, %v; want error containing %q", tt.configured, got, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("Path(%q) = %q, %v; want %q", tt.configured, got, err, tt.want)
			}
		})
	}
}

// readLines returns the JSON lines of a log file.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DirEnv, dir)
	path := filepath.Join(dir, "sub", "plugin.log")
	log, closeLog := Open(File{Path: path, Level: slog.LevelInfo, MaxSizeMB: 1, MaxAgeDays: 1, Max: 1})
	log.Debug("hidden")
	log.Info("shown", "pod", "default/a")
	closeLog()
	recs := readLines(t, path)
	if len(recs) != 1 || recs[0]["msg"] != "shown" || recs[0]["pod"] != "default/a" || recs[0]["pid"] == nil {
		t.Errorf("log holds %v, want only the info line", recs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v, %v", fi, err)
	}
	// A second invocation appends.
	log, closeLog = Open(File{Path: path, Level: slog.LevelInfo})
	log.Info("again")
	closeLog()
	if recs := readLines(t, path); len(recs) != 2 || recs[1]["msg"] != "again" {
		t.Errorf("after a second Open the log holds %v", recs)
	}
}

// TestOpenConfined: Open writes nothing outside the log directory, whatever the directory holds;
// it gives Discard instead. The planted symlinks and links stand for an attacker who can write to
// the log directory (a pod with a hostPath volume) and a configuration that names a path inside it.
func TestOpenConfined(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, outside string) // outside is a file outside dir
		path  string                                  // relative to dir
	}{
		{"symlinked file", func(t *testing.T, dir, outside string) {
			symlink(t, outside, filepath.Join(dir, "spiderpool.log"))
		}, "spiderpool.log"},
		{"symlinked file inside the directory", func(t *testing.T, dir, _ string) {
			// O_NOFOLLOW refuses every symlink, not only those leading out.
			write(t, filepath.Join(dir, "real.log"), "")
			symlink(t, "real.log", filepath.Join(dir, "spiderpool.log"))
		}, "spiderpool.log"},
		{"dangling symlink", func(t *testing.T, dir, outside string) {
			symlink(t, outside+".new", filepath.Join(dir, "spiderpool.log"))
		}, "spiderpool.log"},
		{"symlinked directory", func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Dir(outside), filepath.Join(dir, "sub"))
		}, "sub/" + "target"},
		{"symlinked directory, new sub-directory", func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Dir(outside), filepath.Join(dir, "sub"))
		}, "sub/created/x.log"},
		{"symlinked directory by a relative link", func(t *testing.T, dir, outside string) {
			rel, err := filepath.Rel(dir, filepath.Dir(outside))
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, rel, filepath.Join(dir, "sub"))
		}, "sub/target"},
		{"hard link", func(t *testing.T, dir, outside string) {
			if err := os.Link(outside, filepath.Join(dir, "spiderpool.log")); err != nil {
				t.Skipf("hard link: %v", err)
			}
		}, "spiderpool.log"},
		{"FIFO in the file's place", func(t *testing.T, dir, _ string) {
			// Opening a FIFO for writing would block until a reader comes.
			if err := unix.Mkfifo(filepath.Join(dir, "spiderpool.log"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "spiderpool.log"},
		{"directory in the file's place", func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(filepath.Join(dir, "spiderpool.log"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "spiderpool.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir, outsideDir := filepath.Join(base, "logs"), filepath.Join(base, "etc")
			for _, d := range []string{dir, outsideDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			outside := filepath.Join(outsideDir, "target")
			write(t, outside, "secret\n")
			t.Setenv(DirEnv, dir)
			tt.plant(t, dir, outside)
			before := tree(t, outsideDir)

			p, err := Path("logFile", filepath.Join(dir, tt.path), "x.log")
			if err != nil {
				t.Fatalf("Path: %v", err) // the configuration alone is fine: the file system is not
			}
			log, closeLog := Open(File{Path: p, MaxSizeMB: 1, Max: 1})
			log.Error("must not reach the target")
			closeLog()
			if log != Discard {
				t.Error("Open did not give Discard")
			}
			if after := tree(t, outsideDir); after != before {
				t.Errorf("outside the log directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestRotation: rotation renames the file within its directory, keeps Max backups and removes
// older ones and only backups of this file; a symlink named like a backup is removed itself,
// never its target.
func TestRotation(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "logs")
	outside := filepath.Join(base, "target-2000-01-01T00-00-00.000.log")
	write(t, outside, "secret\n")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Old backups: two of this file (one a symlink leading out), one of another file.
	write(t, filepath.Join(dir, "plugin-2001-01-01T00-00-00.000.log"), "old\n")
	symlink(t, outside, filepath.Join(dir, "plugin-2000-01-01T00-00-00.000.log"))
	write(t, filepath.Join(dir, "other-2000-01-01T00-00-00.000.log"), "other\n")

	w, err := openRotating(dir, File{Path: filepath.Join(dir, "plugin.log"), Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.maxSize = 100
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.now = func() time.Time { return clock }
	line := strings.Repeat("x", 49) + "\n"
	for range 5 { // 50 bytes each: the third and the fifth write rotate
		clock = clock.Add(time.Second)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dir)
	want := "other-2000-01-01T00-00-00.000.log:6 plugin-2026-01-02T03-04-08.000.log:100 plugin-2026-01-02T03-04-10.000.log:100 plugin.log:50"
	if got != want {
		t.Errorf("log directory:\n got %s\nwant %s", got, want)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "secret\n" {
		t.Errorf("symlink target: %q, %v", b, err)
	}
}

func TestBackupTime(t *testing.T) {
	at := time.Date(2026, 12, 3, 17, 39, 53, 867e6, time.UTC)
	name := backupName("spiderpool.log", at)
	if name != "spiderpool-2026-12-03T17-39-53.867.log" {
		t.Errorf("backupName = %q", name)
	}
	for candidate, want := range map[string]bool{
		name: true, "spiderpool.log": false, "spiderpool-x.log": false, "coordinator-2026-12-03T17-39-53.867.log": false,
		"spiderpool-2026-12-03T17-39-53.867.log.gz": false, "spiderpool-2026-12-03T17-39-53.867": false,
	} {
		if got, ok := backupTime("spiderpool.log", candidate); ok != want || (ok && !got.Equal(at)) {
			t.Errorf("backupTime(%q) = %v, %v", candidate, got, ok)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// tree lists the entries below dir with the size of each regular file, and symlinks as links.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+"->"+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, rel+":"+strconv.FormatInt(fi.Size(), 10))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}
