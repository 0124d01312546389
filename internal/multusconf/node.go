package multusconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// NodeConfName and NodeConfVersion are the network name and cniVersion of the configuration the
// Multus DaemonSet writes to every node; the runtime only sees the name in its logs and caches.
const (
	NodeConfName    = "multus-cni-network"
	NodeConfVersion = "0.3.1"
)

// NodeConf holds the Helm values that make the 00-multus.conf the chart's Multus DaemonSet puts
// on each node when multus.multusCNI.defaultCniCRName is set. The chart hands the raw values to
// `spiderpool-agent multus-config`, which writes the file with Options and ThinConfig, instead of
// assembling the JSON in a template: the cluster network must be split the way
// ResolveClusterNetwork does for the agent and spiderpool-init.
type NodeConf struct {
	// ClusterNetwork is multus.multusCNI.defaultCniCRName as given: "name" or "namespace/name".
	ClusterNetwork string
	// Namespace is the release namespace, where a bare ClusterNetwork name lives.
	Namespace string
	// Kubeconfig is the path on the node of the kubeconfig Multus reads NADs and pods with.
	Kubeconfig string
	// ConfDir and BinDir are the node's CNI directories (global.cniConfHostPath,
	// global.cniBinHostPath).
	ConfDir, BinDir string
	// LogLevel and LogFile are multus.multusCNI.log.logLevel and logFile.
	LogLevel, LogFile string
}

// Options returns the thin-plugin options of c: ClusterNetwork resolved into clusterNetwork and
// multusNamespace, the runtime capabilities the upstream DaemonSet grants (port mappings and
// bandwidth, passed on to the delegates), and c's paths and log settings. Errors name the value
// at fault.
func (c NodeConf) Options() (Options, error) {
	ns, name, err := ResolveClusterNetwork(c.ClusterNetwork, c.Namespace)
	if err != nil {
		return Options{}, fmt.Errorf("multus.multusCNI.defaultCniCRName: %w", err)
	}
	return Options{
		Name:            NodeConfName,
		CNIVersion:      NodeConfVersion,
		Kubeconfig:      c.Kubeconfig,
		ClusterNetwork:  name,
		MultusNamespace: ns,
		ConfDir:         c.ConfDir,
		BinDir:          c.BinDir,
		Capabilities:    []string{"portMappings", "bandwidth"},
		LogLevel:        c.LogLevel,
		LogFile:         c.LogFile,
	}, nil
}

// WriteFile writes data to path so that a reader sees either the old file or the whole new one,
// never a part: the thin entrypoint copies the file as soon as it exists. It writes a temporary
// file beside path, syncs it and renames it over path.
func WriteFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	// CreateTemp makes the file 0600; a configuration is read by the runtime only, but copies of
	// it (the entrypoint's) keep the mode, and CNI configurations are customarily 0644.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
