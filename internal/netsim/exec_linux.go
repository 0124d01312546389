package netsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// NodeExec runs CNI plugins as if on a node with a filesystem of its own: each plugin process gets
// a private mount namespace in which Binds are bind-mounted (target → source) before the plugin
// starts. Nodes made of network namespaces share the host's files; with this, the agent socket
// at /run/spidernet of each node is that node's agent, as on a real node. Plugins that exec other
// plugins (Multus) pass the view on to them.
type NodeExec struct {
	// Binds maps a path the plugins see to the directory that appears there.
	Binds map[string]string
}

var _ invoke.Exec = (*NodeExec)(nil)

// ExecPlugin runs the plugin under sh in a new mount namespace, after the bind mounts.
func (e *NodeExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	targets := make([]string, 0, len(e.Binds))
	for t := range e.Binds {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	// The paths travel as positional parameters ("source target" pairs), so that the shell never
	// parses one; each mount consumes its pair.
	args := []string{"-c", "", "netsim-node"}
	var script strings.Builder
	for _, t := range targets {
		if err := os.MkdirAll(e.Binds[t], 0o755); err != nil {
			return nil, fmt.Errorf("node directory %s: %w", e.Binds[t], err)
		}
		script.WriteString(`mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && `)
		args = append(args, e.Binds[t], t)
	}
	script.WriteString(`exec "$PLUGIN"`)
	args[1] = script.String()
	stdout, stderr := &bytes.Buffer{}, &bytes.Buffer{}
	c := exec.CommandContext(ctx, "/bin/sh", args...)
	c.Env = append(append([]string(nil), environ...), "PLUGIN="+pluginPath)
	c.Stdin = bytes.NewReader(stdinData)
	c.Stdout, c.Stderr = stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if err := c.Run(); err != nil {
		var cniErr types.Error
		if json.Unmarshal(stdout.Bytes(), &cniErr) == nil && cniErr.Code != 0 {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("plugin %s: %w: %s%s", pluginPath, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// FindInPath looks the plugin up in paths.
func (e *NodeExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode parses a plugin's VERSION answer.
func (e *NodeExec) Decode(b []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(b)
}
