package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// indexFile lists the tarballs of a run, so that a loader can push each by its name.
const indexFile = "images.json"

// IndexEntry is one tarball of images.json.
type IndexEntry struct {
	// Component is the short name (-components).
	Component string `json:"component"`
	// File is the tarball's name in the output directory.
	File string `json:"file"`
	// Reference is the full name the tarball is tagged with, what pods and the chart ask for.
	Reference string `json:"reference"`
	// Digest is the image's manifest digest (Docker schema 2, as a registry will serve it).
	Digest string `json:"digest"`
	// Size is the tarball's size in bytes.
	Size int64 `json:"size"`
}

func indexEntry(img Image, path string) (IndexEntry, error) {
	d, err := img.Digest()
	if err != nil {
		return IndexEntry{}, fmt.Errorf("image %s: digest: %w", img.Component, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return IndexEntry{}, err
	}
	return IndexEntry{Component: img.Component, File: filepath.Base(path), Reference: img.Ref.String(), Digest: d.String(), Size: st.Size()}, nil
}

// writeIndex writes images.json: the images of this run, in the order built. A run of some
// -components lists only those.
func writeIndex(dir string, entries []IndexEntry) error {
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	out := filepath.Join(dir, indexFile)
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
