package initjob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ClusterCNIConfig is the cluster network's configuration found in a CNI configuration directory.
type ClusterCNIConfig struct {
	// File is the path of the file it was read from.
	File string
	// Name is the network's "name".
	Name string
	// Config is the file's JSON, compacted.
	Config string
}

// cniConfExtensions are the extensions libcni loads, the order in which kubelet's runtime picks
// the first file being lexical by name.
var cniConfExtensions = []string{".conf", ".conflist", ".json"}

// FindClusterCNIConfig returns the first CNI configuration of dir in lexical order, as the
// container runtime picks it, skipping Multus's own (00-multus.conf, or any file whose plugin is
// multus: that is the delegating configuration, not the network behind it). It returns nil, nil when
// dir does not exist or holds no configuration. A first file that cannot be used is an error naming
// it rather than a reason to look further: the runtime would not look further either.
func FindClusterCNIConfig(dir string) (*ClusterCNIConfig, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CNI configuration directory: %w", err)
	}
	// os.ReadDir sorts by name already; the sort says that the order is part of the contract.
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		if e.IsDir() || e.Name() == multusSkipFile || !slices.Contains(cniConfExtensions, filepath.Ext(e.Name())) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read CNI configuration: %w", err)
		}
		conf, err := parseCNIConfig(data)
		if err != nil {
			return nil, fmt.Errorf("CNI configuration %s: %w", path, err)
		}
		if conf.multus {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(conf.name); len(msgs) > 0 {
			return nil, fmt.Errorf("CNI configuration %s: network name %q cannot name a SpiderMultusConfig: %s; set multus.multusCNI.defaultCniCRName instead",
				path, conf.name, strings.Join(msgs, "; "))
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			return nil, fmt.Errorf("CNI configuration %s: %w", path, err)
		}
		return &ClusterCNIConfig{File: path, Name: conf.name, Config: compact.String()}, nil
	}
	return nil, nil
}

type parsedCNIConfig struct {
	name   string
	multus bool
}

// parseCNIConfig reads the network name of a single-plugin configuration or a configuration list,
// and whether it is Multus's.
func parseCNIConfig(data []byte) (parsedCNIConfig, error) {
	var conf struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return parsedCNIConfig{}, fmt.Errorf("not a CNI configuration: %w", err)
	}
	if conf.Name == "" {
		return parsedCNIConfig{}, errors.New(`no network "name"`)
	}
	typ := conf.Type
	if len(conf.Plugins) > 0 {
		typ = conf.Plugins[0].Type
	}
	return parsedCNIConfig{name: conf.Name, multus: typ == "multus" || typ == "multus-shim"}, nil
}
