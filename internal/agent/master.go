package agent

import (
	"fmt"
	"net/netip"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// This file serves the CNI configuration's match_master_subnet (SpiderMultusConfig
// sriov.ippools.matchMasterSubnet): the interface is served only by pools whose subnet holds an
// address of its master on the host (docs/design/behaviour.md#pool-filters). The rule itself is the IPAM core's
// (ipam.Filter). The master comes with the request: the spiderpool plugin finds it
// (internal/sriov), because the lookup enters the pod's network namespace, which the plugin,
// run as root on the host by the container runtime, can do and this agent, run without
// capabilities, cannot.

// requestMaster is the hook of an ADD: the master the request carries when it sets
// matchMasterSubnet, nil otherwise (a master sent without matchMasterSubnet is ignored). A
// malformed master fails the ADD before anything is allocated.
func requestMaster(args *v1.IpamAddArgs) (*ipam.Master, error) {
	if !args.MatchMasterSubnet {
		return nil, nil
	}
	if args.Master == nil {
		// args.Validate refuses this first; the check keeps the function safe on its own.
		return nil, &reasonError{ErrInvalidRequest, "matchMasterSubnet is true but the request carries no master"}
	}
	m := &ipam.Master{Name: args.Master.Name}
	for i, a := range args.Master.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, &reasonError{ErrInvalidRequest, fmt.Sprintf("master.addresses[%d]: %v", i, err)}
		}
		m.Addrs = append(m.Addrs, p)
	}
	return m, nil
}
