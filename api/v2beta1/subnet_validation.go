package v2beta1

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// ValidateSpiderSubnet applies the rules of docs/design/behaviour.md#pools-and-subnets to a subnet being created: the same CIDR,
// range, gateway and route rules as pools, and a decodable status.controlledIPPools.
func ValidateSpiderSubnet(subnet *SpiderSubnet, enableIPv4, enableIPv6 bool) field.ErrorList {
	errs, _ := validateSubnet(subnet, enableIPv4, enableIPv6)
	return errs
}

func validateSubnet(subnet *SpiderSubnet, enableIPv4, enableIPv6 bool) (field.ErrorList, checkedSpec) {
	c, errs := validateAddrSpec(subnetAddrSpec(&subnet.Spec), enableIPv4, enableIPv6)
	if subnet.Status.ControlledIPPools != nil {
		if _, err := subnet.Status.ControlledPools(); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("status", "controlledIPPools"), *subnet.Status.ControlledIPPools,
				`must be a JSON object {"<pool>":{"ips":["<range>",...]}}: `+err.Error()))
		}
	}
	return errs, c
}

// ValidateSpiderSubnetUpdate validates newSubnet and the rules of an update: ipVersion and subnet are
// immutable, and addresses handed to a controlled pool (oldSubnet's status.controlledIPPools) may not
// leave the subnet's usable set.
func ValidateSpiderSubnetUpdate(newSubnet, oldSubnet *SpiderSubnet, enableIPv4, enableIPv6 bool) field.ErrorList {
	oldVersion := oldSubnet.Spec.Version()
	errs := validateImmutable(newSubnet.Spec.IPVersion, oldSubnet.Spec.IPVersion, newSubnet.Spec.Subnet, oldSubnet.Spec.Subnet)
	localErrs, c := validateSubnet(newSubnet, enableIPv4 || oldVersion == 4, enableIPv6 || oldVersion == 6)
	errs = append(errs, localErrs...)
	if len(errs) != 0 || !c.entriesOK {
		return errs
	}

	pools, err := oldSubnet.Status.ControlledPools()
	if err != nil {
		return append(errs, field.InternalError(field.NewPath("status", "controlledIPPools"), err))
	}
	oldUsable, oldOK := ip.Set{}, false
	if ov, _, u, ok := parseSpecSets(oldSubnet.Spec.IPVersion, oldSubnet.Spec.Subnet, oldSubnet.Spec.IPs, oldSubnet.Spec.ExcludeIPs); ok && ov == c.version {
		oldUsable, oldOK = u, true
	}
	newUsable := c.usable()
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		held, err := ip.ParseSet(pools[name].IPs, c.version)
		if err != nil {
			continue
		}
		if oldOK {
			held = held.Intersect(oldUsable)
		}
		gone := held.Subtract(newUsable)
		if gone.IsEmpty() {
			continue
		}
		if excluded := gone.Intersect(c.ips); !excluded.IsEmpty() {
			errs = append(errs, field.Forbidden(excludeIPsPath, fmt.Sprintf(
				"IPs %s are used by SpiderIPPool %q and cannot be added to spec.excludeIPs", excluded, name)))
		}
		if dropped := gone.Subtract(c.ips); !dropped.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
				"IPs %s are used by SpiderIPPool %q and cannot be removed from spec.ips", dropped, name)))
		}
	}
	return errs
}

// ValidateSubnetOverlap checks that subnet does not overlap (or equal) the subnet of another
// SpiderSubnet of the same family: each CIDR is controlled by at most one SpiderSubnet. Entries with
// subnet's name and entries whose spec does not parse are ignored.
func ValidateSubnetOverlap(subnet *SpiderSubnet, others []SpiderSubnet) field.ErrorList {
	version, prefix, _, ok := parseSpecSets(subnet.Spec.IPVersion, subnet.Spec.Subnet, nil, nil)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for i := range others {
		o := &others[i]
		if o.Name == subnet.Name {
			continue
		}
		ov, op, _, ok := parseSpecSets(o.Spec.IPVersion, o.Spec.Subnet, nil, nil)
		if ok && ov == version && op.Overlaps(prefix) {
			errs = append(errs, field.Invalid(subnetPath, subnet.Spec.Subnet, fmt.Sprintf(
				"overlaps with spec.subnet %s of SpiderSubnet %q", o.Spec.Subnet, o.Name)))
		}
	}
	return errs
}

// ValidateSubnetPools checks a SpiderSubnet being created against the existing pools: a pool whose
// subnet overlaps but differs would escape the subnet's control, and a pool with the same subnet
// must only use addresses the SpiderSubnet holds (the subnet adopts it).
func ValidateSubnetPools(subnet *SpiderSubnet, pools []SpiderIPPool) field.ErrorList {
	version, prefix, usable, ok := parseSpecSets(subnet.Spec.IPVersion, subnet.Spec.Subnet, subnet.Spec.IPs, subnet.Spec.ExcludeIPs)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for i := range pools {
		pl := &pools[i]
		pv, pp, pusable, ok := parseSpecSets(pl.Spec.IPVersion, pl.Spec.Subnet, pl.Spec.IPs, pl.Spec.ExcludeIPs)
		if !ok || pv != version {
			continue
		}
		switch {
		case pp == prefix:
			if outside := pusable.Subtract(usable); !outside.IsEmpty() {
				errs = append(errs, field.Invalid(ipsPath, subnet.Spec.IPs, fmt.Sprintf(
					"SpiderIPPool %q uses IPs %s that are not usable IPs of this SpiderSubnet", pl.Name, outside)))
			}
		case pp.Overlaps(prefix):
			errs = append(errs, field.Invalid(subnetPath, subnet.Spec.Subnet, fmt.Sprintf(
				"overlaps with spec.subnet %s of SpiderIPPool %q", pl.Spec.Subnet, pl.Name)))
		}
	}
	return errs
}
