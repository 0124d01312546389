package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// bytesReader hands out fuzz bytes, then zeros.
type bytesReader struct{ b []byte }

func (r *bytesReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *bytesReader) done() bool { return len(r.b) == 0 }

// poolModel is the brute-force model of one pool: every usable address
// listed, records in a map.
type poolModel struct {
	name     string
	version  int
	index    byte // third byte of the IPv4 subnet, 14th of the IPv6 one
	disabled bool
	usable   []netip.Addr // ascending
	records  map[netip.Addr]string
}

type allocModel struct {
	pools      []*poolModel // store order
	reserved   map[netip.Addr]bool
	maxRecords int
	offset     uint64
}

// pick returns what the allocator must give uid in family v, whether it
// was already held, and whether anything could be given.
func (m *allocModel) pick(uid string, v int) (*poolModel, netip.Addr, bool, bool) {
	var cands, holders, others []*poolModel
	for _, p := range m.pools {
		if p.version == v && !p.disabled {
			cands = append(cands, p)
		}
	}
	for _, p := range cands {
		if slices.Contains(slices.Collect(maps.Values(p.records)), uid) {
			holders = append(holders, p)
		} else {
			others = append(others, p)
		}
	}
	for _, p := range append(holders, others...) {
		held := slices.SortedFunc(maps.Keys(p.records), netip.Addr.Compare)
		for _, a := range held {
			if p.records[a] == uid {
				return p, a, true, true
			}
		}
		if len(p.records) >= m.maxRecords {
			continue
		}
		var free []netip.Addr
		for _, a := range p.usable {
			if !m.reserved[a] {
				free = append(free, a)
			}
		}
		if len(free) == 0 {
			continue
		}
		start := int(m.offset % uint64(len(free)))
		for i := range free {
			a := free[(start+i)%len(free)]
			if _, taken := p.records[a]; !taken {
				return p, a, false, true
			}
		}
	}
	return nil, netip.Addr{}, false, false
}

func (m *allocModel) hasCandidates(v int) bool {
	return slices.ContainsFunc(m.pools, func(p *poolModel) bool { return p.version == v && !p.disabled })
}

func addrOf(v int, subnetByte, host byte) netip.Addr {
	if v == 4 {
		return netip.AddrFrom4([4]byte{10, subnetByte, 0, host})
	}
	var b [16]byte
	b[0], b[1], b[13], b[15] = 0xfd, 0x00, subnetByte, host
	return netip.AddrFrom16(b)
}

// FuzzAllocateRelease replays a random sequence of allocations and releases
// on small pools with excluded and reserved IPs, a low record limit, an
// offset and injected write conflicts, and after every step compares the
// store with a brute-force model and checks the invariants.
func FuzzAllocateRelease(f *testing.F) {
	f.Add([]byte{2, 0, 5, 1, 3, 0, 8, 2, 1, 1, 1, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{3, 1, 0, 4, 2, 2, 0, 6, 1, 0, 7, 3, 3, 1, 2, 0, 1, 5, 1, 2, 0, 0, 0, 1, 0, 2, 0, 3, 2, 1, 0, 2, 1, 1, 3})
	f.Add([]byte{1, 1, 0, 2, 0, 0, 0, 3, 1, 1, 0, 0, 2, 0, 1, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 2, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &bytesReader{b: data}
		m := &allocModel{reserved: map[netip.Addr]bool{}}
		nPools := 1 + int(r.next()%3)
		dual := r.next()%2 == 1
		var pools []*v2beta1.SpiderIPPool
		addPool := func(v int, i int) {
			lo := r.next() % 8
			hi := lo + r.next()%10
			flags := r.next()
			name := fmt.Sprintf("v%d-%d", v, i)
			bits := 24
			if v == 6 {
				bits = 120
			}
			subnet := netip.PrefixFrom(addrOf(v, byte(i), 0), bits).String()
			opts := []build.Option{build.Default(), build.IPs(addrOf(v, byte(i), lo).String() + "-" + addrOf(v, byte(i), hi).String())}
			pm := &poolModel{name: name, version: v, index: byte(i), records: map[netip.Addr]string{}}
			excluded := map[netip.Addr]bool{}
			var exclude []string
			for range flags % 3 {
				a := addrOf(v, byte(i), r.next()%20)
				exclude = append(exclude, a.String())
				excluded[a] = true
			}
			opts = append(opts, build.ExcludeIPs(exclude...))
			if flags&0x80 != 0 && i > 0 {
				opts = append(opts, build.Disable())
				pm.disabled = true
			}
			for h := lo; h <= hi; h++ {
				if a := addrOf(v, byte(i), h); !excluded[a] {
					pm.usable = append(pm.usable, a)
				}
			}
			pools = append(pools, build.Pool(name, subnet, opts...))
			m.pools = append(m.pools, pm)
		}
		for i := range nPools {
			addPool(4, i)
		}
		if dual {
			addPool(6, 0)
		}
		m.maxRecords = 1 + int(r.next()%8)
		m.offset = uint64(r.next() % 16)
		store := ipamtest.NewStore(pools...)
		for i := range int(r.next() % 4) {
			v := 4
			if dual && i == 3 {
				v = 6
			}
			a := addrOf(v, r.next()%byte(nPools), r.next()%20)
			store.PutReserved(build.ReservedIP(fmt.Sprint("r", i), build.IPs(a.String())))
			m.reserved[a] = true
		}
		if c := r.next(); c%2 == 1 {
			store.SetConflictRate(0.3, uint64(c))
		}
		cfg := ipam.Config{
			EnableIPv4: true, EnableIPv6: dual, MaxRecords: m.maxRecords,
			SearchOffset: func(string) uint64 { return m.offset },
		}
		a := ipam.New(store, cfg)
		versions := []int{4}
		if dual {
			versions = append(versions, 6)
		}
		ctx := context.Background()

		for step := 0; !r.done() && step < 64; step++ {
			op := r.next()
			uid := fmt.Sprint("u", op>>2%6)
			switch op % 3 {
			case 0, 1:
				type want struct {
					p      *poolModel
					a      netip.Addr
					reused bool
				}
				var wants []want
				ok, filtered := true, false
				for _, v := range versions {
					if !m.hasCandidates(v) {
						filtered = true
						continue
					}
					p, addr, reused, found := m.pick(uid, v)
					ok = ok && found
					wants = append(wants, want{p, addr, reused})
				}
				req := &ipam.Request{PodNamespace: "app", PodName: "pod-" + uid, PodUID: uid, NodeName: "n", IfName: "eth0"}
				res, err := a.Allocate(ctx, req)
				switch {
				case filtered:
					if !errors.Is(err, ipam.ErrNoCandidatePool) {
						t.Fatalf("step %d: every pool disabled, got %v", step, err)
					}
				case !ok:
					if err == nil {
						t.Fatalf("step %d: model has no address for %s, allocator gave %v", step, uid, res.IPs)
					}
					if !errors.Is(err, ipam.ErrPoolExhausted) {
						t.Fatalf("step %d: got %v, want exhaustion", step, err)
					}
				default:
					if err != nil {
						t.Fatalf("step %d: %s: %v", step, uid, err)
					}
					for i, w := range wants {
						got := res.IPs[i]
						if got.Pool != w.p.name || got.Address.Addr() != w.a {
							t.Fatalf("step %d: %s got %s from %s, model %s from %s", step, uid, got.Address, got.Pool, w.a, w.p.name)
						}
						w.p.records[w.a] = uid
					}
				}
			case 2:
				p := m.pools[int(r.next())%len(m.pools)]
				sel := r.next()
				var addr netip.Addr
				switch sel % 4 {
				case 0:
					if held := slices.SortedFunc(maps.Keys(p.records), netip.Addr.Compare); len(held) > 0 {
						addr = held[int(sel>>2)%len(held)]
					} else {
						addr = addrOf(p.version, 0, 1)
					}
				case 1, 2:
					addr = addrOf(p.version, p.index, sel>>2%20)
				}
				err := a.Release(ctx, &ipam.ReleaseRequest{PodUID: uid, IPs: []ipam.PoolIP{{Pool: p.name, Addr: addr}}})
				if err != nil {
					t.Fatalf("step %d: release: %v", step, err)
				}
				for held, owner := range p.records {
					if owner == uid && (!addr.IsValid() || held == addr) {
						delete(p.records, held)
					}
				}
			}

			got, err := store.Pools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ipamtest.CheckInvariants(got); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			for i, p := range got {
				st, err := ipam.NewPoolState(p)
				if err != nil {
					t.Fatal(err)
				}
				have := map[netip.Addr]string{}
				for addr, o := range st.All() {
					have[addr] = o.PodUID
					if o.Pod != "app/pod-"+o.PodUID {
						t.Fatalf("step %d: record %s names pod %q for UID %q", step, addr, o.Pod, o.PodUID)
					}
					if m.reserved[addr] {
						// Reservations precede every allocation here.
						t.Fatalf("step %d: reserved %s allocated", step, addr)
					}
				}
				if !maps.Equal(have, m.pools[i].records) {
					t.Fatalf("step %d: pool %s holds %v, model %v", step, p.Name, have, m.pools[i].records)
				}
			}
		}
	})
}
