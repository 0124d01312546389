package blockstore

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func inBlocks(p *v2beta1.SpiderIPPool) *v2beta1.SpiderIPPool {
	p.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	return p
}

func statusRecords(t *testing.T, c client.Client, name string) int {
	t.Helper()
	var p v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	a, err := p.Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	return len(a)
}

// Each pool's updates land in its own format; a pool converted under kubestore is refused there
// and the update follows it into blocks.
func TestRouterByFormat(t *testing.T) {
	old := pool("old", "10.20.0.0/24", build.IPs("10.20.0.1-10.20.0.50"))
	blk := inBlocks(pool("blk", "10.21.0.0/24", build.IPs("10.21.0.1-10.21.0.50")))
	c := newClient(t, old, blk)
	bs := newStore(t, c, "n1", 0)
	r := NewRouter(bs, kubestore.New(c, c, kubestore.Options{NodeName: "n1"}))
	alloc := func(poolName, uid string) netip.Addr {
		t.Helper()
		var got netip.Addr
		err := r.UpdatePool(context.Background(), poolName, func(st *ipam.PoolState) error {
			a, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/" + uid, PodUID: uid}, Offset: r.SearchOffset(poolName)})
			got = a
			return err
		})
		if err != nil {
			t.Fatalf("allocate from %s: %v", poolName, err)
		}
		return got
	}
	alloc("old", "u1")
	alloc("blk", "u2")
	if n := statusRecords(t, c, "old"); n != 1 {
		t.Errorf("status-format pool: %d status records, want 1", n)
	}
	if n := len(blockRecords(t, c, "old")); n != 0 {
		t.Errorf("status-format pool: %d block records, want 0", n)
	}
	if n := statusRecords(t, c, "blk"); n != 0 {
		t.Errorf("block-format pool: %d status records, want 0", n)
	}
	if n := len(blockRecords(t, c, "blk")); n != 1 {
		t.Errorf("block-format pool: %d block records, want 1", n)
	}
	holders, err := r.Holders(context.Background(), "u2")
	if err != nil || len(holders) != 1 || holders[0] != "blk" {
		t.Errorf("Holders(u2) = %v, %v; want [blk]", holders, err)
	}

	// kubestore refuses a converted pool, whatever its cache said.
	var p v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: "old"}, &p); err != nil {
		t.Fatal(err)
	}
	inBlocks(&p)
	if err := c.Update(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
	ks := kubestore.New(c, c, kubestore.Options{NodeName: "n1"})
	err = ks.UpdatePool(context.Background(), "old", func(st *ipam.PoolState) error {
		_, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/u3", PodUID: "u3"}})
		return err
	})
	if !errors.Is(err, ipam.ErrInBlocks) {
		t.Fatalf("kubestore on a converted pool: %v, want ErrInBlocks", err)
	}
	if n := statusRecords(t, c, "old"); n != 1 {
		t.Errorf("kubestore wrote a converted pool's status: %d records", n)
	}
	alloc("old", "u3")
	if n := len(blockRecords(t, c, "old")); n != 1 {
		t.Errorf("after conversion the update went to %d block records, want 1", n)
	}
}

// Without the SpiderIPBlock kind, a block-format pool is refused with what to do, and a status
// pool works as before.
func TestRouterWithoutBlocks(t *testing.T) {
	c := newClient(t, pool("old", "10.20.0.0/24", build.IPs("10.20.0.1-10.20.0.50")), inBlocks(pool("blk", "10.21.0.0/24", build.IPs("10.21.0.1-10.21.0.50"))))
	r := NewRouter(nil, kubestore.New(c, c, kubestore.Options{NodeName: "n1"}))
	fn := func(st *ipam.PoolState) error {
		_, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/u", PodUID: "u"}})
		return err
	}
	if err := r.UpdatePool(context.Background(), "old", fn); err != nil {
		t.Fatalf("status pool: %v", err)
	}
	err := r.UpdatePool(context.Background(), "blk", fn)
	if err == nil || !strings.Contains(err.Error(), "install the chart's CRDs") {
		t.Fatalf("block pool without the kind: %v", err)
	}
}

// The controller's store (AllBlocks) records an address in a range no node claimed by creating a
// block of nobody, and Records reads the union back.
func TestAllBlocksRecordsAnywhere(t *testing.T) {
	p := inBlocks(pool("p", "10.22.0.0/24", build.IPs("10.22.0.1-10.22.0.200")))
	c := newClient(t, p)
	ctl, err := New(c, c, c, Options{AllBlocks: true})
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("10.22.0.150")
	err = ctl.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		only := mustSet(t, "10.22.0.150")
		a, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/x", PodUID: "x"}, Reserved: st.Usable().Subtract(only)})
		if err == nil && a != want {
			err = errors.New("wrong address " + a.String())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Records(context.Background(), c, p)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := recs[want]; len(recs) != 1 || !ok || r.PodUID != "x" || r.Node != "" {
		t.Fatalf("Records = %+v", recs)
	}
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Spec.Node != "" || list.Items[0].Spec.CIDR != "10.22.0.128/27" {
		t.Fatalf("blocks: %+v", list.Items)
	}
	// A node's store sees the block of nobody as claimed and allocates elsewhere.
	a, _, err := allocate(newStore(t, c, "n1", 0), "p", "y")
	if err != nil || netip.MustParsePrefix("10.22.0.128/27").Contains(a) {
		t.Fatalf("node allocation: %s, %v", a, err)
	}
}

func mustSet(t *testing.T, entries ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseSet(entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
