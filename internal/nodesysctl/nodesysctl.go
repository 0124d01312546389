// Package nodesysctl applies the kernel settings an underlay node needs, as the agent's init
// container `spiderpool-agent tune-sysctl` does when spiderpoolAgent.tuneSysctlConfig is on.
//
// The settings are network sysctls, so they apply to the network namespace of the process that
// writes them: the node's, since the agent's pod runs in the host network.
package nodesysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Setting is one sysctl and the value written to it.
type Setting struct {
	// Name is the dotted sysctl name, e.g. net.ipv4.conf.all.forwarding.
	Name string
	// Value is written as is.
	Value string
	// IPv4 and IPv6 say for which enabled family the setting is written.
	IPv4, IPv6 bool
	// Why is the reason, logged with the change.
	Why string
}

// Settings are what tune-sysctl writes, in order.
var Settings = []Setting{
	{Name: "net.ipv4.neigh.default.gc_thresh3", Value: "28160", IPv4: true,
		Why: "room in the ARP table for a node full of underlay pods each on a large subnet (110 pods x 256 neighbours); past it the kernel refuses new neighbours"},
	{Name: "net.ipv6.neigh.default.gc_thresh3", Value: "28160", IPv6: true,
		Why: "the same room in the IPv6 neighbour table"},
	{Name: "net.ipv4.conf.all.arp_notify", Value: "1", IPv4: true,
		Why: "send a gratuitous ARP when an address moves to a new interface, so peers update their caches"},
	{Name: "net.ipv4.conf.all.forwarding", Value: "1", IPv4: true,
		Why: "the coordinator routes between a pod's underlay and overlay interfaces through the host"},
	{Name: "net.ipv6.conf.all.forwarding", Value: "1", IPv6: true,
		Why: "the same for IPv6"},
	{Name: "net.ipv4.conf.all.rp_filter", Value: "0", IPv4: true, IPv6: true,
		Why: "replies of a multi-NIC pod may enter on another interface than the route back; strict reverse-path filtering drops them"},
}

// Result is what Apply did with one setting.
type Result struct {
	Setting
	// Old is the value before the write; empty when the sysctl does not exist.
	Old string
	// Missing is true when this kernel has no such sysctl; it is skipped.
	Missing bool
}

// Apply writes the settings for the enabled families under root (/proc/sys on a node). A sysctl
// the kernel does not have is skipped and reported as Missing; any other failure stops Apply
// with an error naming the sysctl.
func Apply(root string, ipv4, ipv6 bool) ([]Result, error) {
	var out []Result
	for _, s := range Settings {
		if !(ipv4 && s.IPv4) && !(ipv6 && s.IPv6) {
			continue
		}
		path := filepath.Join(root, strings.ReplaceAll(s.Name, ".", "/"))
		old, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			out = append(out, Result{Setting: s, Missing: true})
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read sysctl %s: %w", s.Name, err)
		}
		r := Result{Setting: s, Old: strings.TrimSpace(string(old))}
		if r.Old != s.Value {
			if err := os.WriteFile(path, []byte(s.Value), 0); err != nil {
				return out, fmt.Errorf("set sysctl %s=%s: %w", s.Name, s.Value, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
