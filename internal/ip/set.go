package ip

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Set is an immutable set of IP addresses of a single family, stored as
// sorted, non-overlapping, non-adjacent ranges. Because the representation is
// normalised, two Sets hold the same addresses exactly when their Ranges are
// equal, and Strings gives the canonical (merged) CRD form.
//
// The zero Set is empty and has Version 0, which is compatible with every
// family. Methods never modify a Set, so Sets may be shared between
// goroutines without locking.
type Set struct {
	version int
	ranges  []Range
}

// ParseSet parses entries in the forms accepted by ParseRange (single
// addresses and "a-b" ranges; CIDR notation is rejected) and returns their
// union, merging overlapping and adjacent entries. version must be 4, 6 or 0;
// with 0 the family is taken from the first entry and every other entry must
// match it. Errors name the index and text of the first bad entry, e.g.
// `entry 2 "x": invalid IP address: ...`.
func ParseSet(entries []string, version int) (Set, error) {
	return parseSet(entries, version, false)
}

// ParseSetWithCIDRs is ParseSet that also accepts CIDR entries such as
// "10.6.0.0/16". CIDRs must be in canonical network form, as ParseCIDR
// requires, because an entry like "10.6.1.0/16" is more likely a typo than a
// request for the whole /16.
func ParseSetWithCIDRs(entries []string, version int) (Set, error) {
	return parseSet(entries, version, true)
}

func parseSet(entries []string, version int, allowCIDR bool) (Set, error) {
	if err := checkVersion(version); err != nil {
		return Set{}, err
	}
	rs := make([]Range, 0, len(entries))
	inferredFrom := -1
	for i, e := range entries {
		var (
			r   Range
			err error
		)
		if allowCIDR && strings.Contains(e, "/") {
			var p netip.Prefix
			if p, err = parseCIDR(e, false); err == nil {
				r = PrefixRange(p)
			}
		} else {
			r, err = parseRange(e)
		}
		if err != nil {
			return Set{}, fmt.Errorf("entry %d %q: %w", i, e, err)
		}
		v := r.Version()
		if version == 0 {
			version, inferredFrom = v, i
		}
		if v != version {
			if inferredFrom >= 0 {
				return Set{}, fmt.Errorf("entry %d %q: %w: IPv%d entry in an IPv%d set (family taken from entry %d)",
					i, e, ErrFamilyMismatch, v, version, inferredFrom)
			}
			return Set{}, fmt.Errorf("entry %d %q: %w: IPv%d entry in an IPv%d set", i, e, ErrFamilyMismatch, v, version)
		}
		rs = append(rs, r)
	}
	return Set{version: version, ranges: normalize(rs)}, nil
}

// NewSet builds a Set from ranges, which may overlap and come in any order.
// version follows the same rules as in ParseSet. Every range must satisfy
// Range.IsValid; errors name the index of the bad range.
func NewSet(version int, ranges ...Range) (Set, error) {
	if err := checkVersion(version); err != nil {
		return Set{}, err
	}
	rs := make([]Range, 0, len(ranges))
	for i, r := range ranges {
		if err := r.check(); err != nil {
			return Set{}, fmt.Errorf("range %d %q: %w", i, r.First.String()+"-"+r.Last.String(), err)
		}
		v := r.Version()
		if version == 0 {
			version = v
		}
		if v != version {
			return Set{}, fmt.Errorf("range %d %q: %w: IPv%d range in an IPv%d set", i, r.String(), ErrFamilyMismatch, v, version)
		}
		rs = append(rs, r)
	}
	return Set{version: version, ranges: normalize(rs)}, nil
}

func checkVersion(v int) error {
	if v != 0 && v != 4 && v != 6 {
		return fmt.Errorf("%w %d: must be 0 (infer), 4 or 6", ErrInvalidVersion, v)
	}
	return nil
}

// normalize sorts rs in place and merges overlapping and adjacent ranges,
// returning a prefix of rs. rs must be owned by the caller.
func normalize(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b Range) int { return a.First.Compare(b.First) })
	out := rs[:1]
	for _, r := range rs[1:] {
		out = appendMerged(out, r)
	}
	return slices.Clip(out)
}

// appendMerged appends r to out, which must be normalised with
// out[last].First <= r.First, merging r into the last range when they
// overlap or touch.
func appendMerged(out []Range, r Range) []Range {
	if len(out) == 0 {
		return append(out, r)
	}
	last := &out[len(out)-1]
	if touches(*last, r) {
		if r.Last.Compare(last.Last) > 0 {
			last.Last = r.Last
		}
		return out
	}
	return append(out, r)
}

// touches reports whether b, which starts no earlier than a, overlaps a or
// begins right after it. Next of the family's highest address is invalid,
// which correctly never equals a valid b.First.
func touches(a, b Range) bool {
	return b.First.Compare(a.Last) <= 0 || a.Last.Next() == b.First
}

// Version returns the set's family: 4 or 6, or 0 for a zero Set or one
// parsed from no entries with version 0.
func (s Set) Version() int { return s.version }

// IsEmpty reports whether s holds no address.
func (s Set) IsEmpty() bool { return len(s.ranges) == 0 }

// Ranges returns a copy of the normalised ranges, in ascending order.
func (s Set) Ranges() []Range { return slices.Clone(s.ranges) }

// Strings returns the canonical CRD form of s: one Range.String per merged
// range, ascending. It is never nil so that it marshals as [] rather than
// null.
func (s Set) Strings() []string {
	out := make([]string, 0, len(s.ranges))
	for _, r := range s.ranges {
		out = append(out, r.String())
	}
	return out
}

// String returns Strings joined with ",", for logs and error messages.
func (s Set) String() string { return strings.Join(s.Strings(), ",") }

// Equal reports whether s and o hold exactly the same addresses. Two empty
// sets are equal whatever their Version.
func (s Set) Equal(o Set) bool { return slices.Equal(s.ranges, o.ranges) }

// find returns the index of the first range whose Last is >= a, i.e. the
// only range that can contain a.
func (s Set) find(a netip.Addr) int {
	i, _ := slices.BinarySearchFunc(s.ranges, a, func(r Range, a netip.Addr) int {
		return r.Last.Compare(a)
	})
	return i
}

// Contains reports whether a is in s, in O(log #ranges). A zone on a is
// ignored; an address of the other family is never contained. IPv4-mapped
// IPv6 addresses are not unmapped: callers holding one should call
// netip.Addr.Unmap first.
func (s Set) Contains(a netip.Addr) bool {
	a = a.WithZone("")
	i := s.find(a)
	return i < len(s.ranges) && s.ranges[i].First.Compare(a) <= 0
}

// ContainsRange reports whether every address of r is in s. Since s is
// normalised, r must then lie inside a single range of s. An invalid r is
// reported as not contained.
func (s Set) ContainsRange(r Range) bool {
	if !r.IsValid() {
		return false
	}
	i := s.find(r.First)
	return i < len(s.ranges) && s.ranges[i].First.Compare(r.First) <= 0 && r.Last.Compare(s.ranges[i].Last) <= 0
}

// ContainsSet reports whether o is a subset of s (for example a pool's ips
// inside its subnet). The empty set is a subset of every set.
func (s Set) ContainsSet(o Set) bool {
	for _, r := range o.ranges {
		if !s.ContainsRange(r) {
			return false
		}
	}
	return true
}

// Union returns the addresses in s or o, in O(#ranges). Uniting sets of two
// different families cannot be represented, so it returns an error wrapping
// ErrFamilyMismatch when both sets have a non-zero and different Version
// (even if one is empty, since that is almost surely a caller bug). The
// result has the non-zero Version of the two.
func (s Set) Union(o Set) (Set, error) {
	if s.version != 0 && o.version != 0 && s.version != o.version {
		return Set{}, fmt.Errorf("union of IPv%d and IPv%d sets: %w", s.version, o.version, ErrFamilyMismatch)
	}
	v := s.version
	if v == 0 {
		v = o.version
	}
	switch {
	case len(o.ranges) == 0:
		return Set{version: v, ranges: s.ranges}, nil
	case len(s.ranges) == 0:
		return Set{version: v, ranges: o.ranges}, nil
	}
	out := make([]Range, 0, len(s.ranges)+len(o.ranges))
	i, j := 0, 0
	for i < len(s.ranges) || j < len(o.ranges) {
		var r Range
		if j >= len(o.ranges) || (i < len(s.ranges) && s.ranges[i].First.Compare(o.ranges[j].First) <= 0) {
			r = s.ranges[i]
			i++
		} else {
			r = o.ranges[j]
			j++
		}
		out = appendMerged(out, r)
	}
	return Set{version: v, ranges: slices.Clip(out)}, nil
}

// Subtract returns the addresses in s that are not in o, in O(#ranges); this
// is how a pool's allocatable addresses are computed (ips minus excludeIPs
// minus reserved IPs). Addresses of o in another family are simply not in s,
// so s is returned unchanged in that case. The result keeps s's Version.
func (s Set) Subtract(o Set) Set {
	if len(s.ranges) == 0 || len(o.ranges) == 0 {
		return s
	}
	// Each range of o splits at most one range of s in two, which bounds
	// the result and avoids growing the slice in the loop.
	out := make([]Range, 0, len(s.ranges)+len(o.ranges))
	j := 0
	for _, a := range s.ranges {
		// Skip o ranges entirely before a; they cannot touch later ranges
		// of s either because s is sorted.
		for j < len(o.ranges) && o.ranges[j].Last.Compare(a.First) < 0 {
			j++
		}
		cur, covered := a.First, false
		k := j
		for ; k < len(o.ranges) && o.ranges[k].First.Compare(a.Last) <= 0; k++ {
			b := o.ranges[k]
			if b.First.Compare(cur) > 0 {
				out = append(out, Range{First: cur, Last: b.First.Prev()})
			}
			if b.Last.Compare(a.Last) >= 0 {
				// b may reach into the next range of s: keep it (j = k).
				covered = true
				break
			}
			// b ends inside a, so b.Last.Next() is valid and <= a.Last.
			cur = b.Last.Next()
		}
		if !covered {
			out = append(out, Range{First: cur, Last: a.Last})
		}
		j = k
	}
	return Set{version: s.version, ranges: slices.Clip(out)}
}

// Intersect returns the addresses in both s and o, in O(#ranges). The result
// keeps s's Version; it is empty when the families differ.
func (s Set) Intersect(o Set) Set {
	var out []Range
	i, j := 0, 0
	for i < len(s.ranges) && j < len(o.ranges) {
		a, b := s.ranges[i], o.ranges[j]
		lo, hi := a.First, a.Last
		if b.First.Compare(lo) > 0 {
			lo = b.First
		}
		if b.Last.Compare(hi) < 0 {
			hi = b.Last
		}
		if lo.Compare(hi) <= 0 {
			out = append(out, Range{First: lo, Last: hi})
		}
		if a.Last.Compare(b.Last) < 0 {
			i++
		} else {
			j++
		}
	}
	return Set{version: s.version, ranges: out}
}

// Overlaps reports whether s and o share at least one address, without
// building the intersection (used to reject pools whose ips overlap).
func (s Set) Overlaps(o Set) bool {
	i, j := 0, 0
	for i < len(s.ranges) && j < len(o.ranges) {
		a, b := s.ranges[i], o.ranges[j]
		if a.First.Compare(b.Last) <= 0 && b.First.Compare(a.Last) <= 0 {
			return true
		}
		if a.Last.Compare(b.Last) < 0 {
			i++
		} else {
			j++
		}
	}
	return false
}

// size returns the number of addresses in s and whether it overflowed 128
// bits, which happens only for the whole IPv6 space (exactly 2^128).
func (s Set) size() (Uint128, bool) {
	var total Uint128
	one := Uint128From64(1)
	for _, r := range s.ranges {
		n, of := r.span().add(one)
		if of {
			return Uint128{}, true
		}
		if total, of = total.add(n); of {
			return Uint128{}, true
		}
	}
	return total, false
}

// Size returns the exact number of addresses in s (up to 2^128).
func (s Set) Size() *big.Int {
	n, overflow := s.size()
	if overflow {
		return new(big.Int).Lsh(big.NewInt(1), 128)
	}
	return n.Big()
}

// Count returns the number of addresses in s, saturating at math.MaxInt64
// because Kubernetes status counters are int64 (any IPv6 /64 saturates).
func (s Set) Count() int64 {
	n, overflow := s.size()
	if overflow {
		return math.MaxInt64
	}
	return n.int64Sat()
}
