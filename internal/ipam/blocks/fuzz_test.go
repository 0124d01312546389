package blocks

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// model is the brute-force truth the planner is checked against: every address of the pool, and
// who holds each.
type model struct {
	usable []netip.Addr          // every usable address, ascending
	held   map[netip.Addr]string // address -> holder "node/uid"
}

func (m *model) free() []netip.Addr {
	var out []netip.Addr
	for _, a := range m.usable {
		if _, ok := m.held[a]; !ok {
			out = append(out, a)
		}
	}
	return out
}

// fuzzPool builds a small pool from b: an IPv4 /26 or IPv6 /122 subnet, blocks of 4 to 32
// addresses, and up to four usable ranges.
func fuzzPool(b []byte) (*Pool, *model, []byte) {
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	subnet := netip.MustParsePrefix("10.6.0.0/26")
	if next()%2 == 1 {
		subnet = netip.MustParsePrefix("fd00::/122")
	}
	l, err := NewLayout(subnet, MinBits+int(next()%4))
	if err != nil {
		panic(err)
	}
	base := subnet.Addr()
	var ranges []ip.Range
	for range 1 + int(next()%4) {
		first := nth(base, int(next()%64))
		last := nth(first, int(next()%24))
		if !subnet.Contains(last) {
			last = ip.PrefixRange(subnet).Last
		}
		ranges = append(ranges, ip.Range{First: first, Last: last})
	}
	usable, err := ip.NewSet(0, ranges...)
	if err != nil {
		panic(err)
	}
	m := &model{held: map[netip.Addr]string{}}
	for a := base; subnet.Contains(a); a = a.Next() {
		if usable.Contains(a) {
			m.usable = append(m.usable, a)
		}
	}
	return &Pool{Layout: l, Usable: usable, Claimed: map[netip.Prefix]*Claimed{}}, m, b
}

func nth(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

// check asserts that the blocks hold exactly the model's records, each in its own block's range,
// sorted and without duplicates.
func check(t *testing.T, p *Pool, m *model) {
	t.Helper()
	seen := 0
	for pfx, c := range p.Claimed {
		if c.Prefix != pfx {
			t.Fatalf("block %v filed under %v", c.Prefix, pfx)
		}
		if !slices.IsSortedFunc(c.Used, netip.Addr.Compare) || len(slices.Compact(slices.Clone(c.Used))) != len(c.Used) {
			t.Fatalf("block %v records %v: not sorted or duplicated", pfx, c.Used)
		}
		for _, a := range c.Used {
			if !pfx.Contains(a) {
				t.Fatalf("block %v records %s, outside its range", pfx, a)
			}
			if _, ok := m.held[a]; !ok {
				t.Fatalf("block %v records %s, which nobody holds", pfx, a)
			}
			seen++
		}
	}
	if seen != len(m.held) {
		t.Fatalf("blocks record %d addresses, the model holds %d", seen, len(m.held))
	}
	// The pool-status mirror merged from the blocks is the model, bounded or not.
	byBlock := map[netip.Prefix]map[netip.Addr]string{}
	for pfx, c := range p.Claimed {
		byBlock[pfx] = map[netip.Addr]string{}
		for _, a := range c.Used {
			byBlock[pfx][a] = m.held[a]
		}
	}
	merged, n, complete, err := Mirror(byBlock, len(m.held))
	if err != nil || n != len(m.held) || !complete || !maps.Equal(merged, m.held) {
		t.Fatalf("Mirror: %d records, count %d, complete %v, %v; want the model's %d", len(merged), n, complete, err, len(m.held))
	}
	if len(m.held) > 0 {
		if _, n, complete, _ := Mirror(byBlock, len(m.held)-1); complete || n != len(m.held) {
			t.Fatalf("Mirror past its bound: complete %v, count %d", complete, n)
		}
	}
}

// FuzzPlanner runs claims, allocations, borrows, releases, returned blocks and a migration of
// existing records through the planner, for three nodes, and checks each step against the model:
// an address is never given twice nor outside the usable set, Exhausted comes exactly when no
// usable address is free, a node allocates from its own blocks while they have room, claims only
// unclaimed blocks with usable addresses and borrows only when none is left, and the blocks always
// hold exactly the model's records.
func FuzzPlanner(f *testing.F) {
	f.Add([]byte{0, 3, 1, 0, 20, 1, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 3})
	f.Add([]byte{1, 0, 2, 5, 10, 30, 5, 9, 0, 1, 2, 0, 1, 2, 4, 4, 5, 6, 7, 8})
	f.Add([]byte{0, 0, 1, 0, 3, 4, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 3, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, m, b := fuzzPool(b)
		nodes := []string{"a", "b", "c"}

		// Migration: records of today's format, some on nodes, some on none.
		if len(b) > 0 {
			n := int(b[0] % 8)
			b = b[1:]
			recs := map[netip.Addr]string{}
			for i := 0; i < n && len(b) > 0; i++ {
				if len(m.usable) > 0 {
					recs[m.usable[int(b[0])%len(m.usable)]] = fmt.Sprintf("%s/m%d", [...]string{"a", "b", ""}[int(b[0])%3], i)
				}
				b = b[1:]
			}
			split, err := Split(p.Layout, recs)
			if err != nil {
				t.Fatal(err)
			}
			for blk, rs := range split {
				c := &Claimed{Prefix: blk}
				for a, holder := range rs {
					c.Used = append(c.Used, a)
					m.held[a] = holder
					c.Node = holder[:1]
					if holder[0] == '/' {
						c.Node = ""
					}
				}
				slices.SortFunc(c.Used, netip.Addr.Compare)
				p.Claimed[blk] = c
			}
			check(t, p, m)
		}

		uid := 0
		for len(b) >= 2 {
			op, arg := b[0], b[1]
			b = b[2:]
			node := nodes[int(arg)%len(nodes)]
			switch op % 4 {
			case 0, 1: // allocate
				plan := p.Plan(node)
				free := m.free()
				if plan.Step == Exhausted {
					if len(free) > 0 {
						t.Fatalf("Exhausted with %d free addresses", len(free))
					}
					continue
				}
				ownRoom, unclaimedRoom := false, false
				for blk := range p.Layout.Blocks(p.Usable) {
					c, taken := p.Claimed[blk]
					switch {
					case !taken:
						unclaimedRoom = true
					case c.Node == node && p.free(c) > 0:
						ownRoom = true
					}
				}
				switch plan.Step {
				case FromOwn:
					if c := p.Claimed[plan.Block]; c == nil || c.Node != node {
						t.Fatalf("FromOwn %v, not a block of %s", plan.Block, node)
					}
				case Claim:
					if ownRoom {
						t.Fatalf("%s claims %v while its own blocks have room", node, plan.Block)
					}
					if _, taken := p.Claimed[plan.Block]; taken || Usable(plan.Block, p.Usable).IsEmpty() {
						t.Fatalf("claims %v: taken or without usable addresses", plan.Block)
					}
					p.Claimed[plan.Block] = &Claimed{Prefix: plan.Block, Node: node}
				case Borrow:
					if ownRoom || unclaimedRoom {
						t.Fatalf("%s borrows from %v with own room %v, unclaimed blocks %v", node, plan.Block, ownRoom, unclaimedRoom)
					}
					if c := p.Claimed[plan.Block]; c == nil || c.Node == node {
						t.Fatalf("borrows from %v, which is not another node's block", plan.Block)
					}
				}
				a, ok := p.Allocate(plan.Block, uint64(arg))
				if !ok {
					t.Fatalf("plan %v %v gives no address", plan.Step, plan.Block)
				}
				if _, held := m.held[a]; held || !p.Usable.Contains(a) || !plan.Block.Contains(a) {
					t.Fatalf("allocated %s: held %v, usable %v, in block %v", a, held, p.Usable.Contains(a), plan.Block.Contains(a))
				}
				uid++
				m.held[a] = fmt.Sprintf("%s/u%d", node, uid)
				c := p.Claimed[plan.Block]
				i, _ := slices.BinarySearchFunc(c.Used, a, netip.Addr.Compare)
				c.Used = slices.Insert(c.Used, i, a)
			case 2: // release the arg-th held address
				if len(m.held) == 0 {
					continue
				}
				var held []netip.Addr
				for a := range m.held {
					held = append(held, a)
				}
				slices.SortFunc(held, netip.Addr.Compare)
				a := held[int(arg)%len(held)]
				blk, ok := p.Layout.BlockOf(a)
				c := p.Claimed[blk]
				if !ok || c == nil {
					t.Fatalf("held address %s has no claimed block", a)
				}
				i, found := slices.BinarySearchFunc(c.Used, a, netip.Addr.Compare)
				if !found {
					t.Fatalf("held address %s missing from block %v", a, blk)
				}
				c.Used = slices.Delete(c.Used, i, i+1)
				delete(m.held, a)
			case 3: // node returns its empty blocks
				for blk, c := range p.Claimed {
					if c.Node == node && len(c.Used) == 0 {
						delete(p.Claimed, blk)
					}
				}
			}
			check(t, p, m)
		}
	})
}
