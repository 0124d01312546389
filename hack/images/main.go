// Command images assembles the container images the chart and the user guides run, without a
// container engine: each image is one layer written as a tarball to load with `docker load`,
// `podman load`, `ctr images import` or `kind load image-archive`, or to push by the names that
// images.json lists. The output is reproducible: the same inputs and flags give the same digests.
//
//   - spiderpool-agent, spiderpool-controller: our static binaries (make build), tagged
//     <registry>/<component>:<version>.
//   - spiderpool-plugins: the reference CNI plugins of the pinned tools (make tools) and
//     spiderpool-plugins-install, its entrypoint; <registry>/spiderpool-plugins:<version>.
//   - multus-cni: Multus' thin plugin from the pinned module's binaries (make tools), tagged with
//     the module's version: <registry>/multus-cni:v4.2.2.
//   - pause: Kubernetes' pause.c of the pinned release, compiled static with gcc, under its
//     upstream name registry.k8s.io/pause:<tag of that release>.
//   - busybox, nginx: from the Debian packages busybox-static and nginx installed here, under
//     their upstream names docker.io/library/{busybox,nginx}:latest, for the guides' workloads.
//
// images/<component>/Dockerfile builds ours the same way for users with Docker.
//
//	go run ./hack/images -bin _output/bin -plugins-bin .tools/bin -out _output/images
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
	fs.StringVar(&opts.PluginsDir, "plugins-bin", ".tools/bin", "directory of the pinned tools' binaries: reference CNI plugins, Multus (make tools)")
	fs.StringVar(&opts.ToolsDir, "tools-mod", "hack/tools", "module pinning the tools; Multus' and Kubernetes' sources are looked up there")
	fs.StringVar(&out, "out", "_output/images", "directory the <component>.tar files and "+indexFile+" are written to")
	fs.StringVar(&opts.Registry, "registry", opts.Registry, "registry and path of our images' names (the third-party ones keep their upstream names)")
	fs.StringVar(&opts.Source, "source", opts.Source, "org.opencontainers.image.source label")
	fs.StringVar(&opts.Version, "version", "", "tag and org.opencontainers.image.version label of our images (default: git describe)")
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
	// Every image is built before any is written: a missing input leaves no partial set behind.
	var errs []error
	imgs := make([]Image, len(components))
	for i, c := range components {
		imgs[i], err = Build(c, opts)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var index []IndexEntry
	for _, img := range imgs {
		path, err := Write(img, out)
		if err != nil {
			return err
		}
		e, err := indexEntry(img, path)
		if err != nil {
			return err
		}
		index = append(index, e)
		slog.Info("image written", "component", img.Component, "path", path, "reference", e.Reference, "digest", e.Digest, "size", e.Size)
	}
	return writeIndex(out, index)
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
