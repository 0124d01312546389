// Command images assembles the project's container images without a container engine: each image
// is one layer of static binaries on an empty base, written as a tarball to load with `docker
// load`, `podman load`, `ctr images import` or `kind load image-archive`. The output is
// reproducible: the same binaries and flags give the same image digest. images/<component>/Dockerfile
// builds the same images for users with Docker.
//
//	go run ./hack/images -bin _output/bin -out _output/images
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	opts := Options{Registry: "ghcr.io/spiderpool-go", Source: "https://github.com/spiderpool-go/spiderpool"}
	var out, only string
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.StringVar(&opts.BinDir, "bin", "_output/bin", "directory of our static binaries (make build)")
	fs.StringVar(&opts.PluginsDir, "plugins-bin", ".tools/bin", "directory of the reference CNI plugins (make tools)")
	fs.StringVar(&out, "out", "_output/images", "directory the <component>.tar files are written to")
	fs.StringVar(&opts.Registry, "registry", opts.Registry, "registry and path of the image names")
	fs.StringVar(&opts.Source, "source", opts.Source, "org.opencontainers.image.source label")
	fs.StringVar(&opts.Version, "version", "", "image tag and org.opencontainers.image.version label (default: git describe)")
	fs.StringVar(&opts.Revision, "revision", "", "org.opencontainers.image.revision label (default: git rev-parse HEAD)")
	fs.StringVar(&only, "components", "", "comma-separated components to build (default: all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if opts.Version == "" {
		opts.Version = gitOr("dev", "describe", "--tags", "--always", "--dirty")
	}
	if opts.Revision == "" {
		opts.Revision = gitOr("unknown", "rev-parse", "HEAD")
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	opts.Created = created

	components := Components()
	if only != "" {
		want := strings.Split(only, ",")
		for _, w := range want {
			if !slices.ContainsFunc(components, func(c Component) bool { return c.Name == w }) {
				return fmt.Errorf("unknown component %q", w)
			}
		}
		components = slices.DeleteFunc(components, func(c Component) bool { return !slices.Contains(want, c.Name) })
	}
	// Every image is built before any is written: a missing binary leaves no partial set behind.
	var errs []error
	imgs := make([]v1.Image, len(components))
	for i, c := range components {
		imgs[i], err = Build(c, opts)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, c := range components {
		path, err := Write(imgs[i], c, opts, out)
		if err != nil {
			return err
		}
		digest, err := imgs[i].Digest()
		if err != nil {
			return fmt.Errorf("image %s: digest: %w", c.Name, err)
		}
		slog.Info("image written", "component", c.Name, "path", path, "digest", digest.String(), "version", opts.Version)
	}
	return nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH (the reproducible-builds convention), else the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the epoch: %w", v, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// gitOr runs git with args and returns its trimmed output, or fallback when git cannot answer
// (no git, not a checkout).
func gitOr(fallback string, args ...string) string {
	b, err := exec.Command("git", args...).Output()
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return fallback
	}
	return strings.TrimSpace(string(b))
}
