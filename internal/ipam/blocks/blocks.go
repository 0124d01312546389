// Package blocks is the pure planner of block-based IPAM (docs/design/ipam-blocks.md): how a pool's
// subnet is cut into aligned blocks, what a block is named, and where a node's next address comes
// from (one of its own blocks, a block it claims, or a block it borrows from), plus the split of a
// pool's records into blocks for the migration from today's format. It does no I/O.
package blocks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Block sizes, as the exponent of the number of addresses of a block.
const (
	DefaultBits = 5  // 32 addresses
	MinBits     = 2  // 4
	MaxBits     = 12 // 4,096
)

// Layout cuts a pool's subnet into aligned blocks of 2^Bits addresses. Alignment is in the subnet,
// not in the list of usable addresses, so changing a pool's ips never moves an address to another
// block.
type Layout struct {
	Subnet netip.Prefix
	Bits   int
}

// NewLayout returns the layout of subnet with blocks of 2^bits addresses. A subnet smaller than
// one block is one block.
func NewLayout(subnet netip.Prefix, bits int) (Layout, error) {
	if !subnet.IsValid() {
		return Layout{}, errors.New("invalid subnet")
	}
	if bits < MinBits || bits > MaxBits {
		return Layout{}, fmt.Errorf("block size 2^%d: must be 2^%d to 2^%d addresses", bits, MinBits, MaxBits)
	}
	subnet = subnet.Masked()
	if host := subnet.Addr().BitLen() - subnet.Bits(); bits > host {
		bits = host
	}
	return Layout{Subnet: subnet, Bits: bits}, nil
}

// BlockOf returns the block holding a, and false when a is outside the subnet.
func (l Layout) BlockOf(a netip.Addr) (netip.Prefix, bool) {
	if !l.Subnet.Contains(a) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()-l.Bits).Masked(), true
}

// Blocks yields, in address order, every block holding at least one address of usable. It is lazy:
// an IPv6 pool may span more blocks than fit in memory.
func (l Layout) Blocks(usable ip.Set) iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		var last netip.Prefix
		for _, r := range usable.Ranges() {
			a := r.First
			for {
				b, ok := l.BlockOf(a)
				if !ok {
					break // outside the subnet: the pool's validation refuses this, nothing to give
				}
				if b != last {
					if !yield(b) {
						return
					}
					last = b
				}
				end := ip.PrefixRange(b).Last
				if end.Compare(r.Last) >= 0 {
					break
				}
				a = end.Next()
			}
		}
	}
}

// Usable returns the addresses of usable inside block b.
func Usable(b netip.Prefix, usable ip.Set) ip.Set {
	in, err := ip.NewSet(usable.Version(), ip.PrefixRange(b))
	if err != nil {
		return ip.Set{}
	}
	return usable.Intersect(in)
}

// maxName is the longest object name the API server takes.
const maxName = 253

// Name is the deterministic object name of block b of pool poolName (UID poolUID): two agents
// claiming the same block create the same name, and the API server lets one win. The pool's UID
// keeps a recreated pool's blocks apart from its predecessor's.
func Name(poolName, poolUID string, b netip.Prefix) string {
	uid := strings.ReplaceAll(poolUID, "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	addr := strings.NewReplacer(".", "-", ":", "-").Replace(b.Addr().String())
	suffix := "." + uid + "." + addr
	if len(poolName)+len(suffix) > maxName {
		sum := sha256.Sum256([]byte(poolName))
		poolName = poolName[:maxName-len(suffix)-17] + "-" + hex.EncodeToString(sum[:8])
	}
	return poolName + suffix
}
