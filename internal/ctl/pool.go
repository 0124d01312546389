package ctl

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

func newPoolCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "Inspect SpiderIPPools"}
	cmd.AddCommand(newPoolUsageCommand(g))
	return cmd
}

// PoolUsage is one line of pool usage. Counts come from the records, not from the status
// counters, which doctor compares with them.
type PoolUsage struct {
	Name      string      `json:"name"`
	Version   int64       `json:"ipVersion"`
	Subnet    string      `json:"subnet"`
	Total     int64       `json:"total"`
	Allocated int64       `json:"allocated"`
	Free      int64       `json:"free"`
	Disabled  bool        `json:"disabled,omitempty"`
	Nodes     []NodeUsage `json:"nodes,omitempty"` // for pools with spec.nodeName
}

// NodeUsage counts a node-bound pool's records per node of their pods.
type NodeUsage struct {
	Node      string `json:"node"`
	Allocated int64  `json:"allocated"`
}

// unknownNode is where records go whose pod's node no endpoint or pod tells.
const unknownNode = "(unknown)"

// poolUsage computes the usage of the pools of s named in names (all when empty).
func poolUsage(s *Snapshot, names []string) ([]PoolUsage, error) {
	x := newIndex(s)
	for _, n := range names {
		if x.pools[n] == nil {
			return nil, fmt.Errorf("SpiderIPPool %q not found", n)
		}
	}
	var out []PoolUsage
	for _, name := range sortedKeys(x.pools) {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		p := x.pools[name]
		set, err := usable(p)
		if err != nil {
			return nil, err
		}
		recs := x.poolOf[name]
		used := make([]netip.Addr, len(recs))
		for i, r := range recs {
			used[i] = r.Addr
		}
		ip.SortAddrs(used)
		subnet, err := p.Spec.SubnetPrefix() // parsed by usable; shown canonical whatever the spelling stored
		if err != nil {
			return nil, fmt.Errorf("SpiderIPPool %s: %w", name, err)
		}
		u := PoolUsage{Name: name, Version: ptr.Deref(p.Spec.IPVersion, int64(set.Version())), Subnet: ip.FormatPrefix(subnet),
			Total: set.Count(), Allocated: int64(len(recs)), Free: set.FreeCount(used), Disabled: ptr.Deref(p.Spec.Disable, false)}
		if len(p.Spec.NodeName) > 0 {
			per := map[string]int64{}
			for _, n := range p.Spec.NodeName {
				per[n] = 0
			}
			for _, r := range recs {
				per[x.nodeOf(r)]++
			}
			for _, n := range sortedKeys(per) {
				u.Nodes = append(u.Nodes, NodeUsage{Node: n, Allocated: per[n]})
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// nodeOf is the node of the pod holding r: its endpoint's, else its pod's.
func (x *index) nodeOf(r Record) string {
	if ep := x.endpoints[r.Pod]; ep != nil && ep.Status.Current.UID == r.PodUID && ep.Status.Current.Node != "" {
		return ep.Status.Current.Node
	}
	if p := x.pods[r.Pod]; p != nil && string(p.UID) == r.PodUID && p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	return unknownNode
}

var usageHeader = []string{"NAME", "VERSION", "SUBNET", "TOTAL", "ALLOCATED", "FREE", "DISABLED", "NODE"}

// usageRows renders one row per pool, then one per node of a node-bound pool (its node's records
// under ALLOCATED).
func usageRows(us []PoolUsage) [][]string {
	var rows [][]string
	for _, u := range us {
		var nodes []string
		for _, n := range u.Nodes {
			nodes = append(nodes, n.Node)
		}
		rows = append(rows, []string{u.Name, strconv.FormatInt(u.Version, 10), u.Subnet, strconv.FormatInt(u.Total, 10),
			strconv.FormatInt(u.Allocated, 10), strconv.FormatInt(u.Free, 10), strconv.FormatBool(u.Disabled), strings.Join(nodes, ",")})
		for _, n := range u.Nodes {
			rows = append(rows, []string{"  " + u.Name, "", "", "", strconv.FormatInt(n.Allocated, 10), "", "", n.Node})
		}
	}
	return rows
}

func newPoolUsageCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "usage [POOL...]",
		Short: "Total, allocated and free IPs per pool (and per node for pools with spec.nodeName)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			c, err := g.kube()
			if err != nil {
				return err
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			snap, err := loadSnapshot(ctx, c, false)
			if err != nil {
				return err
			}
			// Pods are read only for records whose endpoint does not tell their node.
			if slices.ContainsFunc(snap.Pools, func(p v2beta1.SpiderIPPool) bool { return len(p.Spec.NodeName) > 0 }) {
				var pods corev1.PodList
				if err := c.List(ctx, &pods); err != nil {
					return fmt.Errorf("list pods: %w", err)
				}
				snap.Pods = pods.Items
			}
			us, err := poolUsage(snap, args)
			if err != nil {
				return err
			}
			if output == formatJSON {
				if us == nil {
					us = []PoolUsage{}
				}
				return writeJSON(cmd.OutOrStdout(), us)
			}
			return writeTable(cmd.OutOrStdout(), usageHeader, usageRows(us))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", formatTable, "table or json")
	return cmd
}
