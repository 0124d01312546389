// Command spiderpool is the spiderpool IPAM CNI plugin. It holds wiring only; the plugin lives in
// internal/cni/spiderpool.
package main

import (
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
	"github.com/spiderpool-go/spiderpool/internal/cni/spiderpool"
)

// buildVersion is set at link time: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = "devel"

func main() {
	cnirun.Main(spiderpool.Funcs(), spiderpool.SupportedVersions(), "spiderpool IPAM plugin "+buildVersion)
}
