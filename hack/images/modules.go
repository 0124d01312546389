package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is a pinned Go module: its source in the module cache and its version.
type Module struct {
	Dir, Version string
}

// pinnedIn says which module under hack/tools pins each module the images take files from.
var pinnedIn = map[string]string{
	multusModule:     "multus",
	kubernetesModule: ".",
}

// module returns the pinned module path: from opts.Modules, else from `go mod download` in the
// module of hack/tools that pins it (which also fetches it into the cache if `make tools` has not).
func (opts Options) module(modPath string) (Module, error) {
	if m, ok := opts.Modules[modPath]; ok {
		return m, nil
	}
	sub, ok := pinnedIn[modPath]
	if !ok {
		return Module{}, fmt.Errorf("module %s: not pinned under hack/tools", modPath)
	}
	cmd := exec.Command("go", "mod", "download", "-json", modPath)
	cmd.Dir = filepath.Join(opts.ToolsDir, sub)
	out, runErr := cmd.Output()
	// On failure the JSON, when there is one, says why better than the exit status.
	var info struct{ Dir, Version, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Error != "" || info.Dir == "" {
		var ee *exec.ExitError
		msg := info.Error
		if msg == "" && errors.As(runErr, &ee) {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return Module{}, fmt.Errorf("module %s (go mod download in %s): %s", modPath, cmd.Dir, msg)
	}
	return Module{Dir: info.Dir, Version: info.Version}, nil
}
