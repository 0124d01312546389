package controller

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func reconcileSubnet(t *testing.T, c client.Client, name string) {
	t.Helper()
	if _, err := NewSubnetReconciler(c).Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
		t.Fatalf("reconcile subnet %s: %v", name, err)
	}
}

func getSubnet(t *testing.T, c client.Client, name string) *v2beta1.SpiderSubnet {
	t.Helper()
	var s v2beta1.SpiderSubnet
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func getSubnetPool(t *testing.T, c client.Client, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	var p v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func controllerUID(o metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(o); ref != nil {
		return ref.UID
	}
	return ""
}

// Counts, adoption and the controlledIPPools record of a subnet with hand-made pools, an auto pool
// and a pool of another subnet.
func TestSubnetReconcilerStatusAndAdoption(t *testing.T) {
	subnet := build.Subnet("s", "10.6.0.0/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.100"), build.ExcludeIPs("10.6.0.100"))
	// 10.6.0.10 excluded by the pool: listed but not handed out.
	p1 := build.Pool("p1", "10.6.0.0/16", build.UID("uid-p1"), build.IPs("10.6.0.1-10.6.0.5", "10.6.0.6-10.6.0.10"),
		build.ExcludeIPs("10.6.0.10"))
	// 10.6.0.200 is outside the subnet's ips: listed, never counted.
	p2 := build.Pool("p2", "10.6.0.0/16", build.UID("uid-p2"), build.IPs("10.6.0.20-10.6.0.29", "10.6.0.200"))
	auto := build.Pool("auto4-nginx-eth0-abcde", "10.6.0.0/16", build.UID("uid-auto4-nginx-eth0-abcde"), build.IPs("10.6.0.50"),
		build.Labels(map[string]string{
			v2beta1.LabelOwnerApplicationGV: "apps_v1", v2beta1.LabelOwnerApplicationKind: "Deployment",
			v2beta1.LabelOwnerApplicationNS: "default", v2beta1.LabelOwnerApplicationName: "nginx",
		}))
	other := build.Pool("other", "10.7.0.0/16", build.UID("uid-other"), build.IPs("10.7.0.1-10.7.0.10"))
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).
		WithObjects(subnet, p1, p2, auto, other).WithStatusSubresource(subnet, p1, p2, auto, other).Build()

	reconcileSubnet(t, c, "s")

	got := getSubnet(t, c, "s")
	if diff := cmp.Diff([]string{v2beta1.Finalizer}, got.Finalizers); diff != "" {
		t.Errorf("finalizers (-want +got):\n%s", diff)
	}
	if total, alloc := ptr.Deref(got.Status.TotalIPCount, -1), ptr.Deref(got.Status.AllocatedIPCount, -1); total != 99 || alloc != 9+10+1 {
		t.Errorf("totalIPCount=%d allocatedIPCount=%d, want 99 and 20", total, alloc)
	}
	shares, err := got.Status.ControlledPools()
	if err != nil {
		t.Fatal(err)
	}
	want := v2beta1.PoolIPPreAllocations{
		"p1":                     {IPs: []string{"10.6.0.1-10.6.0.10"}},
		"p2":                     {IPs: []string{"10.6.0.20-10.6.0.29", "10.6.0.200"}},
		"auto4-nginx-eth0-abcde": {IPs: []string{"10.6.0.50"}, Application: ptr.To("apps_v1_Deployment_default_nginx")},
	}
	if diff := cmp.Diff(want, shares); diff != "" {
		t.Errorf("controlledIPPools (-want +got):\n%s", diff)
	}
	for _, name := range []string{"p1", "p2", "auto4-nginx-eth0-abcde"} {
		p := getSubnetPool(t, c, name)
		if p.Labels[v2beta1.LabelOwnerSpiderSubnet] != "s" || controllerUID(p) != subnet.UID {
			t.Errorf("pool %s not adopted: labels %v, owners %v", name, p.Labels, p.OwnerReferences)
		}
	}
	if p := getSubnetPool(t, c, "other"); len(p.OwnerReferences) != 0 || p.Labels[v2beta1.LabelOwnerSpiderSubnet] != "" {
		t.Errorf("pool of another subnet adopted: labels %v, owners %v", p.Labels, p.OwnerReferences)
	}

	// Nothing changed: no write at all.
	rv := got.ResourceVersion
	reconcileSubnet(t, c, "s")
	if again := getSubnet(t, c, "s"); again.ResourceVersion != rv {
		t.Errorf("unchanged status rewritten: resourceVersion %s -> %s", rv, again.ResourceVersion)
	}

	// A pool that goes away gives its addresses back.
	if err := c.Delete(context.Background(), getSubnetPool(t, c, "p2")); err != nil {
		t.Fatal(err)
	}
	reconcileSubnet(t, c, "s")
	got = getSubnet(t, c, "s")
	if alloc := ptr.Deref(got.Status.AllocatedIPCount, -1); alloc != 10 {
		t.Errorf("allocatedIPCount after deleting p2 = %d, want 10", alloc)
	}
	if shares, _ := got.Status.ControlledPools(); len(shares) != 2 {
		t.Errorf("controlledIPPools after deleting p2 = %v", shares)
	}
}

// Objects written past the webhook keep upstream's spellings: a subnet "10.6.0.1/16" still adopts
// and counts the pools of 10.6.0.0/16, and leaves those of 10.6.0.0/24 alone.
func TestSubnetReconcilerAdoptsAnySpelling(t *testing.T) {
	subnet := build.Subnet("s", "10.6.0.1/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.100"))
	spelt := build.Pool("spelt", "10.6.7.7/16", build.UID("uid-spelt"), build.IPs("10.6.0.1-10.6.0.5"))
	canonical := build.Pool("canonical", "10.6.0.0/16", build.UID("uid-canonical"), build.IPs("10.6.0.10"))
	narrower := build.Pool("narrower", "10.6.0.1/24", build.UID("uid-narrower"), build.IPs("10.6.0.20"))
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).
		WithObjects(subnet, spelt, canonical, narrower).WithStatusSubresource(subnet, spelt, canonical, narrower).Build()

	reconcileSubnet(t, c, "s")

	got := getSubnet(t, c, "s")
	if total, alloc := ptr.Deref(got.Status.TotalIPCount, -1), ptr.Deref(got.Status.AllocatedIPCount, -1); total != 100 || alloc != 6 {
		t.Errorf("totalIPCount=%d allocatedIPCount=%d, want 100 and 6", total, alloc)
	}
	for name, want := range map[string]bool{"spelt": true, "canonical": true, "narrower": false} {
		p := getSubnetPool(t, c, name)
		if adopted := controllerUID(p) == subnet.UID; adopted != want {
			t.Errorf("pool %s (subnet %s) adopted = %v, want %v", name, p.Spec.Subnet, adopted, want)
		}
	}
}

func TestSubnetReconcilerTotalCounts(t *testing.T) {
	tests := []struct {
		name      string
		subnet    *v2beta1.SpiderSubnet
		wantTotal int64
	}{
		{"ranges merged", build.Subnet("s", "10.6.0.0/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.10", "10.6.0.5-10.6.0.20")), 20},
		{"exclusions removed", build.Subnet("s", "10.6.0.0/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.10"),
			build.ExcludeIPs("10.6.0.1", "10.6.0.9-10.6.0.20")), 7},
		{"no ips", build.Subnet("s", "10.6.0.0/16", build.UID("uid-s")), 0},
		{"IPv6 without ipVersion", &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "s"},
			Spec: v2beta1.SubnetSpec{Subnet: "fd00::/64", IPs: []string{"fd00::1-fd00::ff"}}}, 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(poolScheme(t)).WithObjects(tt.subnet).WithStatusSubresource(tt.subnet).Build()
			reconcileSubnet(t, c, "s")
			got := getSubnet(t, c, "s")
			if total, alloc := ptr.Deref(got.Status.TotalIPCount, -1), ptr.Deref(got.Status.AllocatedIPCount, -1); total != tt.wantTotal || alloc != 0 {
				t.Errorf("totalIPCount=%d allocatedIPCount=%d, want %d and 0", total, alloc, tt.wantTotal)
			}
			if got.Status.ControlledIPPools != nil {
				t.Errorf("controlledIPPools = %q, want none", *got.Status.ControlledIPPools)
			}
		})
	}
}

// A pool already controlled by something else keeps its controller and does not count.
func TestSubnetReconcilerDoesNotStealPools(t *testing.T) {
	subnet := build.Subnet("s", "10.6.0.0/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.100"))
	taken := build.Pool("taken", "10.6.0.0/16", build.UID("uid-taken"), build.IPs("10.6.0.1-10.6.0.10"),
		build.ControlledBy("apps/v1", "Deployment", "web", "uid-web"))
	// A plain (non-controller) owner does not stop adoption, and is kept.
	shared := build.Pool("shared", "10.6.0.0/16", build.UID("uid-shared"), build.IPs("10.6.0.20"),
		build.Owner(metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "uid-cm"}))
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).
		WithObjects(subnet, taken, shared).WithStatusSubresource(subnet, taken, shared).Build()

	reconcileSubnet(t, c, "s")

	p := getSubnetPool(t, c, "taken")
	if diff := cmp.Diff(taken.OwnerReferences, p.OwnerReferences); diff != "" {
		t.Errorf("owner references of the taken pool changed (-want +got):\n%s", diff)
	}
	if v, ok := p.Labels[v2beta1.LabelOwnerSpiderSubnet]; ok {
		t.Errorf("taken pool labelled %q", v)
	}
	p = getSubnetPool(t, c, "shared")
	if len(p.OwnerReferences) != 2 || controllerUID(p) != subnet.UID {
		t.Errorf("shared pool owners = %v, want the ConfigMap kept and the subnet as controller", p.OwnerReferences)
	}
	got := getSubnet(t, c, "s")
	shares, _ := got.Status.ControlledPools()
	if diff := cmp.Diff(v2beta1.PoolIPPreAllocations{"shared": {IPs: []string{"10.6.0.20"}}}, shares); diff != "" {
		t.Errorf("controlledIPPools (-want +got):\n%s", diff)
	}
	if alloc := ptr.Deref(got.Status.AllocatedIPCount, -1); alloc != 1 {
		t.Errorf("allocatedIPCount = %d, want 1", alloc)
	}
}

// A deleted subnet stays while it controls a pool and goes once the last one is gone; it adopts
// nothing in the meantime.
func TestSubnetReconcilerDeletion(t *testing.T) {
	subnet := build.Subnet("s", "10.6.0.0/16", build.UID("uid-s"), build.IPs("10.6.0.1-10.6.0.100"),
		build.Finalizer(v2beta1.Finalizer), build.DeletedAt(time.Now()))
	owned := build.Pool("owned", "10.6.0.0/16", build.UID("uid-owned"), build.IPs("10.6.0.1-10.6.0.10"),
		build.Label(v2beta1.LabelOwnerSpiderSubnet, "s"),
		build.Owner(build.BlockingControllerRef(v2beta1.SchemeGroupVersion.String(), "SpiderSubnet", "s", string(subnet.UID))))
	stray := build.Pool("stray", "10.6.0.0/16", build.UID("uid-stray"), build.IPs("10.6.0.20"))
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).
		WithObjects(subnet, owned, stray).WithStatusSubresource(subnet, owned, stray).Build()

	reconcileSubnet(t, c, "s")
	got := getSubnet(t, c, "s")
	if diff := cmp.Diff([]string{v2beta1.Finalizer}, got.Finalizers); diff != "" {
		t.Errorf("finalizers of a subnet still controlling a pool (-want +got):\n%s", diff)
	}
	if shares, _ := got.Status.ControlledPools(); len(shares) != 1 {
		t.Errorf("controlledIPPools of the terminating subnet = %v, want only the owned pool", shares)
	}
	if p := getSubnetPool(t, c, "stray"); len(p.OwnerReferences) != 0 {
		t.Errorf("terminating subnet adopted a pool: %v", p.OwnerReferences)
	}

	if err := c.Delete(context.Background(), getSubnetPool(t, c, "owned")); err != nil {
		t.Fatal(err)
	}
	reconcileSubnet(t, c, "s")
	if err := c.Get(context.Background(), client.ObjectKey{Name: "s"}, &v2beta1.SpiderSubnet{}); err == nil {
		t.Errorf("subnet without pools still exists")
	}
}

func TestSubnetsOfPool(t *testing.T) {
	a := build.Subnet("a", "10.6.0.0/16", build.UID("uid-a"))
	b := build.Subnet("b", "fd00::/64", build.UID("uid-b"), build.Version(4))
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).WithObjects(a, b).Build()
	r := NewSubnetReconciler(c)

	v6 := build.Pool("v6", "fd00:0::/64", build.UID("uid-v6"), build.Version(4))
	owned := build.Pool("owned", "10.9.0.0/16", build.UID("uid-owned"),
		build.ControlledBy(v2beta1.SchemeGroupVersion.String(), "SpiderSubnet", "gone", "uid-gone"))
	tests := []struct {
		name string
		pool *v2beta1.SpiderIPPool
		want []string
	}{
		{"equal CIDR", build.Pool("p", "10.6.0.0/16", build.UID("uid-p")), []string{"a"}},
		{"IPv6 spelt differently", v6, []string{"b"}},
		{"host bits", build.Pool("p", "10.6.0.1/16", build.UID("uid-p")), []string{"a"}},
		{"IPv6 host bits", build.Pool("p", "fd00::ac0f:0/64", build.UID("uid-p"), build.Version(4)), []string{"b"}},
		{"no subnet", build.Pool("p", "10.7.0.0/16", build.UID("uid-p")), nil},
		{"controller subnet", owned, []string{"gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, req := range r.subnetsOfPool(context.Background(), tt.pool) {
				got = append(got, req.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("subnets (-want +got):\n%s", diff)
			}
		})
	}
}
