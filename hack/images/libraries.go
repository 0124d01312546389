package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// libraryDirs are where the dynamic loader of a Debian amd64 system looks for a library that no
// ld.so.cache names, in its order. A library goes into the image at the path it was found under
// here, so the image needs no cache.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibraries returns what the dynamically linked executable exe of this machine needs to
// start in an empty image: its program interpreter at the path the executable names, and every
// DT_NEEDED library, transitively, at the path the loader would find it under, each a regular
// file (symbolic links resolved).
func sharedLibraries(exe string) ([]tarFile, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	interp, err := interpreter(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	if interp == "" {
		return nil, fmt.Errorf("%s: not dynamically linked", exe)
	}
	data, err := os.ReadFile(interp)
	if err != nil {
		return nil, fmt.Errorf("%s: program interpreter: %w", exe, err)
	}
	out := []tarFile{executable(interp, data)}
	// The loader is loaded once, as the interpreter: a library that needs it by name gets it.
	done := map[string]bool{path.Base(interp): true}
	queue, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	needer := map[string]string{}
	for _, n := range queue {
		needer[n] = exe
	}
	for len(queue) > 0 {
		lib := queue[0]
		queue = queue[1:]
		if done[lib] {
			continue
		}
		done[lib] = true
		found, data, needs, err := findLibrary(lib, f.Class, f.Machine)
		if err != nil {
			return nil, fmt.Errorf("%s, needed by %s: %w", lib, needer[lib], err)
		}
		out = append(out, regular(found, data))
		for _, n := range needs {
			if _, ok := needer[n]; !ok {
				needer[n] = found
			}
		}
		queue = append(queue, needs...)
	}
	return out, nil
}

// findLibrary looks name up in libraryDirs and returns the first file of the executable's class
// and machine (a loader skips the others too), its bytes and what it needs in turn.
func findLibrary(name string, class elf.Class, machine elf.Machine) (string, []byte, []string, error) {
	if strings.Contains(name, "/") {
		return "", nil, nil, errors.New("a library named by path is not supported")
	}
	for _, dir := range libraryDirs {
		p := path.Join(dir, name)
		data, err := os.ReadFile(filepath.FromSlash(p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, nil, err
		}
		lf, err := elf.NewFile(bytes.NewReader(data))
		if err != nil || lf.Class != class || lf.Machine != machine {
			continue
		}
		needs, err := lf.ImportedLibraries()
		lf.Close()
		if err != nil {
			return "", nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		return p, data, needs, nil
	}
	return "", nil, nil, fmt.Errorf("not found in %s", strings.Join(libraryDirs, ", "))
}

// interpreter returns the PT_INTERP path of f, or "" for a static executable.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read the program interpreter: %w", err)
		}
		return string(bytes.TrimRight(b, "\x00")), nil
	}
	return "", nil
}
