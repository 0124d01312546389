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
