// Command coordinator is the coordinator CNI plugin. It holds wiring only; the plugin lives in
// internal/cni/coordinator.
package main

import (
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
	"github.com/spiderpool-go/spiderpool/internal/cni/coordinator"
)

// buildVersion is set at link time: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = "devel"

func main() {
	cnirun.Main(coordinator.Funcs(), coordinator.SupportedVersions(), "coordinator CNI plugin "+buildVersion)
}
