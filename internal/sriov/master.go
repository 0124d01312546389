package sriov

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// Master is a host interface and the addresses it carries.
type Master struct {
	Name  string
	Addrs []netip.Prefix
}

// Sysfs finds masters through the sysfs of the host. The sriov plugin has moved the VF into the
// pod and named it after the pod's interface before it calls IPAM. Three steps:
//
//  1. in the pod's namespace, the VF's PCI address, from the ethtool driver-info ioctl (sysfs
//     shows the links of the namespace that mounted it, the host's, not the pod's);
//  2. in sysfs, bus/pci/devices/<VF>/physfn links to the PF's PCI device, whose net/ directory
//     names the PF's link;
//  3. in the calling thread's namespace, the host's, the addresses of that link.
type Sysfs struct {
	// Root is where sysfs is mounted; "" means /sys.
	Root string

	// busAddress, when set, replaces step 1; tests use it, since no kernel without SR-IOV
	// hardware has a link with a PCI address.
	busAddress func(netns, ifName string) (string, error)
}

// Master returns the master of interface ifName of the pod whose network namespace is at netns.
// The error says which step failed; it names neither the caller's option nor the interface's
// role, which the caller adds.
func (s Sysfs) Master(netns, ifName string) (*Master, error) {
	find := s.busAddress
	if find == nil {
		find = vfBusAddress
	}
	vf, err := find(netns, ifName)
	if err != nil {
		return nil, err
	}
	pf, err := s.pfLink(vf)
	if err != nil {
		return nil, fmt.Errorf("interface %s (PCI %s): %w", ifName, vf, err)
	}
	l, err := netlinkx.LinkByName(pf)
	if err != nil {
		return nil, fmt.Errorf("PF %s of interface %s (PCI %s) on the host: %w", pf, ifName, vf, err)
	}
	addrs, err := netlinkx.Addrs(l, netlinkx.FamilyAll)
	if err != nil {
		return nil, fmt.Errorf("PF %s of interface %s on the host: %w", pf, ifName, err)
	}
	return &Master{Name: pf, Addrs: addrs}, nil
}

// vfBusAddress returns the PCI address of link ifName in the namespace at netns.
func vfBusAddress(netns, ifName string) (string, error) {
	var driver, bus string
	err := netlinkx.WithNetNSPath(netns, func(ns.NetNS) error {
		var err error
		driver, bus, err = netlinkx.DriverInfo(ifName)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("interface %s in %s: %w", ifName, netns, err)
	}
	if bus == "" {
		return "", fmt.Errorf("interface %s in %s (driver %q) is not a PCI device, so not an SR-IOV VF", ifName, netns, driver)
	}
	return bus, nil
}

// pfLink returns the link name of the PF of the VF at PCI address vf.
func (s Sysfs) pfLink(vf string) (string, error) {
	root := s.Root
	if root == "" {
		root = "/sys"
	}
	devices := filepath.Join(root, "bus", "pci", "devices")
	// The address comes from the kernel; still, it must not walk out of the devices directory.
	if vf == "" || vf == "." || vf == ".." || filepath.Base(vf) != vf {
		return "", fmt.Errorf("invalid PCI address %q", vf)
	}
	if _, err := os.Stat(filepath.Join(devices, vf)); err != nil {
		return "", fmt.Errorf("PCI device %s not found under %s: %w", vf, devices, err)
	}
	physfn := filepath.Join(devices, vf, "physfn")
	target, err := os.Readlink(physfn)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("PCI device %s is not an SR-IOV VF: it has no physfn", vf)
	}
	if err != nil {
		return "", fmt.Errorf("read the PF of VF %s: %w", vf, err)
	}
	pf := filepath.Base(target)
	entries, err := os.ReadDir(filepath.Join(devices, pf, "net"))
	if err != nil {
		return "", fmt.Errorf("links of PF %s: %w", pf, err)
	}
	// os.ReadDir sorts by name: a PF with several links (rare) is read as upstream reads it, by
	// its first one.
	if len(entries) == 0 {
		return "", fmt.Errorf("PF %s has no network link", pf)
	}
	return entries[0].Name(), nil
}
