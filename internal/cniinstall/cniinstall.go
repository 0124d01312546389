// Package cniinstall copies CNI plugin binaries from an image onto the node, so that a container
// runtime never runs a half-written file: each binary is written under a temporary name in the
// target directory, synced, made executable and renamed over the old one.
package cniinstall

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Install copies every regular file of from into to and returns their names in order.
func Install(from, to string) ([]string, error) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", from, err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", to, err)
	}
	var names []string
	for _, e := range entries {
		info, err := os.Stat(filepath.Join(from, e.Name())) // follows the image's hard or symbolic links
		if err != nil {
			return names, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if err := installOne(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return names, err
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no plugin binaries in %s", from)
	}
	sort.Strings(names)
	return names, nil
}

func installOne(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".new")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("install %s: %w", dst, err)
	}
	if err := errors.Join(out.Chmod(0o755), out.Sync(), out.Close()); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}
