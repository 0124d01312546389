package ip

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchPool is a large pool with 5000 used addresses spread evenly across it
// and an excludeIPs list of 100 small ranges, as a busy cluster would have.
type benchPool struct {
	name       string
	definition []string // the pool's ips field
	set        Set
	spread     []netip.Addr // 5000 used addresses spread over the pool
	dense      []netip.Addr // the 5000 lowest addresses used: worst case for offset 0
	probes     []netip.Addr // random addresses inside the pool
	offsets    []uint64     // random search offsets
	exclude    Set          // 100 excludeIPs entries
	excludeStr []string
}

func newBenchPool(b *testing.B, name, def string) *benchPool {
	b.Helper()
	p := &benchPool{name: name, definition: []string{def}}
	var err error
	if p.set, err = ParseSet(p.definition, 0); err != nil {
		b.Fatal(err)
	}
	r := p.set.Ranges()[0]
	span := r.span()
	// step = span / 5000. Both pools have a span that fits in 64 bits (a
	// /64 spans 2^64-1), so no 128-bit division is needed.
	if span.Hi != 0 {
		b.Fatalf("pool %s is larger than 2^64 addresses", name)
	}
	step := Uint128From64(span.Lo / 5000)
	rng := rand.New(rand.NewPCG(7, 8))
	at := func(off Uint128) netip.Addr {
		a, ok := AddOffset(r.First, off)
		if !ok {
			b.Fatalf("offset %v outside pool", off)
		}
		return a
	}
	var off Uint128
	for i := range 5000 {
		p.spread = append(p.spread, at(off))
		off, _ = off.add(step)
		p.dense = append(p.dense, at(Uint128From64(uint64(i))))
	}
	for range 1024 {
		p.probes = append(p.probes, at(Uint128From64(rng.Uint64N(span.Lo))))
		p.offsets = append(p.offsets, rng.Uint64())
	}
	for i := range 100 {
		start := at(Uint128From64(uint64(i) * (step.Lo * 50)))
		end, _ := AddOffset(start, Uint128From64(uint64(rng.IntN(16))))
		p.excludeStr = append(p.excludeStr, Range{First: start, Last: end}.String())
	}
	if p.exclude, err = ParseSet(p.excludeStr, 0); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchPools(b *testing.B) []*benchPool {
	return []*benchPool{
		newBenchPool(b, "v4-slash8", "10.0.0.0-10.255.255.255"),
		newBenchPool(b, "v6-slash64", "fd00::-fd00::ffff:ffff:ffff:ffff"),
	}
}

func BenchmarkParseSet(b *testing.B) {
	for _, p := range benchPools(b) {
		b.Run(p.name+"/pool", func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseSet(p.definition, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/excludeIPs-100", func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseSet(p.excludeStr, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkContains(b *testing.B) {
	for _, p := range benchPools(b) {
		b.Run(p.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if !p.set.Contains(p.probes[i%len(p.probes)]) {
					b.Fatal("probe not contained")
				}
				i++
			}
		})
	}
}

func BenchmarkFirstFree(b *testing.B) {
	for _, p := range benchPools(b) {
		b.Run(p.name+"/offset0-spread", func(b *testing.B) {
			for b.Loop() {
				if _, ok := p.set.FirstFree(p.spread, 0); !ok {
					b.Fatal("no free address")
				}
			}
		})
		b.Run(p.name+"/offset0-dense", func(b *testing.B) {
			for b.Loop() {
				if _, ok := p.set.FirstFree(p.dense, 0); !ok {
					b.Fatal("no free address")
				}
			}
		})
		b.Run(p.name+"/random-offset-spread", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok := p.set.FirstFree(p.spread, p.offsets[i%len(p.offsets)]); !ok {
					b.Fatal("no free address")
				}
				i++
			}
		})
	}
}

func BenchmarkFreeCount(b *testing.B) {
	for _, p := range benchPools(b) {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if p.set.FreeCount(p.spread) <= 0 {
					b.Fatal("no free address")
				}
			}
		})
	}
}

func BenchmarkSubtract(b *testing.B) {
	for _, p := range benchPools(b) {
		b.Run(p.name+"/excludeIPs-100", func(b *testing.B) {
			for b.Loop() {
				if p.set.Subtract(p.exclude).IsEmpty() {
					b.Fatal("empty")
				}
			}
		})
	}
}
