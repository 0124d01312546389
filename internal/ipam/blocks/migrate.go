package blocks

import (
	"fmt"
	"net/netip"
)

// Split groups the addresses of a pool's records (today's status.allocatedIPs) by block, for the
// migration to blocks: every record lands in the one block whose range holds its address, none is
// dropped or moved. An address outside the subnet is an error naming it: such a record cannot
// have been allocated from this pool's subnet, and converting it would lose it.
func Split[R any](l Layout, records map[netip.Addr]R) (map[netip.Prefix]map[netip.Addr]R, error) {
	out := map[netip.Prefix]map[netip.Addr]R{}
	for a, r := range records {
		b, ok := l.BlockOf(a)
		if !ok {
			return nil, fmt.Errorf("record of %s is outside subnet %s", a, l.Subnet)
		}
		if out[b] == nil {
			out[b] = map[netip.Addr]R{}
		}
		out[b][a] = r
	}
	return out, nil
}

// Mirror merges the records of a pool's blocks into the pool's own view (the controller's mirror
// in status.allocatedIPs, docs/design/ipam-blocks.md#the-pool-status-mirror): every record once,
// keyed by address. It returns the merged records, their count, and false with no records when
// there are more than max, so that the mirror never grows past what one object can store; the
// count is exact either way. A record found in two blocks is reported as an error naming the
// address: blocks never overlap, so it means a block holds an address outside its range.
func Mirror[R any](blocks map[netip.Prefix]map[netip.Addr]R, max int) (map[netip.Addr]R, int, bool, error) {
	out := map[netip.Addr]R{}
	n := 0
	for b, recs := range blocks {
		for a, r := range recs {
			if !b.Contains(a) {
				return nil, 0, false, fmt.Errorf("block %s records %s, outside its range", b, a)
			}
			if _, dup := out[a]; dup {
				return nil, 0, false, fmt.Errorf("address %s is recorded in two blocks", a)
			}
			out[a] = r
			n++
		}
	}
	if n > max {
		return nil, n, false, nil
	}
	return out, n, true, nil
}
