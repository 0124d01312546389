package cniplugins

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/spiderpool-go/spiderpool/internal/cniinstall"
)

// VLAN is the one reference plugin behind a switch of its own (INSTALL_VLAN_PLUGIN), as in the
// chart's plugins.installVlanCNI.
const VLAN = "vlan"

// Reference returns the reference plugins the image carries when they were built: hack/images
// takes each of them that its plugins directory holds.
func Reference() []string {
	return []string{"bandwidth", "bridge", "dhcp", "dummy", "firewall", "host-device", "host-local",
		"ipvlan", "loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tap", "tuning", VLAN, "vrf"}
}

// unshipped maps the switches of plugins the image does not carry to the plugin each names. Not
// shipped: ovs-cni needs Open vSwitch on the node, the RDMA, SR-IOV and InfiniBand plugins need
// their hardware and device plugins; none is part of Spiderpool-Go.
var unshipped = []struct{ env, plugin string }{
	{"INSTALL_OVS_PLUGIN", "ovs"},
	{"INSTALL_RDMA_PLUGIN", "rdma"},
	{"INSTALL_SRIOV_PLUGIN", "sriov"},
	{"INSTALL_IB_SRIOV_PLUGIN", "ib-sriov"},
	{"INSTALL_IPOIB_PLUGIN", "ipoib"},
}

// Switches are the INSTALL_* environment switches of the install-plugins init container.
type Switches struct {
	// CNI is INSTALL_CNI_PLUGINS: the reference plugins other than vlan.
	CNI bool
	// VLAN is INSTALL_VLAN_PLUGIN.
	VLAN bool
	// Unshipped are the switches that ask for a plugin the image does not carry, each as
	// "INSTALL_X_PLUGIN (plugin)", in a fixed order.
	Unshipped []string
}

// SwitchesFromEnv reads the switches with getenv. CNI and VLAN default to true when unset, since
// installing them is all the image is for; the others default to false. A value strconv.ParseBool
// does not read is an error naming the variable.
func SwitchesFromEnv(getenv func(string) string) (Switches, error) {
	flag := func(env string, def bool) (bool, error) {
		v := getenv(env)
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q: want true or false", env, v)
		}
		return b, nil
	}
	var (
		s   Switches
		err error
	)
	if s.CNI, err = flag("INSTALL_CNI_PLUGINS", true); err != nil {
		return Switches{}, err
	}
	if s.VLAN, err = flag("INSTALL_VLAN_PLUGIN", true); err != nil {
		return Switches{}, err
	}
	for _, u := range unshipped {
		on, err := flag(u.env, false)
		if err != nil {
			return Switches{}, err
		}
		if on {
			s.Unshipped = append(s.Unshipped, fmt.Sprintf("%s (%s)", u.env, u.plugin))
		}
	}
	return s, nil
}

// Select returns the names of available that s installs, sorted.
func (s Switches) Select(available []string) []string {
	var out []string
	for _, n := range available {
		if (n == VLAN && s.VLAN) || (n != VLAN && s.CNI) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Install copies the plugins of from that s selects into to, each atomically (cniinstall), and
// returns their names; none selected is no error. Plugins of the node that s leaves out are left
// alone, never removed.
func Install(from, to string, s Switches) ([]string, error) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", from, err)
	}
	var available []string
	for _, e := range entries {
		available = append(available, e.Name())
	}
	want := s.Select(available)
	if len(want) == 0 {
		return nil, nil
	}
	src := from
	if len(want) < len(available) {
		// cniinstall copies a whole directory: give it one holding only the chosen plugins, as
		// symbolic links it follows, so that the copying stays in one implementation.
		staging, err := os.MkdirTemp("", "cni-plugins-")
		if err != nil {
			return nil, fmt.Errorf("stage the chosen plugins: %w", err)
		}
		defer os.RemoveAll(staging)
		for _, n := range want {
			abs, err := filepath.Abs(filepath.Join(from, n))
			if err != nil {
				return nil, err
			}
			if err := os.Symlink(abs, filepath.Join(staging, n)); err != nil {
				return nil, fmt.Errorf("stage the chosen plugins: %w", err)
			}
		}
		src = staging
	}
	return cniinstall.Install(src, to)
}
