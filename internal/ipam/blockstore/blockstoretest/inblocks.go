package blockstoretest

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
)

// InBlocks returns a copy of pool in block format and the SpiderIPBlocks (blocks.DefaultBits, in
// address order) holding the records of its status, each in the block of its address, the blocks
// and the records of node ("" for blocks of nobody). The copy's status is what the controller's
// mirror leaves past its bound: allocatedIPs left out, allocatedIPCount exact, annotation
// AnnoRecordsInBlocks; so code that still reads the status sees no record and fails its test. A
// pool without a UID gets one, since a block names its pool's UID.
func InBlocks(t testing.TB, pool *v2beta1.SpiderIPPool, node string) (*v2beta1.SpiderIPPool, []*ipblock.SpiderIPBlock) {
	t.Helper()
	p := pool.DeepCopy()
	if p.UID == "" {
		p.UID = types.UID("uid-pool-" + p.Name)
	}
	allocs, err := p.Status.Allocations()
	if err != nil {
		t.Fatalf("IPPool %q: %v", p.Name, err)
	}
	records := make(map[netip.Addr]ipblock.BlockRecord, len(allocs))
	for k, a := range allocs {
		addr, err := ip.ParseAddr(k)
		if err != nil {
			t.Fatalf("IPPool %q: record %q: %v", p.Name, k, err)
		}
		records[addr] = ipblock.BlockRecord{Pod: a.NamespacedName, PodUID: a.PodUID, Node: node}
	}
	subnet, err := p.Spec.SubnetPrefix()
	if err != nil {
		t.Fatalf("IPPool %q: %v", p.Name, err)
	}
	layout, err := blocks.NewLayout(subnet, blocks.DefaultBits)
	if err != nil {
		t.Fatalf("IPPool %q: %v", p.Name, err)
	}
	split, err := blocks.Split(layout, records)
	if err != nil {
		t.Fatalf("IPPool %q: %v", p.Name, err)
	}
	var out []*ipblock.SpiderIPBlock
	for _, prefix := range slices.SortedFunc(maps.Keys(split), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		out = append(out, blockstore.NewBlock(p, prefix, node, split[prefix]))
	}

	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[ipblock.AnnoIPAMFormat] = ipblock.FormatBlocks
	p.Annotations[ipblock.AnnoRecordsInBlocks] = "true"
	count := int64(len(records))
	p.Status.AllocatedIPs, p.Status.AllocatedIPCount = nil, &count
	return p, out
}
