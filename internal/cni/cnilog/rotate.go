package cnilog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	defaultMaxSize = 100 << 20 // bytes, when File.MaxSizeMB is 0
	// backupTimeFormat is the time in a rotated file's name, as lumberjack (which we used before)
	// wrote it, so that files rotated by earlier versions are pruned too.
	backupTimeFormat = "2006-01-02T15-04-05.000"
)

// rotating is the log file, written through a descriptor of its directory. Every name it opens,
// renames or removes is one entry of that directory, never a path, so nothing outside the
// directory is reached however its entries change meanwhile.
type rotating struct {
	mu         sync.Mutex
	dir        *os.File // the file's directory
	name       string   // the file's name in dir
	f          *os.File
	size       int64
	maxSize    int64
	maxAge     time.Duration // 0: no limit
	maxBackups int           // 0: no limit
	now        func() time.Time
}

var _ io.WriteCloser = (*rotating)(nil)

// openRotating opens f.Path, which must lie below root, creating its directories. Directories are
// created and opened through an os.Root of root, so a symlink leading out of root (a symlinked
// sub-directory) is refused rather than followed, and no directory is made outside root.
func openRotating(root string, f File) (*rotating, error) {
	p := filepath.Clean(f.Path)
	if !filepath.IsAbs(root) || !within(root, p) {
		return nil, fmt.Errorf("log file %q is not under %s", f.Path, root)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return nil, err
	}
	// The root itself is the operator's: it may be a symlink, and is created like any log directory.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sub := filepath.Dir(rel)
	if err := r.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	dir, err := r.Open(sub)
	if err != nil {
		return nil, err
	}
	w := &rotating{
		dir:        dir,
		name:       filepath.Base(rel),
		maxSize:    int64(f.MaxSizeMB) << 20,
		maxAge:     time.Duration(f.MaxAgeDays) * 24 * time.Hour,
		maxBackups: f.Max,
		now:        time.Now,
	}
	if w.maxSize <= 0 {
		w.maxSize = defaultMaxSize
	}
	if err := w.open(); err != nil {
		_ = dir.Close()
		return nil, err
	}
	w.prune()
	return w, nil
}

// open opens (or creates) the file for appending. O_NOFOLLOW refuses a symlink in its place,
// O_NONBLOCK keeps a planted FIFO from blocking the open; what opens must be a regular file with
// no other name, so that a hard link to a file elsewhere is not written to either.
func (w *rotating) open() error {
	fd, err := unix.Openat(int(w.dir.Fd()), w.name,
		unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "openat", Path: w.name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return &os.PathError{Op: "fstat", Path: w.name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		_ = unix.Close(fd)
		return fmt.Errorf("log file %s is not a regular file with a single name", w.name)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return err
	}
	w.f = os.NewFile(uintptr(fd), filepath.Join(w.dir.Name(), w.name))
	w.size = st.Size
	return nil
}

// Write appends p, rotating first when p would take the file past its size limit. A failed
// rotation leaves the current file in use: a long log is better than a lost one.
func (w *rotating) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(p)) > w.maxSize {
		_ = w.rotate()
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// rotate renames the file to its backup name and opens a new one. Another plugin process may
// have rotated already and created the new file; then this one appends to it.
func (w *rotating) rotate() error {
	dirfd := int(w.dir.Fd())
	if err := unix.Renameat(dirfd, w.name, dirfd, backupName(w.name, w.now())); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "renameat", Path: w.name, Err: err}
	}
	old := w.f
	if err := w.open(); err != nil {
		return err
	}
	_ = old.Close()
	w.prune()
	return nil
}

// prune removes the backups beyond maxBackups (newest kept) and those older than maxAge. Only
// entries named like a backup of this file are candidates, and removing one removes the entry,
// never what a symlink points at.
func (w *rotating) prune() {
	if w.maxBackups == 0 && w.maxAge == 0 {
		return
	}
	// Seek rewinds the directory listing for the second prune of a rotation.
	if _, err := w.dir.Seek(0, io.SeekStart); err != nil {
		return
	}
	entries, err := w.dir.ReadDir(-1)
	if err != nil {
		return
	}
	type backup struct {
		name string
		t    time.Time
	}
	var backups []backup
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if t, ok := backupTime(w.name, e.Name()); ok {
			backups = append(backups, backup{e.Name(), t})
		}
	}
	slices.SortFunc(backups, func(a, b backup) int { return b.t.Compare(a.t) })
	cutoff := w.now().Add(-w.maxAge)
	for i, b := range backups {
		if (w.maxBackups > 0 && i >= w.maxBackups) || (w.maxAge > 0 && b.t.Before(cutoff)) {
			_ = unix.Unlinkat(int(w.dir.Fd()), b.name, 0)
		}
	}
}

// Close closes the file and its directory.
func (w *rotating) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.f.Close(), w.dir.Close())
}

// backupName is name with the time inserted before its extension: spiderpool-2026-01-02T15-04-05.000.log.
func backupName(name string, t time.Time) string {
	ext := filepath.Ext(name)
	return strings.TrimSuffix(name, ext) + "-" + t.UTC().Format(backupTimeFormat) + ext
}

// backupTime returns the time in candidate's name when candidate is a backup of name.
func backupTime(name, candidate string) (time.Time, bool) {
	ext := filepath.Ext(name)
	ts, ok := strings.CutPrefix(candidate, strings.TrimSuffix(name, ext)+"-")
	if !ok {
		return time.Time{}, false
	}
	ts, ok = strings.CutSuffix(ts, ext)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(backupTimeFormat, ts)
	return t, err == nil
}
