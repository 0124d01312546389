package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Options tunes the control plane. The zero value is what most suites want.
type Options struct {
	// ExtraCRDDirs are installed in addition to charts/spiderpool/crds.
	ExtraCRDDirs []string
	// StartTimeout bounds the start of etcd and kube-apiserver; 0 means 2 minutes, which a loaded
	// 2-core machine needs for the apiserver's first start.
	StartTimeout time.Duration
	// Dir, when set, holds etcd's data (Dir/etcd) and the apiserver's certificates
	// (Dir/apiserver) instead of fresh temporary directories: a process that outlives its parent
	// can then be found by that path in its command line (the sandbox's down does).
	Dir string
	// APIServerArgs are extra kube-apiserver flags (name without dashes → value), e.g.
	// "etcd-compaction-interval": "10s".
	APIServerArgs map[string]string
	// EtcdArgs are extra etcd flags, e.g. "max-request-bytes": "131072".
	EtcdArgs map[string]string
}

// ServiceCIDR is the control plane's service range, the one of the guides' clusters.
const ServiceCIDR = "10.233.0.0/18"

// Env is a running control plane.
type Env struct {
	// Config reaches the apiserver as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client (no cache) with Scheme.
	Client client.Client
	// Scheme knows the built-in kinds, apiextensions, spiderpool.spidernet.io/v2beta1 and
	// internal.spiderpool-go.io/v1alpha1.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

// NewScheme returns a scheme with every kind our components and tests handle.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblockv1alpha1.AddToScheme(s))
	return s
}

// Start boots etcd and kube-apiserver and installs our CRDs. Stop it with Env.Stop.
func Start(opts Options) (*Env, error) {
	bin, err := ToolsBin()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	scheme := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory:    bin,
		CRDDirectoryPaths:        append([]string{filepath.Join(root, "charts", "spiderpool", "crds")}, opts.ExtraCRDDirs...),
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: timeout,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// The guides' clusters use 10.233.0.0/18 for services (docs/guides/public-cloud.md#topology-used-in-the-examples and docs/guides/calico-overlay.md#topology-used-in-the-examples); the control plane does too,
	// so that what the SpiderCoordinator detects from the apiserver matches the guides' output.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", ServiceCIDR)
	for k, v := range opts.APIServerArgs {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
	}
	if opts.Dir != "" {
		env.ControlPlane.GetAPIServer().CertDir = filepath.Join(opts.Dir, "apiserver")
		env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(opts.Dir, "etcd")}
		for _, d := range []string{env.ControlPlane.GetAPIServer().CertDir, env.ControlPlane.Etcd.DataDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("control plane directory: %w", err)
			}
		}
	}
	if len(opts.EtcdArgs) > 0 {
		if env.ControlPlane.Etcd == nil {
			env.ControlPlane.Etcd = &envtest.Etcd{}
		}
		for k, v := range opts.EtcdArgs {
			env.ControlPlane.Etcd.Configure().Set(k, v)
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane from %s: %w", bin, err)
	}
	// Parallel suites and benchmarks issue many requests; the client-go default of 5 QPS would
	// measure the client's rate limiter rather than the apiserver or our code.
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client for test control plane: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := waitForStorage(ctx, c, env.CRDs); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// waitForStorage lists every served version of every installed CRD until the apiserver answers.
// A CRD is Established before its watch cache is ready; until then requests fail with 429
// "storage is (re)initializing", which would make the first test of a suite flaky.
func waitForStorage(ctx context.Context, c client.Client, crds []*apiextensionsv1.CustomResourceDefinition) error {
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.ListKind})
			var lastErr error
			err := WaitFor(ctx, func(ctx context.Context) (bool, error) {
				lastErr = c.List(ctx, list, client.Limit(1))
				return lastErr == nil, nil
			})
			if err != nil {
				return fmt.Errorf("CRD %s/%s never became listable: %w (last error: %v)", crd.Name, v.Name, err, lastErr)
			}
		}
	}
	return nil
}

// KubeConfig returns a kubeconfig file's content for the control plane's admin user, for programs
// run as separate processes (plugins, kubectl, other projects' binaries in the benchmarks).
func (e *Env) KubeConfig() []byte { return e.env.KubeConfig }

// WriteKubeConfig writes KubeConfig to path with mode 0600.
func (e *Env) WriteKubeConfig(path string) error {
	if err := os.WriteFile(path, e.env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Stop shuts the control plane down and removes its data.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// RestartAPIServer kills kube-apiserver (SIGKILL: a crash, no graceful drain of its watches) and
// starts it again on the same port with the same certificates; etcd keeps running. The
// environment must have been started with Options.Dir: without it envtest makes fresh
// certificates that the clients' configurations no longer trust.
func (e *Env) RestartAPIServer() error {
	api := e.env.ControlPlane.GetAPIServer()
	if api.CertDir == "" {
		return errors.New("restart apiserver: the environment has no fixed directory (Options.Dir)")
	}
	pid, err := findProcess("kube-apiserver", "--cert-dir="+api.CertDir)
	if err != nil {
		return fmt.Errorf("restart apiserver: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("restart apiserver: kill %d: %w", pid, err)
	}
	if err := api.Stop(); err != nil { // reaps the killed process
		return fmt.Errorf("restart apiserver: stop: %w", err)
	}
	if err := api.Start(); err != nil {
		return fmt.Errorf("restart apiserver: start: %w", err)
	}
	return nil
}

// findProcess returns the pid of the process whose command line has binary's base name as its
// first word and contains arg.
func findProcess(binary, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == binary && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with %s", binary, arg)
}

// WaitFor polls cond every 50 ms until it returns true, an error, or ctx ends.
func WaitFor(ctx context.Context, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ErrNoTools means the control plane binaries have not been built.
var ErrNoTools = errors.New("kube-apiserver and etcd not found: run `make tools`")

// ToolsBin returns the directory holding kube-apiserver and etcd: $SPIDERPOOL_TOOLS_BIN, or
// .tools/bin at the repository root.
func ToolsBin() (string, error) {
	dir := os.Getenv("SPIDERPOOL_TOOLS_BIN")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".tools", "bin")
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%w (looked in %s)", ErrNoTools, dir)
		}
	}
	return dir, nil
}

// RepoRoot finds the repository root by walking up from the working directory to go.mod of
// the main module (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && isMainModule(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/spiderpool-go/spiderpool above the working directory")
		}
		dir = parent
	}
}

func isMainModule(gomod []byte) bool {
	const want = "module github.com/spiderpool-go/spiderpool\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}
