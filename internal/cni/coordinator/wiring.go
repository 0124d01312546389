package coordinator

import (
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// addPolicyRoutes is docs/design/behaviour.md#underlay-first-nic: the configured policyRoutes of the families the pod has,
// through nic, in table (0 = main).
func addPolicyRoutes(cfg *Config, nic netlink.Link, table int, hasV4, hasV6 bool) error {
	for _, r := range cfg.PolicyRoutes {
		if (r.GW.Is4() && !hasV4) || (r.GW.Is6() && !hasV6) {
			continue
		}
		if err := netlinkx.ReplaceRoute(netlinkx.Route{Dst: r.Dst, GW: r.GW, Link: nic, Table: table}); err != nil {
			return err
		}
	}
	return nil
}
