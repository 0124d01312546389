package ip

import (
	"math"
	"net/netip"
	"slices"
)

// FirstFree returns the first address of s that is not in used, scanning s
// in ascending order from position offset (counted across s's ranges, taken
// modulo the size of s) to the end and then wrapping around to the start.
// Offset 0 therefore means "lowest free address"; different offsets let
// agents on different nodes start their searches in different places and so
// rarely race for the same address. It reports false when every address of
// s is used or s is empty.
//
// used must be sorted ascending by netip.Addr.Compare (see SortAddrs) and
// hold zone-free addresses; duplicates and addresses outside s (including the
// other family) are fine. With unsorted input the result is unspecified but
// the call still terminates without panicking.
//
// The cost is O(#ranges · log #used + #used): whole runs of used addresses
// are skipped one address at a time, but free addresses are never iterated.
func (s Set) FirstFree(used []netip.Addr, offset uint64) (netip.Addr, bool) {
	if len(s.ranges) == 0 {
		return netip.Addr{}, false
	}
	ri, start := s.position(offset)
	if a, ok := s.firstFreeFrom(ri, start, netip.Addr{}, used); ok {
		return a, true
	}
	if ri == 0 && start == s.ranges[0].First {
		return netip.Addr{}, false // the first pass already covered all of s
	}
	// Wrap around: everything from start on is used, so only look below it.
	return s.firstFreeFrom(0, s.ranges[0].First, start, used)
}

// position returns the range index and address at position offset mod
// size(s). s must not be empty.
func (s Set) position(offset uint64) (int, netip.Addr) {
	p := Uint128From64(offset)
	if size, overflow := s.size(); !overflow && size.Hi == 0 {
		// size.Lo > 0 because s is not empty. When the size does not fit
		// in 64 bits it exceeds every uint64 offset, so no reduction.
		p.Lo %= size.Lo
	}
	one := Uint128From64(1)
	for i, r := range s.ranges {
		n, overflow := r.span().add(one)
		if overflow || p.Cmp(n) < 0 {
			a, _ := AddOffset(r.First, p)
			return i, a
		}
		p, _ = p.sub(n)
	}
	// Unreachable: p < size(s) is the sum of the range sizes.
	return 0, s.ranges[0].First
}

// firstFreeFrom returns the first address >= c in s, starting in range ri
// (c must lie in it), that is not in used. If limit is valid the search
// stops before reaching it.
func (s Set) firstFreeFrom(ri int, c netip.Addr, limit netip.Addr, used []netip.Addr) (netip.Addr, bool) {
	for i := ri; i < len(s.ranges); i++ {
		r := s.ranges[i]
		if i != ri {
			c = r.First
		}
		if limit.IsValid() && c.Compare(limit) >= 0 {
			return netip.Addr{}, false
		}
		j, _ := slices.BinarySearchFunc(used, c, netip.Addr.Compare)
		exhausted := false
		for ; j < len(used); j++ {
			cmp := used[j].Compare(c)
			if cmp > 0 {
				break
			}
			if cmp < 0 {
				continue // duplicate of an address already skipped
			}
			c = c.Next()
			// Next of the family's last address is invalid.
			if !c.IsValid() || c.Compare(r.Last) > 0 {
				exhausted = true
				break
			}
		}
		if exhausted {
			continue
		}
		if limit.IsValid() && c.Compare(limit) >= 0 {
			return netip.Addr{}, false
		}
		return c, true
	}
	return netip.Addr{}, false
}

// FreeCount returns the number of addresses of s that are not in used,
// saturating at math.MaxInt64 like Count. Addresses of used outside s are
// ignored and duplicates are counted once. used must be sorted (SortAddrs):
// the count is a single merge walk over used and the ranges of s, in
// O(#used + #ranges); unsorted input gives an unspecified count in [0, size].
func (s Set) FreeCount(used []netip.Addr) int64 {
	var n uint64
	ri := 0
	for i, a := range used {
		if i > 0 && used[i-1] == a {
			continue
		}
		for ri < len(s.ranges) && s.ranges[ri].Last.Compare(a) < 0 {
			ri++
		}
		if ri == len(s.ranges) {
			break
		}
		if s.ranges[ri].First.Compare(a) <= 0 {
			n++
		}
	}
	size, overflow := s.size()
	if overflow {
		// 2^128 - n still saturates.
		return math.MaxInt64
	}
	free, borrow := size.sub(Uint128From64(n))
	if borrow {
		return 0 // only possible with unsorted input
	}
	return free.int64Sat()
}
