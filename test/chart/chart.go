package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// ReleaseName and Namespace are those of the guides: helm install spiderpool ... --namespace kube-system.
const (
	ReleaseName = "spiderpool"
	Namespace   = "kube-system"
)

// ErrNoHelm means the pinned helm binary has not been built.
var ErrNoHelm = errors.New("helm not found: run `make tools` (or set SPIDERPOOL_TOOLS_BIN)")

// GuideLine is one `helm install` line of a guide, as its --set arguments.
type GuideLine struct {
	Name string
	Args []string
}

// GuideLines are the install lines of docs/guides/public-cloud.md#1-install and docs/guides/calico-overlay.md#1-install, the optional flags of the public-cloud guide on
// their own and combined, and the defaults. The guides quote values for the shell
// (defaultCniCRName="ipvlan-eth0"); exec needs no quotes.
var GuideLines = []GuideLine{
	{Name: "defaults"},
	{Name: "alibaba", Args: []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=ipvlan-eth0"}},
	{Name: "alibaba-optional", Args: []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=ipvlan-eth0",
		"--set", "plugins.installCNI=true", "--set", "global.imageRegistryOverride=ghcr.m.daocloud.io"}},
	{Name: "aws", Args: []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=default/ipvlan-ens5"}},
	{Name: "calico-overlay", Args: []string{"--set", "coordinator.mode=overlay"}},
	{Name: "install-cni", Args: []string{"--set", "plugins.installCNI=true"}},
	{Name: "registry-override", Args: []string{"--set", "global.imageRegistryOverride=ghcr.m.daocloud.io"}},
}

// ToolsBin is $SPIDERPOOL_TOOLS_BIN (the Makefile exports it), else .tools/bin of the repository.
func ToolsBin() (string, error) {
	if dir := os.Getenv("SPIDERPOOL_TOOLS_BIN"); dir != "" {
		return dir, nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin"), nil
}

// Helm returns the path of the pinned helm binary, or an error wrapping ErrNoHelm.
func Helm() (string, error) {
	dir, err := ToolsBin()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "helm")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w (looked for %s)", ErrNoHelm, path)
	}
	return path, nil
}

// Dir returns charts/spiderpool of the repository.
func Dir() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "spiderpool"), nil
}

// Require returns the pinned helm and the chart's directory for a test, which it skips (naming
// what to build) when helm is not built and fails on any other error.
func Require(t testing.TB) (helm, dir string) {
	t.Helper()
	helm, err := Helm()
	if errors.Is(err, ErrNoHelm) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = Dir(); err != nil {
		t.Fatal(err)
	}
	return helm, dir
}

// Template runs `helm template spiderpool <chart> --namespace kube-system <args>` and returns the
// manifests; on failure the error carries helm's message.
func Template(helm, dir string, args ...string) ([]byte, error) {
	return run(helm, append([]string{"template", ReleaseName, dir, "--namespace", Namespace}, args...)...)
}

// Lint runs `helm lint --strict <chart> --namespace kube-system <args>`.
func Lint(helm, dir string, args ...string) ([]byte, error) {
	return run(helm, append([]string{"lint", "--strict", dir, "--namespace", Namespace}, args...)...)
}

// InstallDryRun runs `helm install --dry-run=server` against the cluster of kubeconfig: Helm renders
// the chart, hooks and NOTES.txt, checks the objects against the server, and stores nothing.
func InstallDryRun(helm, dir, kubeconfig string, args ...string) ([]byte, error) {
	return run(helm, append([]string{"install", ReleaseName, dir, "--namespace", Namespace, "--dry-run=server", "--kubeconfig", kubeconfig}, args...)...)
}

func run(helm string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// helm must not pick up a user's repositories, plugins or kubeconfig.
	home, err := os.MkdirTemp("", "helm-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %v: %w: %s%s", args, err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// Decode splits rendered manifests into objects, skipping empty documents.
func Decode(manifests []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decode rendered manifests: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}
