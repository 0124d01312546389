package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The chart's defaults ask for plugins the image does not ship: the run succeeds, installs what
// it has and names each missing one.
func TestRunWithTheChartsDefaults(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	for _, n := range []string{"macvlan", "vlan"} {
		if err := os.WriteFile(filepath.Join(from, n), []byte(n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"INSTALL_CNI_PLUGINS": "true", "INSTALL_OVS_PLUGIN": "true", "INSTALL_RDMA_PLUGIN": "true",
		"INSTALL_SRIOV_PLUGIN": "true", "INSTALL_IB_SRIOV_PLUGIN": "true", "INSTALL_IPOIB_PLUGIN": "true", "INSTALL_VLAN_PLUGIN": "false"}
	var out bytes.Buffer
	if err := run([]string{"-from", from, "-to", to}, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"INSTALL_OVS_PLUGIN (ovs) is set, but this image does not ship that plugin",
		"INSTALL_IPOIB_PLUGIN (ipoib)", "installed macvlan into " + to} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(to, "vlan")); !os.IsNotExist(err) {
		t.Errorf("vlan installed with INSTALL_VLAN_PLUGIN=false (%v)", err)
	}

	if err := run([]string{"-from", from, "-to", to}, func(k string) string { return map[string]string{"INSTALL_CNI_PLUGINS": "maybe"}[k] }, &out); err == nil || !strings.Contains(err.Error(), "INSTALL_CNI_PLUGINS") {
		t.Errorf("error = %v, want one naming INSTALL_CNI_PLUGINS", err)
	}
}
