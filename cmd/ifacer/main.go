// Command ifacer is the ifacer CNI plugin. It holds wiring only; the plugin lives in
// internal/cni/ifacer.
package main

import (
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
	"github.com/spiderpool-go/spiderpool/internal/cni/ifacer"
)

// buildVersion is set at link time: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = "devel"

func main() {
	cnirun.Main(ifacer.Funcs(), ifacer.SupportedVersions(), "ifacer CNI plugin "+buildVersion)
}
