package cniplugins

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSwitchesFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Switches
		wantErr bool
	}{
		{name: "unset installs the reference plugins", want: Switches{CNI: true, VLAN: true}},
		{
			name: "the chart's defaults",
			env: map[string]string{"INSTALL_CNI_PLUGINS": "true", "INSTALL_OVS_PLUGIN": "true", "INSTALL_RDMA_PLUGIN": "true",
				"INSTALL_SRIOV_PLUGIN": "true", "INSTALL_IB_SRIOV_PLUGIN": "true", "INSTALL_IPOIB_PLUGIN": "true", "INSTALL_VLAN_PLUGIN": "true"},
			want: Switches{CNI: true, VLAN: true, Unshipped: []string{"INSTALL_OVS_PLUGIN (ovs)", "INSTALL_RDMA_PLUGIN (rdma)",
				"INSTALL_SRIOV_PLUGIN (sriov)", "INSTALL_IB_SRIOV_PLUGIN (ib-sriov)", "INSTALL_IPOIB_PLUGIN (ipoib)"}},
		},
		{
			name: "vlan only",
			env:  map[string]string{"INSTALL_CNI_PLUGINS": "false", "INSTALL_VLAN_PLUGIN": "1", "INSTALL_OVS_PLUGIN": "false"},
			want: Switches{VLAN: true},
		},
		{name: "not a boolean", env: map[string]string{"INSTALL_VLAN_PLUGIN": "yes"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SwitchesFromEnv(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("switches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInstall(t *testing.T) {
	from := t.TempDir()
	for _, n := range []string{"macvlan", "ipvlan", VLAN} {
		if err := os.WriteFile(filepath.Join(from, n), []byte("plugin "+n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		switches Switches
		want     []string
	}{
		{name: "all", switches: Switches{CNI: true, VLAN: true}, want: []string{"ipvlan", "macvlan", "vlan"}},
		{name: "without vlan", switches: Switches{CNI: true}, want: []string{"ipvlan", "macvlan"}},
		{name: "vlan only", switches: Switches{VLAN: true}, want: []string{"vlan"}},
		{name: "nothing", switches: Switches{}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "bin")
			// A plugin of the node that the switches leave out stays.
			if err := os.MkdirAll(to, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, VLAN), []byte("the node's"), 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := Install(from, to, tc.switches)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("installed (-want +got):\n%s", diff)
			}
			entries, err := os.ReadDir(to)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(to, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				want := "plugin " + e.Name()
				if !slices.Contains(tc.want, e.Name()) {
					want = "the node's"
				}
				if string(b) != want {
					t.Errorf("%s holds %q, want %q", e.Name(), b, want)
				}
				if e.Type()&os.ModeSymlink != 0 {
					t.Errorf("%s is a symbolic link, want a copy", e.Name())
				}
			}
		})
	}
	if _, err := Install(filepath.Join(from, "missing"), t.TempDir(), Switches{CNI: true}); err == nil {
		t.Error("a missing source directory is no error")
	}
}
