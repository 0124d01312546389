package v2beta1

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The allocation records of pools and subnets are JSON objects serialised into a string field, as
// upstream stores them. These helpers are the only place that encodes or decodes them, so the wire
// format (and the counters that must agree with it) cannot drift between the agent, the controller
// and the webhooks.
//
// Encoding is deterministic: encoding/json writes map keys in sorted order and struct fields in
// declaration order, so equal content always gives the same string and an unchanged status never
// produces a spurious update.

// Allocations decodes status.allocatedIPs. A nil or empty string means no allocation; the result is
// then an empty, non-nil map that the caller may add records to.
func (s *IPPoolStatus) Allocations() (PoolIPAllocations, error) {
	out := PoolIPAllocations{}
	if s.AllocatedIPs == nil || *s.AllocatedIPs == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(*s.AllocatedIPs), &out); err != nil {
		return nil, fmt.Errorf("decode status.allocatedIPs: %w", err)
	}
	if out == nil { // the JSON literal null
		out = PoolIPAllocations{}
	}
	return out, nil
}

// SetAllocations encodes a into status.allocatedIPs and sets allocatedIPCount to len(a), so the
// printer column never disagrees with the records. An empty map clears the field (nil), which is
// how upstream represents "nothing allocated". On error the status is left unchanged.
func (s *IPPoolStatus) SetAllocations(a PoolIPAllocations) error {
	count := int64(len(a))
	if len(a) == 0 {
		s.AllocatedIPs = nil
		s.AllocatedIPCount = &count
		return nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode status.allocatedIPs: %w", err)
	}
	s.AllocatedIPs = new(string(b))
	s.AllocatedIPCount = &count
	return nil
}

// ControlledPools decodes status.controlledIPPools. A nil or empty string means the subnet controls
// no pool; the result is then an empty, non-nil map.
func (s *SubnetStatus) ControlledPools() (PoolIPPreAllocations, error) {
	out := PoolIPPreAllocations{}
	if s.ControlledIPPools == nil || *s.ControlledIPPools == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(*s.ControlledIPPools), &out); err != nil {
		return nil, fmt.Errorf("decode status.controlledIPPools: %w", err)
	}
	if out == nil {
		out = PoolIPPreAllocations{}
	}
	return out, nil
}

// SetControlledPools encodes p into status.controlledIPPools and sets allocatedIPCount to the number
// of distinct addresses handed to the pools (counted on the union, so a pool listed twice or two
// pools sharing an address never inflate the count). An empty map clears the field. Every IPs entry
// must be an address or range and all of one family; otherwise an error is returned and the status
// is left unchanged.
func (s *SubnetStatus) SetControlledPools(p PoolIPPreAllocations) error {
	var all ip.Set
	// Sorted so that a family mismatch is always reported against the same pool.
	for _, name := range slices.Sorted(maps.Keys(p)) {
		set, err := ip.ParseSet(p[name].IPs, all.Version())
		if err != nil {
			return fmt.Errorf("IPs of pool %q: %w", name, err)
		}
		if all, err = all.Union(set); err != nil {
			return fmt.Errorf("IPs of pool %q: %w", name, err)
		}
	}
	count := all.Count()
	if len(p) == 0 {
		s.ControlledIPPools = nil
		s.AllocatedIPCount = &count
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode status.controlledIPPools: %w", err)
	}
	s.ControlledIPPools = new(string(b))
	s.AllocatedIPCount = &count
	return nil
}
