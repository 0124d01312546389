package blockstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// nodeBlocks reads blocks as a node's informer does: only those with the node's holder label.
type nodeBlocks struct {
	client.Client
	node string
}

func (r nodeBlocks) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	sel := lo.LabelSelector
	if sel == nil {
		sel = labels.Everything()
	}
	req, err := labels.NewRequirement(ipblock.HolderLabel(r.node), selection.Equals, []string{"true"})
	if err != nil {
		return err
	}
	lo.LabelSelector = sel.Add(*req)
	return r.Client.List(ctx, list, lo)
}

func newClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblock.AddToScheme(s))
	b := fake.NewClientBuilder().WithScheme(s)
	for _, o := range objs {
		b = b.WithObjects(o)
		if p, ok := o.(*v2beta1.SpiderIPPool); ok {
			b = b.WithStatusSubresource(p)
		}
	}
	return b.Build()
}

func pool(name, subnet string, opts ...build.Option) *v2beta1.SpiderIPPool {
	p := build.Pool(name, subnet, opts...)
	p.UID = types.UID("7c3e91d2-0000-4000-8000-" + fmt.Sprintf("%012x", len(name)))
	return p
}

func newStore(t *testing.T, c client.Client, node string, bits int) *Store {
	t.Helper()
	s, err := New(c, nodeBlocks{Client: c, node: node}, c, Options{NodeName: node, Bits: bits})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allocate asks for an address as the IPAM core does: reserved addresses excluded.
func allocate(s *Store, poolName, uid string) (netip.Addr, bool, error) {
	var addr netip.Addr
	var reused bool
	err := s.UpdatePool(context.Background(), poolName, func(st *ipam.PoolState) error {
		reserved, err := s.Reserved(context.Background(), st.Version())
		if err != nil {
			return err
		}
		a, r, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/" + uid, PodUID: uid}, Reserved: reserved})
		addr, reused = a, r
		return err
	})
	return addr, reused, err
}

// release frees addr of uid in poolName as the IPAM core does.
func release(t *testing.T, s *Store, poolName string, addr netip.Addr, uid string) {
	t.Helper()
	if err := s.UpdatePool(context.Background(), poolName, func(st *ipam.PoolState) error { st.Release(addr, uid); return nil }); err != nil {
		t.Fatal(err)
	}
}

// fill allocates from poolName, for UIDs prefix0, prefix1, ..., until it is exhausted, and
// returns the addresses given.
func fill(t *testing.T, s *Store, poolName, prefix string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for i := 0; ; i++ {
		a, _, err := allocate(s, poolName, fmt.Sprint(prefix, i))
		if errors.Is(err, ipam.ErrPoolExhausted) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
}

// blockRecords reads every block of a pool live and checks the block invariants: each record
// inside its block's range, each address once, holder labels matching the records' nodes.
func blockRecords(t *testing.T, c client.Client, poolName string) map[netip.Addr]ipblock.BlockRecord {
	t.Helper()
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list, client.MatchingLabels{ipblock.LabelPool: poolName}); err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]ipblock.BlockRecord{}
	for _, b := range list.Items {
		prefix := netip.MustParsePrefix(b.Spec.CIDR)
		wantHolders := map[string]bool{}
		if b.Spec.Node != "" {
			wantHolders[ipblock.HolderLabel(b.Spec.Node)] = true
		}
		for k, r := range b.Spec.Records {
			a := netip.MustParseAddr(k)
			if !prefix.Contains(a) {
				t.Errorf("block %s records %s outside %s", b.Name, a, prefix)
			}
			if prev, dup := out[a]; dup {
				t.Errorf("%s recorded twice: %+v and %+v", a, prev, r)
			}
			out[a] = r
			wantHolders[ipblock.HolderLabel(r.Node)] = true
		}
		for k := range b.Labels {
			if strings.HasPrefix(k, ipblock.HolderLabelPrefix) && !wantHolders[k] {
				t.Errorf("block %s carries holder label %s of no record", b.Name, k)
			}
			delete(wantHolders, k)
		}
		if len(wantHolders) > 0 {
			t.Errorf("block %s lacks holder labels %v", b.Name, wantHolders)
		}
	}
	return out
}

// Ten nodes allocating from one pool at once: each claims its own blocks, nobody gets an address
// twice, and every answer is backed by a block record naming the node.
func TestTenNodesOnePool(t *testing.T) {
	p := pool("p", "10.6.0.0/16", build.IPs("10.6.0.1-10.6.1.254"))
	c := newClient(t, p)
	stores := make([]*Store, 10)
	for i := range stores {
		stores[i] = newStore(t, c, fmt.Sprintf("node-%d", i), 0)
	}
	var (
		mu  sync.Mutex
		got = map[netip.Addr]string{}
		wg  sync.WaitGroup
	)
	for i := range 300 {
		wg.Go(func() {
			uid := fmt.Sprintf("uid-%d", i)
			a, _, err := allocate(stores[i%10], "p", uid)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", uid, err)
				return
			}
			if other, dup := got[a]; dup {
				t.Errorf("%s given to %s and %s", a, other, uid)
			}
			got[a] = uid
		})
	}
	wg.Wait()
	recs := blockRecords(t, c, "p")
	if len(recs) != len(got) {
		t.Fatalf("%d block records for %d answers", len(recs), len(got))
	}
	for a, uid := range got {
		r, ok := recs[a]
		var i int
		fmt.Sscanf(uid, "uid-%d", &i)
		if !ok || r.PodUID != uid || r.Node != fmt.Sprintf("node-%d", i%10) {
			t.Errorf("%s: answered to %s, block record %+v", a, uid, r)
		}
	}
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	for _, b := range list.Items {
		for _, r := range b.Spec.Records {
			if r.Node != b.Spec.Node {
				t.Errorf("block %s of %s holds a record of %s: borrowed although the pool has unclaimed blocks", b.Name, b.Spec.Node, r.Node)
			}
		}
	}
}

// The public-cloud guide's exact-fit pool: five addresses, one block. The first node claims it;
// the others borrow from it; the sixth address does not exist; releases free borrowed addresses.
func TestExactFitPoolBorrows(t *testing.T) {
	p := pool("cloud", "172.16.0.0/16", build.IPs("172.16.0.10-172.16.0.14"))
	c := newClient(t, p)
	a, b, cc := newStore(t, c, "a", 0), newStore(t, c, "b", 0), newStore(t, c, "c", 0)
	got := map[netip.Addr]string{}
	for i, s := range []*Store{a, b, cc, b, cc} {
		uid := fmt.Sprintf("uid-%d", i)
		addr, _, err := allocate(s, "cloud", uid)
		if err != nil {
			t.Fatalf("%s: %v", uid, err)
		}
		if other, dup := got[addr]; dup {
			t.Fatalf("%s given to %s and %s", addr, other, uid)
		}
		got[addr] = uid
	}
	if _, _, err := allocate(a, "cloud", "uid-5"); !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("sixth allocation: %v, want ErrPoolExhausted", err)
	}
	recs := blockRecords(t, c, "cloud")
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	// A retried ADD on the borrowing node finds its address through the holder label.
	for addr, uid := range got {
		if recs[addr].Node != "b" {
			continue
		}
		again, reused, err := allocate(b, "cloud", uid)
		if err != nil || again != addr || !reused {
			t.Fatalf("retry of %s: %s reused=%v err=%v, want %s", uid, again, reused, err, addr)
		}
		err = b.UpdatePool(context.Background(), "cloud", func(st *ipam.PoolState) error {
			if !st.Release(addr, uid) {
				return fmt.Errorf("release of %s found no record", addr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	recs = blockRecords(t, c, "cloud")
	for _, r := range recs {
		if r.Node == "b" {
			t.Errorf("record of b left after its releases: %+v", r)
		}
	}
	if len(recs) != 3 {
		t.Errorf("%d records after b released its two, want 3", len(recs))
	}
}

// A node that holds nothing in a block (a controller's GC, a StatefulSet pod's new node) still
// releases and transfers there: the miss makes the store load the block.
func TestMissLoadsTheBlock(t *testing.T) {
	p := pool("p", "10.7.0.0/24", build.IPs("10.7.0.1-10.7.0.100"))
	c := newClient(t, p)
	a, b := newStore(t, c, "a", 0), newStore(t, c, "b", 0)
	addr, _, err := allocate(a, "p", "old")
	if err != nil {
		t.Fatal(err)
	}
	moved := false
	err = b.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		moved = st.Transfer(addr, ipam.Owner{Pod: "ns/old", PodUID: "old"}, ipam.Owner{Pod: "ns/old", PodUID: "new"})
		return nil
	})
	if err != nil || !moved {
		t.Fatalf("transfer on b: moved=%v err=%v", moved, err)
	}
	if r := blockRecords(t, c, "p")[addr]; r.PodUID != "new" || r.Node != "b" {
		t.Fatalf("after transfer: %+v, want new on b", r)
	}
	// b now holds a record in a's block: its view has it, so a retry is idempotent.
	again, reused, err := allocate(b, "p", "new")
	if err != nil || again != addr || !reused {
		t.Fatalf("retry on b: %s reused=%v err=%v", again, reused, err)
	}
	// The old incarnation's late release frees nothing.
	err = a.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error { st.Release(addr, "old"); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if r := blockRecords(t, c, "p")[addr]; r.PodUID != "new" {
		t.Fatalf("late release of the old UID freed %s: %+v", addr, r)
	}
	// Releasing by UID alone (ReleaseOwner): the pod's node finds its records in its own view,
	// held in another node's block.
	var freed []netip.Addr
	err = b.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		freed = st.ReleaseOwner("new")
		return nil
	})
	if err != nil || len(freed) != 1 || freed[0] != addr {
		t.Fatalf("ReleaseOwner on the pod's node: %v %v", freed, err)
	}
	if r, ok := blockRecords(t, c, "p")[addr]; ok {
		t.Fatalf("record left after ReleaseOwner: %+v", r)
	}
	// The controller's store (every block) releases any UID's records.
	third, _, err := allocate(b, "p", "third")
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := New(c, c, c, Options{AllBlocks: true})
	if err != nil {
		t.Fatal(err)
	}
	err = ctl.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		freed = st.ReleaseOwner("third")
		return nil
	})
	if err != nil || len(freed) != 1 || freed[0] != third {
		t.Fatalf("ReleaseOwner by the controller: %v %v", freed, err)
	}
	// An address outside the subnet is no record, not an error.
	err = b.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		if st.Release(netip.MustParseAddr("192.0.2.1"), "x") {
			return errors.New("released an address outside the pool")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Reserved addresses are never handed out, whatever block covers them, and the pool is
// exhausted exactly when its unreserved addresses are; IPv6 pools work the same way.
func TestReservedAndIPv6(t *testing.T) {
	for _, tc := range []struct {
		name, subnet, ips, reserved string
		want                        int
	}{
		{"v4", "10.8.0.0/24", "10.8.0.1-10.8.0.70", "10.8.0.30-10.8.0.39", 60},
		{"v6", "fd00:8::/64", "fd00:8::1-fd00:8::46", "fd00:8::1e-fd00:8::27", 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pool("p"+tc.name, tc.subnet, build.IPs(tc.ips))
			r := build.ReservedIP("r", build.IPs(tc.reserved))
			c := newClient(t, p, r)
			stores := []*Store{newStore(t, c, "a", 3), newStore(t, c, "b", 3)}
			reserved, err := ip.ParseSet([]string{tc.reserved}, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				addr, _, err := allocate(stores[i%2], p.Name, fmt.Sprint("u", i))
				if err != nil {
					t.Fatalf("allocation %d: %v", i, err)
				}
				if reserved.Contains(addr) {
					t.Fatalf("reserved %s handed out", addr)
				}
			}
			if _, _, err := allocate(stores[0], p.Name, "last"); !errors.Is(err, ipam.ErrPoolExhausted) {
				t.Fatalf("allocation past the unreserved addresses: %v", err)
			}
			if n := len(blockRecords(t, c, p.Name)); n != tc.want {
				t.Fatalf("%d records, want %d", n, tc.want)
			}
		})
	}
}

// A function's failure writes nothing; a pool that does not exist is ErrPoolNotFound.
func TestFailureAndMissingPool(t *testing.T) {
	p := pool("p", "10.9.0.0/24", build.IPs("10.9.0.1-10.9.0.10"))
	c := newClient(t, p)
	s := newStore(t, c, "a", 0)
	boom := errors.New("boom")
	err := s.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
		if _, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: "ns/x", PodUID: "x"}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if n := len(blockRecords(t, c, "p")); n != 0 {
		t.Fatalf("%d records after a failed function", n)
	}
	if _, _, err := allocate(s, "nope", "x"); !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Fatalf("missing pool: %v", err)
	}
}

// A node returns a block that stayed empty long enough, never one a borrower wrote to meanwhile,
// and allocates again afterwards by claiming anew.
func TestReturnEmptyBlocks(t *testing.T) {
	p := pool("p", "10.30.0.0/24", build.IPs("10.30.0.1-10.30.0.60"))
	c := newClient(t, p)
	a := newStore(t, c, "a", 0)
	addr, _, err := allocate(a, "p", "u1")
	if err != nil {
		t.Fatal(err)
	}
	release(t, a, "p", addr, "u1")
	blockCount := func() int {
		var list ipblock.SpiderIPBlockList
		if err := c.List(context.Background(), &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	if n := blockCount(); n != 1 {
		t.Fatalf("%d blocks after one allocation, want 1", n)
	}
	empty := map[string]emptySince{}
	t0 := time.Now()
	if n, err := a.returnEmpty(context.Background(), t0, empty); err != nil || n != 0 {
		t.Fatalf("first scan returned %d, %v: it must only note the empty block", n, err)
	}
	// A borrower writes into the block between the scans: its resourceVersion changes, the clock
	// starts again.
	b := newStore(t, c, "b", 0)
	var list ipblock.SpiderIPBlockList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	blk := list.Items[0].DeepCopy()
	blk.Spec.Records = map[string]ipblock.BlockRecord{"10.30.0.2": {Pod: "ns/x", PodUID: "x", Node: "b"}}
	if err := c.Update(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.returnEmpty(context.Background(), t0.Add(DefaultReturnAfter+time.Second), empty); n != 0 || blockCount() != 1 {
		t.Fatalf("a block holding a borrowed record was returned")
	}
	release(t, b, "p", netip.MustParseAddr("10.30.0.2"), "x")
	t1 := t0.Add(2 * DefaultReturnAfter)
	if n, _ := a.returnEmpty(context.Background(), t1, empty); n != 0 {
		t.Fatal("a block was returned on the scan that first saw it empty at a new version")
	}
	if n, err := a.returnEmpty(context.Background(), t1.Add(DefaultReturnAfter-time.Second), empty); n != 0 || err != nil {
		t.Fatalf("returned before ReturnAfter: %d, %v", n, err)
	}
	if n, err := a.returnEmpty(context.Background(), t1.Add(DefaultReturnAfter), empty); n != 1 || err != nil {
		t.Fatalf("empty block not returned after ReturnAfter: %d, %v", n, err)
	}
	if n := blockCount(); n != 0 {
		t.Fatalf("%d blocks left after the return", n)
	}
	if _, _, err := allocate(a, "p", "u2"); err != nil {
		t.Fatalf("allocation after returning the block: %v", err)
	}
	if n := blockCount(); n != 1 {
		t.Fatalf("%d blocks after allocating again, want 1", n)
	}
}

// A block's range is read back from its name, for the list of names that decides claims; names of
// other pools, other incarnations or no block are not taken for one.
func TestBlockPrefix(t *testing.T) {
	long := pool(strings.Repeat("p", 250), "10.40.0.0/16")
	v4 := pool("v4", "10.40.0.0/16")
	v6 := pool("v6", "fd00:40::/64")
	for _, tc := range []struct {
		name  string
		pool  *v2beta1.SpiderIPPool
		bname string
		want  string
	}{
		{"IPv4", v4, blocksName(v4, "10.40.1.32/27"), "10.40.1.32/27"},
		{"IPv6", v6, blocksName(v6, "fd00:40::20/123"), "fd00:40::20/123"},
		{"long pool name, hashed", long, blocksName(long, "10.40.0.0/27"), "10.40.0.0/27"},
		{"another pool's block", v4, blocksName(v6, "fd00:40::20/123"), ""},
		{"another incarnation", v4, strings.Replace(blocksName(v4, "10.40.1.32/27"), ".7c3e91d2.", ".00000000.", 1), ""},
		{"not aligned", v4, "v4.7c3e91d2.10-40-1-33", ""},
		{"no address", v4, "v4", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subnet, _ := tc.pool.Spec.SubnetPrefix()
			layout, err := blocks.NewLayout(subnet, blocks.DefaultBits)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := blockPrefix(tc.bname, tc.pool, layout)
			if tc.want == "" {
				if ok {
					t.Fatalf("%q read as %s", tc.bname, got)
				}
				return
			}
			if !ok || got != netip.MustParsePrefix(tc.want) {
				t.Fatalf("%q: %s %v, want %s", tc.bname, got, ok, tc.want)
			}
		})
	}
}

func blocksName(p *v2beta1.SpiderIPPool, prefix string) string {
	return blocks.Name(p.Name, string(p.UID), netip.MustParsePrefix(prefix))
}
