package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kubernetesModule is the pinned Kubernetes module (hack/tools): build/pause holds the source of
// the pause program and, in its Makefile, the image tag of that release.
const kubernetesModule = "k8s.io/kubernetes"

// pauseContent compiles Kubernetes' pause.c of the pinned release as upstream's build/pause does:
// static, stripped, with -DVERSION=v<TAG>-<release>, and tags it with that Makefile's TAG, which is
// the sandbox image kubeadm and containerd of the same generation ask for (3.10.2 for v1.37), so
// that the node's pinned sandbox image resolves to this one. $CC overrides gcc.
func pauseContent(opts Options) (Content, error) {
	m, err := opts.module(kubernetesModule)
	if err != nil {
		return Content{}, err
	}
	dir := filepath.Join(m.Dir, "build", "pause")
	tag, err := makefileTag(filepath.Join(dir, "Makefile"))
	if err != nil {
		return Content{}, err
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return Content{}, &MissingError{Paths: []string{cc}, Hint: "install the Debian packages gcc and libc6-dev"}
	}
	tmp, err := os.MkdirTemp("", "pause-")
	if err != nil {
		return Content{}, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "pause")
	version := "v" + tag + "-" + m.Version
	cmd := exec.Command(cc, "-Os", "-Wall", "-Werror", "-static", "-s", "-DVERSION="+version, "-o", out, filepath.Join(dir, "linux", "pause.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return Content{}, fmt.Errorf("compile pause.c (%s): %w\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return Content{}, err
	}
	if err := checkStatic(data); err != nil {
		return Content{}, fmt.Errorf("pause: %w", err)
	}
	return Content{
		Files:   []tarFile{executable("/pause", data)},
		Version: tag,
		Summary: fmt.Sprintf("pause %s: build/pause/linux/pause.c of %s@%s, %s -static", version, kubernetesModule, m.Version, filepath.Base(cc)),
	}, nil
}

// makefileTag reads the `TAG ?= x` line of build/pause/Makefile.
func makefileTag(makefile string) (string, error) {
	b, err := os.ReadFile(makefile)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "?=")
		if ok && strings.TrimSpace(k) == "TAG" && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New(makefile + ": no `TAG ?=` line")
}
