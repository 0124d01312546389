package cluster

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is the sandbox's OCI registry: go-containerregistry's in-memory registry served over
// plain HTTP inside a namespace of the sandbox, where the nodes' containerd pulls from it.
type Registry struct {
	// Addr is where the nodes reach it (host:port inside the sandbox network).
	Addr    netip.AddrPort
	handler http.Handler
	srv     *http.Server
	ln      net.Listener
	// Images lists what was pushed, as "reference digest".
	Images []string
}

// StartRegistry serves a registry on addr inside n. Requests are logged to logPath.
func StartRegistry(n ns.NetNS, addr netip.AddrPort, logPath string) (*Registry, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	h := registry.New(registry.Logger(log.New(lf, "", log.LstdFlags)))
	var ln net.Listener
	err = n.Do(func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("registry: listen on %s in %s: %w", addr, n.Path(), err)
	}
	r := &Registry{Addr: addr, handler: h, ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}}
	go func() {
		_ = r.srv.Serve(ln)
		lf.Close()
	}()
	return r, nil
}

// Close stops serving.
func (r *Registry) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// handlerTransport calls the registry's handler in process: pushing needs no route to the
// sandbox network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// PushTarballs pushes every image of the docker-save tarballs in dir under each of its tags,
// re-homed to this registry: "ghcr.io/spiderpool-go/spiderpool-agent:v0.1.0" is stored as
// "spiderpool-go/spiderpool-agent:v0.1.0" and "docker.io/library/busybox:latest" as
// "library/busybox:latest", so that the chart's imageRegistryOverride and containerd's mirrors
// both find them.
func (r *Registry) PushTarballs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("registry: no image tarballs in %s (make images)", dir)
	}
	sort.Strings(files)
	tr := handlerTransport{r.handler}
	for _, f := range files {
		tags, err := tarballTags(f)
		if err != nil {
			return fmt.Errorf("registry: %s: %w", f, err)
		}
		for _, t := range tags {
			src, err := name.NewTag(t)
			if err != nil {
				return fmt.Errorf("registry: %s: tag %q: %w", f, t, err)
			}
			img, err := tarball.ImageFromPath(f, &src)
			if err != nil {
				return fmt.Errorf("registry: read %s from %s: %w", t, f, err)
			}
			if err := push(ctx, tr, src.RepositoryStr(), src.TagStr(), img); err != nil {
				return fmt.Errorf("registry: push %s: %w", t, err)
			}
			d, _ := img.Digest()
			r.Images = append(r.Images, fmt.Sprintf("%s %s", src.String(), d))
		}
	}
	return nil
}

// push uploads img's blobs and manifest to repo:tag with the registry's HTTP API (one
// monolithic upload per blob).
func push(ctx context.Context, tr http.RoundTripper, repo, tag string, img v1.Image) error {
	c := &http.Client{Transport: tr}
	do := func(method, url, ctype string, body io.Reader, want int) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			return nil, err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != want {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
		}
		return resp, nil
	}
	blob := func(d v1.Hash, open func() (io.ReadCloser, error)) error {
		resp, err := do(http.MethodHead, "http://registry/v2/"+repo+"/blobs/"+d.String(), "", nil, http.StatusOK)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		resp, err = do(http.MethodPost, "http://registry/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
		if err != nil {
			return err
		}
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		if !strings.HasPrefix(loc, "http") {
			loc = "http://registry" + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		resp, err = do(http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", rc, http.StatusCreated)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if err := blob(d, l.Compressed); err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := blob(cfgName, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(cfg))), nil }); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	resp, err := do(http.MethodPut, "http://registry/v2/"+repo+"/manifests/"+tag, string(mt), strings.NewReader(string(raw)), http.StatusCreated)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	resp.Body.Close()
	return nil
}

// tarballTags reads the RepoTags of a docker-save tarball's manifest.json.
func tarballTags(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no manifest.json")
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		var tags []string
		for _, e := range m {
			tags = append(tags, e.RepoTags...)
		}
		if len(tags) == 0 {
			return nil, errors.New("manifest.json names no tag")
		}
		return tags, nil
	}
}
