// Package benchenv is what the benchmark commands share: their progress lines, a control plane
// with its kubeconfig on disk, and the JSON report.
package benchenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// Step prints a progress line with the time of day.
func Step(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Start starts etcd and kube-apiserver with opts and writes their kubeconfig into dir. The caller
// stops the environment.
func Start(opts testenv.Options, dir string) (env *testenv.Env, kubeconfig string, err error) {
	Step("starting etcd and kube-apiserver")
	if env, err = testenv.Start(opts); err != nil {
		return nil, "", err
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeConfig(kubeconfig); err != nil {
		_ = env.Stop()
		return nil, "", err
	}
	return env, kubeconfig, nil
}

// WriteReport writes r as indented JSON to dir/<name>-<at>.json and returns the path.
func WriteReport(dir, name string, at time.Time, r any) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.json", name, at.Format("20060102-150405")))
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	Step("report: %s", path)
	return path, nil
}
