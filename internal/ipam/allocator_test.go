package ipam_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/ipamtest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

var v4only = ipam.Config{EnableIPv4: true, InstallNamespace: "kube-system"}

func podRequest(uid string, pools ...string) *ipam.Request {
	return &ipam.Request{
		PodNamespace: "app", PodName: "pod-" + uid, PodUID: uid,
		NodeName: "node1", IfName: "eth0",
		DefaultIPv4Pools: pools,
	}
}

func addrs(res *ipam.Result) []string {
	var out []string
	for _, c := range res.IPs {
		out = append(out, c.Address.String())
	}
	return out
}

func checkStore(t *testing.T, s *ipamtest.Store) {
	t.Helper()
	pools, err := s.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := ipamtest.CheckInvariants(pools); err != nil {
		t.Fatal(err)
	}
}

func records(t *testing.T, s *ipamtest.Store, pool string) map[string]string {
	t.Helper()
	p := s.Pool(pool)
	if p == nil {
		t.Fatalf("no pool %q", pool)
	}
	st, err := ipam.NewPoolState(p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for a, o := range st.All() {
		out[a.String()] = o.PodUID
	}
	return out
}

func TestAllocateResult(t *testing.T) {
	store := ipamtest.NewStore(
		build.Pool("v4", "10.6.0.0/16", build.IPs("10.6.212.100-10.6.212.200"), build.Gateway("10.6.0.1"), build.Route("172.16.0.0/16", "10.6.0.254"), build.Default()),
		build.Pool("v6", "fd00:10:6::/64", build.IPs("fd00:10:6::100-fd00:10:6::200"), build.Gateway("fd00:10:6::1"), build.Default()),
	)
	a := ipam.New(store, ipam.Config{EnableIPv4: true, EnableIPv6: true})
	req := podRequest("u1")
	req.DefaultIPv4Pools = nil
	req.PodAnnotations = map[string]string{
		v2beta1.AnnoPodRoutes: `[{"dst":"172.10.40.0/24","gw":"10.6.0.253"},{"dst":"192.168.0.0/24","gw":"192.168.1.1"},{"dst":"fd99::/64","gw":"fd00:10:6::2"}]`,
	}
	got, err := a.Allocate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := &ipam.Result{
		NIC: "eth0",
		IPs: []ipam.IPConfig{
			{
				Version: 4, Address: netip.MustParsePrefix("10.6.212.100/16"), Gateway: netip.MustParseAddr("10.6.0.1"), Pool: "v4",
				Routes: []ipam.Route{{Dst: netip.MustParsePrefix("172.16.0.0/16"), Gw: netip.MustParseAddr("10.6.0.254")}},
			},
			{Version: 6, Address: netip.MustParsePrefix("fd00:10:6::100/64"), Gateway: netip.MustParseAddr("fd00:10:6::1"), Pool: "v6"},
		},
		Routes: []ipam.Route{
			{Dst: netip.MustParsePrefix("172.10.40.0/24"), Gw: netip.MustParseAddr("10.6.0.253")},
			{Dst: netip.MustParsePrefix("fd99::/64"), Gw: netip.MustParseAddr("fd00:10:6::2")},
		},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("Allocate (-want +got):\n%s", diff)
	}
	checkStore(t, store)

	// cleangateway from ipam.spidernet.io/ippools drops the gateway.
	req = podRequest("u2")
	req.PodAnnotations = map[string]string{v2beta1.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["v4"],"ipv6":["v6"],"cleangateway":true}]`}
	got, err = a.Allocate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CleanGateway || got.IPs[0].Gateway.IsValid() || got.IPs[1].Gateway.IsValid() {
		t.Fatalf("gateway not cleaned: %+v", got)
	}

	req.PodUID = "u3"
	req.PodAnnotations[v2beta1.AnnoPodRoutes] = `[{"dst":"x"}]`
	if _, err := a.Allocate(context.Background(), req); !errors.Is(err, ipam.ErrInvalidAnnotation) {
		t.Fatalf("got %v, want ErrInvalidAnnotation", err)
	}
}

func TestAllocateExhaustionAcrossPools(t *testing.T) {
	store := ipamtest.NewStore(
		build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1")),
		build.Pool("b", "10.2.0.0/16", build.IPs("10.2.0.1")),
	)
	a := ipam.New(store, v4only)
	ctx := context.Background()
	r1, err := a.Allocate(ctx, podRequest("p1", "a", "b"))
	if err != nil || r1.IPs[0].Address.String() != "10.1.0.1/16" {
		t.Fatalf("p1: %v %v", r1, err)
	}
	r2, err := a.Allocate(ctx, podRequest("p2", "a", "b"))
	if err != nil || r2.IPs[0].Address.String() != "10.2.0.1/16" || r2.IPs[0].Pool != "b" {
		t.Fatalf("p2 did not skip the exhausted pool: %v %v", r2, err)
	}
	_, err = a.Allocate(ctx, podRequest("p3", "a", "b"))
	const want = "failed to allocate any IPv4 IP address to NIC eth0 from IPPools [a b]: all IP addresses used out"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var ae *ipam.AllocationError
	if !errors.Is(err, ipam.ErrPoolExhausted) || !errors.As(err, &ae) || len(ae.Errs) != 2 {
		t.Fatalf("error %v does not carry the per-pool failures", err)
	}
	checkStore(t, store)

	// Releasing p1 makes room in a again.
	if err := a.Release(ctx, &ipam.ReleaseRequest{PodUID: "p1", IPs: []ipam.PoolIP{{Pool: "a", Addr: netip.MustParseAddr("10.1.0.1")}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Allocate(ctx, podRequest("p3", "a", "b")); err != nil || r.IPs[0].Pool != "a" {
		t.Fatalf("p3: %v %v", r, err)
	}
}

func TestAllocateMaxRecordsAndReserved(t *testing.T) {
	store := ipamtest.NewStore(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.9")))
	store.PutReserved(build.ReservedIP("r", build.IPs("10.1.0.1-10.1.0.2")))
	store.PutReserved(build.ReservedIP("r6", build.IPs("fd00::1")))
	cfg := v4only
	cfg.MaxRecords = 2
	a := ipam.New(store, cfg)
	ctx := context.Background()
	var got []string
	for _, uid := range []string{"p1", "p2"} {
		r, err := a.Allocate(ctx, podRequest(uid, "a"))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, addrs(r)...)
	}
	if want := []string{"10.1.0.3/16", "10.1.0.4/16"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (reserved IPs skipped)", got, want)
	}
	_, err := a.Allocate(ctx, podRequest("p3", "a"))
	if !errors.Is(err, ipam.ErrPoolExhausted) || !strings.Contains(err.Error(), `a: IPPool "a" holds 2 IP records, the maximum: all IP addresses used out`) {
		t.Fatalf("got %v", err)
	}
}

func TestAllocateDualStackRollback(t *testing.T) {
	store := ipamtest.NewStore(
		build.Pool("v4", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.9"), build.Default()),
		build.Pool("v6", "fd00::/64", build.IPs("fd00::1"), build.Default()),
	)
	a := ipam.New(store, ipam.Config{EnableIPv4: true, EnableIPv6: true})
	ctx := context.Background()
	req := podRequest("p1")
	req.DefaultIPv4Pools = nil
	if _, err := a.Allocate(ctx, req); err != nil {
		t.Fatal(err)
	}
	req2 := podRequest("p2")
	req2.DefaultIPv4Pools = nil
	_, err := a.Allocate(ctx, req2)
	if !errors.Is(err, ipam.ErrPoolExhausted) || !strings.Contains(err.Error(), "failed to allocate any IPv6 IP address to NIC eth0 from IPPools [v6]") {
		t.Fatalf("got %v", err)
	}
	if got := records(t, store, "v4"); len(got) != 1 || got["10.1.0.1"] != "p1" {
		t.Fatalf("IPv4 record of p2 not rolled back: %v", got)
	}
	checkStore(t, store)

	// A retry of p1 that fails on IPv6 keeps the IPv4 address p1 already held.
	store.Put(build.Pool("v6", "fd00::/64", build.IPs("fd00::1"), build.Default(), build.Allocated("fd00::1", "app/x", "x")))
	if _, err := a.Allocate(ctx, req); !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("got %v", err)
	}
	if got := records(t, store, "v4"); got["10.1.0.1"] != "p1" {
		t.Fatalf("retry released an address it did not create: %v", got)
	}
}

func TestAllocateIdempotent(t *testing.T) {
	store := ipamtest.NewStore(
		build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1")),
		build.Pool("b", "10.2.0.0/16", build.IPs("10.2.0.1-10.2.0.9")),
	)
	a := ipam.New(store, v4only)
	ctx := context.Background()
	if _, err := a.Allocate(ctx, podRequest("x", "a")); err != nil {
		t.Fatal(err)
	}
	first, err := a.Allocate(ctx, podRequest("p", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	// Room appears in the earlier pool; the retry still returns what p holds.
	if err := a.Release(ctx, &ipam.ReleaseRequest{PodUID: "x", IPs: []ipam.PoolIP{{Pool: "a"}}}); err != nil {
		t.Fatal(err)
	}
	again, err := a.Allocate(ctx, podRequest("p", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(addrs(first), addrs(again)) || again.IPs[0].Pool != "b" {
		t.Fatalf("retry got %v, first %v", addrs(again), addrs(first))
	}
	if got := records(t, store, "b"); len(got) != 1 {
		t.Fatalf("retry added a record: %v", got)
	}
	if got := records(t, store, "a"); len(got) != 0 {
		t.Fatalf("retry took a second address: %v", got)
	}
	writes, _ := store.Stats()
	if _, err := a.Allocate(ctx, podRequest("p", "a", "b")); err != nil {
		t.Fatal(err)
	}
	if w, _ := store.Stats(); w != writes {
		t.Fatalf("an idempotent retry wrote %d times", w-writes)
	}
}

func TestAllocateSecondNICFromSamePool(t *testing.T) {
	store := ipamtest.NewStore(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.9")))
	a := ipam.New(store, v4only)
	ctx := context.Background()
	eth0, err := a.Allocate(ctx, podRequest("p", "a"))
	if err != nil {
		t.Fatal(err)
	}
	req := podRequest("p", "a")
	req.IfName = "net1"
	req.OtherNICIPs = []netip.Addr{eth0.IPs[0].Address.Addr()}
	net1, err := a.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if net1.IPs[0].Address == eth0.IPs[0].Address {
		t.Fatalf("net1 got eth0's address %s", net1.IPs[0].Address)
	}
	again, err := a.Allocate(ctx, req)
	if err != nil || again.IPs[0].Address != net1.IPs[0].Address {
		t.Fatalf("net1 retry: %v %v", again, err)
	}
}

func TestRelease(t *testing.T) {
	store := ipamtest.NewStore(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1-10.1.0.9")))
	a := ipam.New(store, v4only)
	ctx := context.Background()
	r, err := a.Allocate(ctx, podRequest("p", "a"))
	if err != nil {
		t.Fatal(err)
	}
	addr := r.IPs[0].Address.Addr()

	wrong := &ipam.ReleaseRequest{PodUID: "other", IPs: []ipam.PoolIP{{Pool: "a", Addr: addr}}}
	if err := a.Release(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	if got := records(t, store, "a"); got[addr.String()] != "p" {
		t.Fatalf("release with a wrong UID removed the record: %v", got)
	}

	right := &ipam.ReleaseRequest{PodUID: "p", IPs: []ipam.PoolIP{{Pool: "a", Addr: addr}, {Pool: "gone", Addr: addr}}}
	for range 2 {
		if err := a.Release(ctx, right); err != nil {
			t.Fatalf("release: %v", err)
		}
		if got := records(t, store, "a"); len(got) != 0 {
			t.Fatalf("record left: %v", got)
		}
	}
	checkStore(t, store)
	if err := a.Release(ctx, &ipam.ReleaseRequest{}); err == nil {
		t.Fatal("empty UID: want an error")
	}
}

// failingStore fails every update of one pool.
type failingStore struct {
	*ipamtest.Store
	pool string
	err  error
}

func (s failingStore) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	if name == s.pool {
		return s.err
	}
	return s.Store.UpdatePool(ctx, name, fn)
}

func TestAllocateStoreFailure(t *testing.T) {
	boom := errors.New("apiserver unavailable")
	store := failingStore{
		Store: ipamtest.NewStore(
			build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1"), build.Allocated("10.1.0.1", "app/x", "x")),
			build.Pool("b", "10.2.0.0/16", build.IPs("10.2.0.1")),
		),
		pool: "b", err: boom,
	}
	_, err := ipam.New(store, v4only).Allocate(context.Background(), podRequest("p", "a", "b"))
	if !errors.Is(err, boom) || errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("got %v: want the store error and not exhaustion", err)
	}
	if want := "from IPPools [a b]: a: all IP addresses used out; b: apiserver unavailable"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if err := ipam.New(store, v4only).Release(context.Background(), &ipam.ReleaseRequest{PodUID: "p", IPs: []ipam.PoolIP{{Pool: "b"}}}); !errors.Is(err, boom) {
		t.Fatalf("release: got %v", err)
	}
}

// staleStore serves a cached view taken before later changes.
type staleStore struct {
	*ipamtest.Store
	cached []*v2beta1.SpiderIPPool
}

func (s staleStore) Pools(context.Context) ([]*v2beta1.SpiderIPPool, error) { return s.cached, nil }

func TestAllocateRechecksFreshPool(t *testing.T) {
	inner := ipamtest.NewStore(
		build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1")),
		build.Pool("b", "10.2.0.0/16", build.IPs("10.2.0.1")),
	)
	cached, _ := inner.Pools(context.Background())
	inner.Put(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.1"), build.Disable()))
	inner.Delete("b")
	_, err := ipam.New(staleStore{Store: inner, cached: cached}, v4only).Allocate(context.Background(), podRequest("p", "a", "b"))
	if !errors.Is(err, ipam.ErrPoolUnavailable) || !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "a: IPPool unavailable: disabled; b: IPPool \"b\": IPPool not found") {
		t.Fatalf("got %v", err)
	}
}

func TestAllocateOffsetsSpread(t *testing.T) {
	store := ipamtest.NewStore(build.Pool("a", "10.1.0.0/16", build.IPs("10.1.0.0-10.1.0.99")))
	ctx := context.Background()
	agents := []struct {
		node   string
		offset uint64
	}{{"node1", 0}, {"node2", 50}, {"node3", 150}}
	var got []string
	for _, ag := range agents {
		cfg := v4only
		cfg.SearchOffset = func(pool string) uint64 {
			if pool != "a" {
				t.Errorf("offset asked for pool %q", pool)
			}
			return ag.offset
		}
		a := ipam.New(store, cfg)
		for _, suffix := range []string{"a", "b"} {
			r, err := a.Allocate(ctx, podRequest(ag.node+"-"+suffix, "a"))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.IPs[0].Address.Addr().String())
		}
	}
	// node3's offset 150 wraps to 50, where node2 already took two addresses.
	want := []string{"10.1.0.0", "10.1.0.1", "10.1.0.50", "10.1.0.51", "10.1.0.52", "10.1.0.53"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	checkStore(t, store)
}

// TestAllocateDefaultDualStackWithIPv4Pools runs the chart's default switches
// (ipam.enableIPv4 and ipam.enableIPv6 both true) against the guides'
// IPv4-only pools: the family no rule names a pool of is skipped (docs/design/behaviour.md#pool-selection),
// while a family that is asked for and cannot be served still fails
// the whole request and leaves no record behind.
func TestAllocateDefaultDualStackWithIPv4Pools(t *testing.T) {
	chartDefaults := ipam.Config{EnableIPv4: true, EnableIPv6: true, InstallNamespace: "kube-system"}
	pools := func() []*v2beta1.SpiderIPPool {
		return []*v2beta1.SpiderIPPool{
			build.Pool("v4", "10.6.0.0/16", build.IPs("10.6.212.100-10.6.212.101"), build.Gateway("10.6.0.1"), build.Default()),
			build.Pool("v6-off", "fd00:6::/64", build.IPs("fd00:6::10"), build.Disable()),
			build.Pool("v6-full", "fd00:7::/64", build.IPs("fd00:7::10"), build.Allocated("fd00:7::10", "app/x", "x")),
		}
	}
	tests := []struct {
		name     string
		req      func(r *ipam.Request)
		wantAddr []string
		wantErr  string
		errIs    error
	}{
		{
			name:     "cluster default IPv4 pool only",
			req:      func(r *ipam.Request) {},
			wantAddr: []string{"10.6.212.100/16"},
		},
		{
			name:     "SpiderMultusConfig ippools.ipv4 only",
			req:      func(r *ipam.Request) { r.DefaultIPv4Pools = []string{"v4"} },
			wantAddr: []string{"10.6.212.100/16"},
		},
		{
			name:     "pod annotation ipv4 only",
			req:      func(r *ipam.Request) { r.PodAnnotations = map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["v4"]}`} },
			wantAddr: []string{"10.6.212.100/16"},
		},
		{
			name: "IPv6 pool named but filtered out",
			req: func(r *ipam.Request) {
				r.PodAnnotations = map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["v4"],"ipv6":["v6-off"]}`}
			},
			wantErr: "no IPPool available, all IPv6 IPPools [v6-off] of eth0 filtered out: v6-off: disabled",
			errIs:   ipam.ErrNoCandidatePool,
		},
		{
			name: "IPv6 pool named but full",
			req: func(r *ipam.Request) {
				r.PodAnnotations = map[string]string{v2beta1.AnnoPodIPPool: `{"ipv4":["v4"],"ipv6":["v6-full"]}`}
			},
			wantErr: "failed to allocate any IPv6 IP address to NIC eth0 from IPPools [v6-full]",
			errIs:   ipam.ErrPoolExhausted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := ipamtest.NewStore(pools()...)
			req := podRequest("u1")
			req.DefaultIPv4Pools = nil
			tc.req(req)
			res, err := ipam.New(store, chartDefaults).Allocate(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.errIs) {
					t.Fatalf("got error %v, want one containing %q and wrapping %v", err, tc.wantErr, tc.errIs)
				}
				if got := records(t, store, "v4"); len(got) != 0 {
					t.Fatalf("IPv4 records left behind by a failed request: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantAddr, addrs(res)); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			checkStore(t, store)
		})
	}

	// No pool of any family: still an error.
	store := ipamtest.NewStore(build.Pool("plain", "10.1.0.0/16", build.IPs("10.1.0.1")))
	req := podRequest("u2")
	req.DefaultIPv4Pools = nil
	_, err := ipam.New(store, chartDefaults).Allocate(context.Background(), req)
	if err == nil || err.Error() != "no IPPool available, no pool selection rules of any type are specified" || !errors.Is(err, ipam.ErrNoCandidatePool) {
		t.Fatalf("got %v", err)
	}
}
