package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	root := flag.String("root", ".", "repository root")
	out := flag.String("out", "docs/reference", "directory of the generated pages, relative to -root")
	bin := flag.String("bin", "", "directory holding our binaries already built; empty builds them into a scratch directory")
	flag.Parse()
	if err := run(context.Background(), *root, *out, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root, out, bin string) error {
	pages, err := Generate(ctx, Options{Root: root, BinDir: bin})
	if err != nil {
		return err
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	return writePages(out, pages)
}

// Options say where the generator finds its inputs.
type Options struct {
	// Root is the repository root.
	Root string
	// BinDir holds our binaries; empty means build them into a scratch directory.
	BinDir string
}

// Generate returns every page of docs/reference by file name.
func Generate(ctx context.Context, o Options) (map[string][]byte, error) {
	pages := map[string][]byte{}
	var errs []error
	add := func(name string, b []byte, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		pages[name] = b
	}

	add(sectionAPI(o.Root))
	add(sectionAnnotations(o.Root))
	add(sectionCNI(o.Root))
	add(sectionHelm(o.Root))
	add(sectionMetrics())
	add(sectionFlags(ctx, o.Root, o.BinDir))
	add("README.md", renderIndex(), nil)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pages, nil
}

// writePages replaces the Markdown files of dir with pages: files of dir that are no longer
// generated are removed, so a page dropped from the generator does not linger.
func writePages(dir string, pages map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range old {
		if _, ok := pages[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove stale page: %w", err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pages)) {
		if err := os.WriteFile(filepath.Join(dir, name), pages[name], 0o644); err != nil {
			return fmt.Errorf("write page: %w", err)
		}
	}
	return nil
}

// Stale compares pages with the files of dir and describes every difference: a page that is
// missing, differs, or is a Markdown file no longer generated. Empty means dir is current.
func Stale(dir string, pages map[string][]byte) ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(pages)) {
		got, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			out = append(out, name+": missing")
		case err != nil:
			return nil, fmt.Errorf("read page: %w", err)
		case string(got) != string(pages[name]):
			out = append(out, name+": differs from what the sources generate"+firstDiff(string(got), string(pages[name])))
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range files {
		if _, ok := pages[filepath.Base(f)]; !ok {
			out = append(out, filepath.Base(f)+": no longer generated")
		}
	}
	return out, nil
}

// firstDiff names the first line where have and want differ.
func firstDiff(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := range max(len(h), len(w)) {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf(" (first at line %d:\n    have %q\n    want %q)", i+1, hl, wl)
		}
	}
	return ""
}
