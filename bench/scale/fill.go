package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// etcdRequestLimit is etcd's default --max-request-bytes (1.5 MiB): no object larger than this can
// be written.
const etcdRequestLimit = 1536 * 1024

// fillReport is the fill-and-empty figure: one block-format pool filled to its last address by the
// simulated agents, then emptied.
type fillReport struct {
	Addresses    int     `json:"addresses"`
	Agents       int     `json:"agents"`
	InFlight     int     `json:"inFlight"`
	FillSeconds  float64 `json:"fillSeconds"`
	FillPerSec   float64 `json:"fillPerSec"`
	EmptySeconds float64 `json:"emptySeconds"`
	EmptyPerSec  float64 `json:"emptyPerSec"`
	// RecordsFull and RecordsEnd are the records of the pool's blocks, read live, when full and
	// after every release.
	RecordsFull int `json:"recordsAtFull"`
	RecordsEnd  int `json:"recordsAtEnd"`
	Duplicates  int `json:"duplicates"`
	// Exhausted says that one more allocation in the full pool failed with ErrPoolExhausted.
	Exhausted      bool `json:"exhaustedWhenFull"`
	TooLargeErrors int  `json:"tooLargeErrors"`
	Blocks         int  `json:"blocks"`
	// LargestBlockBytes is the largest SpiderIPBlock of the full pool, as JSON the apiserver serves.
	LargestBlockBytes int `json:"largestBlockBytes"`
	// StatusFormatBytes is what the same records would take in the status format: the pool
	// object, as JSON, with every record in status.allocatedIPs (v2beta1 SetAllocations), one
	// write; StatusRecordsBytes is status.allocatedIPs alone.
	StatusFormatBytes     int `json:"statusFormatBytes"`
	StatusRecordsBytes    int `json:"statusAllocatedIPsBytes"`
	EtcdRequestLimitBytes int `json:"etcdRequestLimitBytes"`
}

// runFill fills a block-format pool of size addresses through f's agents with inFlight requests
// in flight on each, checks it, asks for one address more, and releases everything.
func runFill(ctx context.Context, env *testenv.Env, f *fleet, size, inFlight int) (*fillReport, error) {
	r := &fillReport{Addresses: size, Agents: len(f.agents), InFlight: inFlight * len(f.agents), EtcdRequestLimitBytes: etcdRequestLimit}
	const name = "scale-fill"
	pool, err := createPool(ctx, env.Client, poolSpec{name: name, base: netip.MustParseAddr("10.128.0.0"), size: size, blocks: true})
	if err != nil {
		return nil, err
	}
	pods := make([]*pod, size)
	for i := range pods {
		pods[i] = &pod{name: fmt.Sprintf("fill-%05d", i), uid: string(uuid.NewUUID()), agent: f.agents[i%len(f.agents)]}
	}

	step("fill: %d agents allocate %d addresses of block-format pool %s, %d in flight", len(f.agents), size, name, r.InFlight)
	elapsed, errs := parallel(ctx, "fill: allocated", pods, inFlight, func(ctx context.Context, p *pod) error {
		res, err := p.agent.alloc.Allocate(ctx, allocRequest(p, name))
		if err != nil {
			return err
		}
		p.addr = ipam.PoolIP{Pool: name, Addr: res.IPs[0].Address.Addr()}
		return nil
	})
	r.TooLargeErrors += tooLarge(errs)
	if len(errs) > 0 {
		return r, fmt.Errorf("fill: %d of %d allocations failed, first: %w", len(errs), size, errs[0])
	}
	r.FillSeconds, r.FillPerSec = elapsed.Seconds(), float64(size)/elapsed.Seconds()
	step("fill: %d addresses in %.1fs, %.0f/s", size, r.FillSeconds, r.FillPerSec)

	seen := make(map[netip.Addr]bool, size)
	for _, p := range pods {
		if seen[p.addr.Addr] {
			r.Duplicates++
		}
		seen[p.addr.Addr] = true
	}
	blocks, records, err := blockRecords(ctx, env.Client, name)
	if err != nil {
		return r, err
	}
	r.RecordsFull, r.Blocks = len(records), len(blocks)
	for _, b := range blocks {
		b.SetGroupVersionKind(ipblock.SchemeGroupVersion.WithKind("SpiderIPBlock")) // lists leave it out
		data, err := json.Marshal(&b)
		if err != nil {
			return r, err
		}
		r.LargestBlockBytes = max(r.LargestBlockBytes, len(data))
	}
	for _, p := range pods {
		if records[p.addr.Addr].PodUID != p.uid {
			return r, fmt.Errorf("fill: %s got %s, but its block records %q", p.name, p.addr.Addr, records[p.addr.Addr].PodUID)
		}
	}
	step("fill: %d records in %d SpiderIPBlocks, largest %d bytes, %d duplicates", r.RecordsFull, r.Blocks, r.LargestBlockBytes, r.Duplicates)
	if r.Duplicates > 0 || r.RecordsFull != size {
		return r, fmt.Errorf("fill: %d records for %d allocations, %d duplicates", r.RecordsFull, size, r.Duplicates)
	}

	extra := &pod{name: "fill-extra", uid: string(uuid.NewUUID()), agent: f.agents[0]}
	_, err = extra.agent.alloc.Allocate(ctx, allocRequest(extra, name))
	r.Exhausted = errors.Is(err, ipam.ErrPoolExhausted)
	r.TooLargeErrors += tooLarge([]error{err})
	step("fill: one more allocation in the full pool: %v", err)
	if !r.Exhausted {
		return r, fmt.Errorf("fill: one more allocation in the full pool: %v, want %v", err, ipam.ErrPoolExhausted)
	}

	// What the status format would need for the same records: the pool object as one write.
	allocs := make(v2beta1.PoolIPAllocations, size)
	for _, p := range pods {
		allocs[p.addr.Addr.String()] = v2beta1.PoolIPAllocation{NamespacedName: "scale/" + p.name, PodUID: p.uid}
	}
	if err := pool.Status.SetAllocations(allocs); err != nil {
		return r, err
	}
	pool.SetGroupVersionKind(v2beta1.SchemeGroupVersion.WithKind("SpiderIPPool"))
	data, err := json.Marshal(pool)
	if err != nil {
		return r, err
	}
	r.StatusFormatBytes, r.StatusRecordsBytes = len(data), len(*pool.Status.AllocatedIPs)
	step("fill: in the status format the pool object would be %.2f MiB (status.allocatedIPs %.2f MiB), %.1fx etcd's %.1f MiB request limit",
		mib(r.StatusFormatBytes), mib(r.StatusRecordsBytes), float64(r.StatusFormatBytes)/etcdRequestLimit, mib(etcdRequestLimit))

	step("empty: releasing %d addresses, %d in flight", size, r.InFlight)
	elapsed, errs = parallel(ctx, "empty: released", pods, inFlight, func(ctx context.Context, p *pod) error {
		return p.agent.alloc.Release(ctx, &ipam.ReleaseRequest{PodUID: p.uid, IPs: []ipam.PoolIP{p.addr}})
	})
	r.TooLargeErrors += tooLarge(errs)
	if len(errs) > 0 {
		return r, fmt.Errorf("empty: %d of %d releases failed, first: %w", len(errs), size, errs[0])
	}
	r.EmptySeconds, r.EmptyPerSec = elapsed.Seconds(), float64(size)/elapsed.Seconds()
	if _, records, err = blockRecords(ctx, env.Client, name); err != nil {
		return r, err
	}
	r.RecordsEnd = len(records)
	step("empty: %d addresses in %.1fs, %.0f/s; %d records left", size, r.EmptySeconds, r.EmptyPerSec, r.RecordsEnd)
	if r.RecordsEnd != 0 {
		return r, fmt.Errorf("empty: %d records left after releasing every address", r.RecordsEnd)
	}
	return r, nil
}

// allocRequest is the eth0 ADD of p from pool (the CNI configuration's default_ipv4_ippool).
func allocRequest(p *pod, pool string) *ipam.Request {
	return &ipam.Request{PodNamespace: "scale", PodName: p.name, PodUID: p.uid, NodeName: p.agent.node,
		IfName: "eth0", DefaultIPv4Pools: []string{pool}}
}

// tooLarge counts the errors that say an object outgrew what the apiserver or etcd accept.
func tooLarge(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "too large") {
			n++
		}
	}
	return n
}

// poolSpec is a pool of size addresses (a multiple of 32, at most 65,536), placed in a subnet
// starting at base, in block format or in the status format.
type poolSpec struct {
	name   string
	base   netip.Addr
	size   int
	blocks bool
}

// place returns the pool's subnet, the smallest from base with twice its size and at least 128
// addresses, and its first address, a quarter into the subnet: its addresses fill whole blocks of
// 32 and are clear of the subnet's first and last address.
func (p poolSpec) place() (netip.Prefix, netip.Addr) {
	host := 7
	for 1<<host < 2*p.size {
		host++
	}
	b := p.base.As4()
	first := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) + (1<<host)/4
	return netip.PrefixFrom(p.base, 32-host), netip.AddrFrom4([4]byte{byte(first >> 24), byte(first >> 16), byte(first >> 8), byte(first)})
}

// createPool creates the pool of spec.
func createPool(ctx context.Context, c client.Client, spec poolSpec) (*v2beta1.SpiderIPPool, error) {
	subnet, first := spec.place()
	last := first
	for range spec.size - 1 {
		last = last.Next()
	}
	if !subnet.Contains(first) || !subnet.Contains(last) || subnet.Masked() != subnet {
		return nil, fmt.Errorf("pool %s: %s-%s outside %s", spec.name, first, last, subnet)
	}
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: spec.name},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: subnet.String(), IPs: []string{ip.Range{First: first, Last: last}.String()}},
	}
	if spec.blocks {
		// What the controller's conversion sets: the pool's records live in SpiderIPBlocks.
		p.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	}
	if err := c.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("create pool %s: %w", spec.name, err)
	}
	return p, nil
}

// blockRecords reads the blocks of pool live and their records by address; an address recorded in
// two blocks is an error.
func blockRecords(ctx context.Context, c client.Client, pool string) ([]ipblock.SpiderIPBlock, map[netip.Addr]ipblock.BlockRecord, error) {
	var list ipblock.SpiderIPBlockList
	if err := c.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: pool}); err != nil {
		return nil, nil, fmt.Errorf("list blocks of %s: %w", pool, err)
	}
	out := map[netip.Addr]ipblock.BlockRecord{}
	for _, b := range list.Items {
		for k, rec := range b.Spec.Records {
			a, err := netip.ParseAddr(k)
			if err != nil {
				return nil, nil, fmt.Errorf("block %s: record %q: %w", b.Name, k, err)
			}
			if _, dup := out[a]; dup {
				return nil, nil, fmt.Errorf("pool %s: %s recorded in two blocks", pool, a)
			}
			out[a] = rec
		}
	}
	return list.Items, out, nil
}

func mib(n int) float64 { return float64(n) / (1 << 20) }
