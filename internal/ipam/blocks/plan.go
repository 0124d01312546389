package blocks

import (
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Claimed is what the planner knows of one claimed block: its range, its node (its affinity; ""
// for a block nobody allocates from without asking, as a migrated block of a pod that is gone)
// and the addresses its records hold, sorted.
type Claimed struct {
	Prefix netip.Prefix
	Node   string
	Used   []netip.Addr
	// Full marks a block to treat as having no free address whatever Used says: a block known
	// only by name, or one that has just failed to serve.
	Full bool
}

// Pool is one pool as the planner sees it: its layout, its usable addresses (ips minus
// excludeIPs minus reserved) and its claimed blocks.
type Pool struct {
	Layout  Layout
	Usable  ip.Set
	Claimed map[netip.Prefix]*Claimed
}

// Step is where an address comes from.
type Step int

const (
	// Exhausted: no usable address is free anywhere in the pool.
	Exhausted Step = iota
	// FromOwn: a block the node has claimed has a free address.
	FromOwn
	// Claim: the node's blocks are full and Block is unclaimed: create it.
	Claim
	// Borrow: every block with usable addresses is claimed and the node's are full: add the record
	// to Block, another node's, by compare-and-swap.
	Borrow
)

func (s Step) String() string {
	return [...]string{"exhausted", "own block", "claim", "borrow"}[s]
}

// Plan is where node's next address comes from.
type Plan struct {
	Step  Step
	Block netip.Prefix
}

// free returns the number of usable addresses of c not held by its records.
func (p *Pool) free(c *Claimed) int64 {
	if c.Full {
		return 0
	}
	return Usable(c.Prefix, p.Usable).FreeCount(c.Used)
}

// Plan chooses where node's next address comes from:
//  1. the node's own block with the fewest free addresses but at least one (filling blocks before
//     starting new ones lets empty blocks be returned);
//  2. else the first unclaimed block with usable addresses, scanning from a per-node position, so
//     that nodes claiming at once spread over the pool instead of racing for one name;
//  3. else the claimed block of another node (or of none) with the most free addresses;
//  4. else Exhausted.
func (p *Pool) Plan(node string) Plan {
	var own, borrow *Claimed
	var ownFree, borrowFree int64
	for _, c := range p.sortedClaimed() {
		f := p.free(c)
		if f == 0 {
			continue
		}
		if c.Node == node {
			if own == nil || f < ownFree {
				own, ownFree = c, f
			}
		} else if borrow == nil || f > borrowFree {
			borrow, borrowFree = c, f
		}
	}
	if own != nil {
		return Plan{Step: FromOwn, Block: own.Prefix}
	}
	if b, ok := p.unclaimed(node); ok {
		return Plan{Step: Claim, Block: b}
	}
	if borrow != nil {
		return Plan{Step: Borrow, Block: borrow.Prefix}
	}
	return Plan{Step: Exhausted}
}

// sortedClaimed returns the claimed blocks in address order, so that ties are broken the same way
// on every call.
func (p *Pool) sortedClaimed() []*Claimed {
	out := make([]*Claimed, 0, len(p.Claimed))
	for _, c := range p.Claimed {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Claimed) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// maxScan bounds the blocks unclaimed looks at: beyond it a pool is treated as having no
// unclaimed block, which only means borrowing. A pool of 65,536 addresses has 2,048 blocks of 32.
const maxScan = 1 << 16

// unclaimed returns an unclaimed block with usable addresses: the first at or after node's
// starting position, wrapping around.
func (p *Pool) unclaimed(node string) (netip.Prefix, bool) {
	var cands []netip.Prefix
	for b := range p.Layout.Blocks(p.Usable) {
		if len(cands) == maxScan {
			break
		}
		if _, taken := p.Claimed[b]; !taken {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return netip.Prefix{}, false
	}
	h := fnv.New64a()
	h.Write([]byte(node))
	return cands[h.Sum64()%uint64(len(cands))], true
}

// Allocate returns a free usable address of claimed block b, starting the search at offset, or
// false when it has none.
func (p *Pool) Allocate(b netip.Prefix, offset uint64) (netip.Addr, bool) {
	c, ok := p.Claimed[b]
	if !ok || c.Full {
		return netip.Addr{}, false
	}
	return Usable(b, p.Usable).FirstFree(c.Used, offset)
}
