package binding

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// Set itself runs against a real apiserver (test/integration: TestCtlIPSet through spiderpoolctl,
// TestControllerAPISetIP through the controller's API); these are the decisions it makes on what
// it read.

func checkRefusal(t *testing.T, err error, kind error, field, msg string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || e.Field != field || e.Msg != msg {
		t.Fatalf("got %#v, want %v on field %q: %q", err, kind, field, msg)
	}
}

func TestRequestCheck(t *testing.T) {
	ok := Request{IP: netip.MustParseAddr("10.6.0.5"), PodNamespace: "default", PodName: "web"}
	tests := []struct {
		name   string
		mutate func(*Request)
		kind   error
		field  string
		msg    string
	}{
		{name: "complete", mutate: func(*Request) {}},
		{name: "no IP", mutate: func(r *Request) { r.IP = netip.Addr{} }, kind: ErrInvalid, field: "ip", msg: "ip is required"},
		{name: "zone", mutate: func(r *Request) { r.IP = netip.MustParseAddr("fe80::1%eth0") }, kind: ErrInvalid, field: "ip", msg: "ip fe80::1%eth0: an address with a zone cannot be bound"},
		{name: "no namespace", mutate: func(r *Request) { r.PodNamespace = "" }, kind: ErrInvalid, field: "podNamespace", msg: "podNamespace is required"},
		{name: "no name", mutate: func(r *Request) { r.PodName = "" }, kind: ErrInvalid, field: "podName", msg: "podName is required"},
		{name: "long interface", mutate: func(r *Request) { r.Interface = "a-very-long-ifname" }, kind: ErrInvalid, field: "interface", msg: `interface "a-very-long-ifname" is longer than 15 bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.mutate(&r)
			checkRefusal(t, r.check(), tc.kind, tc.field, tc.msg)
			if tc.kind == nil && r.Interface != DefaultInterface {
				t.Errorf("interface %q, want the default", r.Interface)
			}
		})
	}
}

func TestChoosePool(t *testing.T) {
	pools := []v2beta1.SpiderIPPool{
		*build.Pool("a", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.ExcludeIPs("10.6.0.15")),
		*build.Pool("b", "10.6.0.0/16", build.IPs("10.6.0.20-10.6.0.30")),
		*build.Pool("c", "10.6.0.0/16", build.IPs("10.6.0.19-10.6.0.20")),
	}
	tests := []struct {
		name, addr, pool string
		want             string
		kind             error
		field, msg       string
	}{
		{name: "named", addr: "10.6.0.99", pool: "b", want: "b"},
		{name: "unknown name", addr: "10.6.0.11", pool: "z", kind: ErrNotFound, field: "pool", msg: `SpiderIPPool "z" not found`},
		{name: "the one pool", addr: "10.6.0.11", want: "a"},
		{name: "excluded address", addr: "10.6.0.15", kind: ErrNotFound, field: "ip", msg: "no SpiderIPPool has 10.6.0.15 in its IPs"},
		{name: "several pools", addr: "10.6.0.20", kind: ErrInvalid, field: "pool", msg: "SpiderIPPools a, b, c all have 10.6.0.20 in their IPs: name one as the pool"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := choosePool(pools, netip.MustParseAddr(tc.addr), tc.pool)
			checkRefusal(t, err, tc.kind, tc.field, tc.msg)
			if tc.kind == nil && p.Name != tc.want {
				t.Errorf("pool %s, want %s", p.Name, tc.want)
			}
		})
	}
}

func TestCheckHolders(t *testing.T) {
	a := build.Pool("a", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.10", "default/web", "uid-web"))
	b := build.Pool("b", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Allocated("10.6.0.11", "default/db", "uid-db"))
	// c keeps its records in SpiderIPBlocks; its status says nothing of them.
	c, blocks := blockstoretest.InBlocks(t, build.Pool("c", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"),
		build.Allocated("10.6.0.12", "default/cache", "uid-cache")), "worker")
	objs := []client.Object{c}
	for _, blk := range blocks {
		objs = append(objs, blk)
	}
	reader := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(objs...).Build()
	pools := []v2beta1.SpiderIPPool{*a, *b, *c}
	ctx := context.Background()
	checkRefusal(t, checkHolders(ctx, reader, pools, netip.MustParseAddr("10.6.0.10"), "uid-web"), nil, "", "")
	checkRefusal(t, checkHolders(ctx, reader, pools, netip.MustParseAddr("10.6.0.13"), "uid-web"), nil, "", "")
	checkRefusal(t, checkHolders(ctx, reader, pools, netip.MustParseAddr("10.6.0.11"), "uid-web"), ErrConflict, "ip",
		"IP 10.6.0.11 is recorded in SpiderIPPool b for pod default/db (UID uid-db): release it first")
	checkRefusal(t, checkHolders(ctx, reader, pools, netip.MustParseAddr("10.6.0.12"), "uid-web"), ErrConflict, "ip",
		"IP 10.6.0.12 is recorded in SpiderIPPool c for pod default/cache (UID uid-cache): release it first")
	checkRefusal(t, checkHolders(ctx, reader, pools, netip.MustParseAddr("10.6.0.12"), "uid-cache"), nil, "", "")
	// Blocks that cannot be read may hold the address: an error, not a pass.
	empty := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).Build()
	if err := checkHolders(ctx, empty, pools, netip.MustParseAddr("10.6.0.13"), "uid-web"); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("unreadable blocks: %v, want an error that is not a refusal", err)
	}
}

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := ipblock.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckEndpoint(t *testing.T) {
	ep := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: "uid-web", IPs: []v2beta1.IPAllocationDetail{
			{NIC: "eth0", IPv4: new("10.6.0.10/16")},
			{NIC: "net1", IPv6: new("fd00::10/64")},
		}}},
	}
	tests := []struct {
		name, uid, nic, addr string
		kind                 error
		field, msg           string
	}{
		{name: "the same address again", uid: "uid-web", nic: "eth0", addr: "10.6.0.10"},
		{name: "the free family", uid: "uid-web", nic: "eth0", addr: "fd00::11"},
		{name: "a new interface", uid: "uid-web", nic: "net2", addr: "10.6.0.11"},
		{name: "busy interface", uid: "uid-web", nic: "eth0", addr: "10.6.0.11", kind: ErrConflict, field: "interface",
			msg: "SpiderEndpoint default/web: interface eth0 already has 10.6.0.10/16: release it first"},
		{name: "busy IPv6", uid: "uid-web", nic: "net1", addr: "fd00::11", kind: ErrConflict, field: "interface",
			msg: "SpiderEndpoint default/web: interface net1 already has fd00::10/64: release it first"},
		{name: "earlier incarnation", uid: "uid-new", nic: "eth0", addr: "10.6.0.10", kind: ErrConflict, field: "podName",
			msg: "SpiderEndpoint default/web is of pod UID uid-web, an earlier incarnation: release its IPs first"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRefusal(t, checkEndpoint(ep, tc.uid, tc.nic, netip.MustParseAddr(tc.addr)), tc.kind, tc.field, tc.msg)
		})
	}
}

func TestNewEndpoint(t *testing.T) {
	pod := build.Pod("default", "db-0", build.UID("uid-db-0"))
	sts := workload.Controller{APIVersion: "apps/v1", Kind: workload.KindStatefulSet, Namespace: "default", Name: "db"}
	bare := workload.Controller{APIVersion: "v1", Kind: workload.KindPod, Namespace: "default", Name: "db-0"}
	podOwner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "db-0", UID: "uid-db-0", Controller: new(false), BlockOwnerDeletion: new(false)}}
	tests := []struct {
		name       string
		top        workload.Controller
		sts        bool
		wantOwners []metav1.OwnerReference
	}{
		{name: "bare pod", top: bare, sts: true, wantOwners: podOwner},
		{name: "StatefulSet member outlives its pod", top: sts, sts: true},
		{name: "StatefulSet handling off", top: sts, wantOwners: podOwner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := NewEndpoint(pod, tc.top, "worker", tc.sts)
			if diff := cmp.Diff(tc.wantOwners, ep.OwnerReferences); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
			want := v2beta1.WorkloadEndpointStatus{
				Current:             v2beta1.PodIPAllocation{UID: "uid-db-0", Node: "worker", IPs: []v2beta1.IPAllocationDetail{}},
				OwnerControllerType: tc.top.Kind, OwnerControllerName: tc.top.Name,
			}
			if diff := cmp.Diff(want, ep.Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{v2beta1.Finalizer}, ep.Finalizers); diff != "" {
				t.Errorf("finalizers (-want +got):\n%s", diff)
			}
		})
	}
}
