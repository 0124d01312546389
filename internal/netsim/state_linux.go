package netsim

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// counters matches iptables-save's packet and byte counters, which change with any traffic.
var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// HostState is what a CNI plugin may change in a node's namespace and must put back on DEL:
// policy rules, every routing table, and the iptables rules of both families, as the tools print
// them (iptables-save without its timestamps and counters).
func HostState(n ns.NetNS) (string, error) {
	var b strings.Builder
	err := n.Do(func(ns.NetNS) error {
		for _, argv := range [][]string{
			{"ip", "-4", "rule"},
			{"ip", "-6", "rule"},
			{"ip", "-4", "route", "show", "table", "all"},
			{"ip", "-6", "route", "show", "table", "all"},
			{"ip", "-4", "neigh", "show", "nud", "permanent"},
			{"ip", "-6", "neigh", "show", "nud", "permanent"},
			{"iptables-save"},
			{"ip6tables-save"},
		} {
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
			}
			fmt.Fprintf(&b, "### %s\n", strings.Join(argv, " "))
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
					continue
				}
				b.WriteString(counters.ReplaceAllString(line, "[-]"))
				b.WriteByte('\n')
			}
		}
		return nil
	})
	return b.String(), err
}
