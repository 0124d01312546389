package integration

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// startSubnetController runs a manager with only the SpiderSubnet reconciler until the test ends.
func startSubnetController(t *testing.T) {
	t.Helper()
	runManager(t, func(mgr ctrl.Manager) error {
		return controller.NewSubnetReconciler(mgr.GetClient()).SetupWithManager(mgr)
	})
}

// removeWhenDone deletes the named objects at the end of the test, finalizers first. Registered
// before the controller starts, it runs after the controller stopped, so nothing puts them back.
func removeWhenDone(t *testing.T, objs ...client.Object) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, o := range objs {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				continue
			}
			o.SetFinalizers(nil)
			_ = env.Client.Update(ctx, o)
			_ = env.Client.Delete(ctx, o)
		}
	})
}

func waitSubnet(t *testing.T, name string, cond func(*v2beta1.SpiderSubnet) bool) *v2beta1.SpiderSubnet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s v2beta1.SpiderSubnet
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(&s), nil
	})
	if err != nil {
		t.Fatalf("subnet %s never reached the expected state (last: finalizers %v, status controlledIPPools=%q total=%v allocated=%v): %v",
			name, s.Finalizers, ptr.Deref(s.Status.ControlledIPPools, "<nil>"), ptr.Deref(s.Status.TotalIPCount, -1),
			ptr.Deref(s.Status.AllocatedIPCount, -1), err)
	}
	return &s
}

func subnetShows(s *v2beta1.SpiderSubnet, total, allocated int64, pools v2beta1.PoolIPPreAllocations) bool {
	got, err := s.Status.ControlledPools()
	return err == nil && ptr.Deref(s.Status.TotalIPCount, -1) == total &&
		ptr.Deref(s.Status.AllocatedIPCount, -1) == allocated && cmp.Equal(pools, got)
}

// docs/design/behaviour.md#subnet-status-and-adoption: pools made by hand in a SpiderSubnet's CIDR become its pools, and their IPs count in
// the subnet's status; the subnet cannot be deleted from under them.
func TestSubnetControllerAdoptsPoolsAndCounts(t *testing.T) {
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "ctl-subnet-10-6"},
		Spec: v2beta1.SubnetSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16",
			IPs: []string{"10.6.0.1-10.6.0.100"}, Gateway: ptr.To("10.6.0.254")},
	}
	poolA := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "ctl-subnet-pool-a"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.1-10.6.0.10"}}}
	poolB := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "ctl-subnet-pool-b"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.20-10.6.0.29"}}}
	other := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "ctl-subnet-pool-other"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.7.0.0/16", IPs: []string{"10.7.0.1-10.7.0.5"}}}
	removeWhenDone(t, subnet.DeepCopy(), poolA.DeepCopy(), poolB.DeepCopy(), other.DeepCopy())
	startSubnetController(t)

	for _, o := range []client.Object{subnet, poolA, poolB, other} {
		if err := env.Client.Create(testContext(t), o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}

	got := waitSubnet(t, subnet.Name, func(s *v2beta1.SpiderSubnet) bool {
		return len(s.Finalizers) == 1 && subnetShows(s, 100, 20, v2beta1.PoolIPPreAllocations{
			poolA.Name: {IPs: []string{"10.6.0.1-10.6.0.10"}},
			poolB.Name: {IPs: []string{"10.6.0.20-10.6.0.29"}},
		})
	})
	t.Logf("subnet status: totalIPCount=%d allocatedIPCount=%d controlledIPPools=%s",
		*got.Status.TotalIPCount, *got.Status.AllocatedIPCount, *got.Status.ControlledIPPools)

	for _, name := range []string{poolA.Name, poolB.Name} {
		p := waitPool(t, name, func(p *v2beta1.SpiderIPPool) bool { return metav1.GetControllerOf(p) != nil })
		ref := metav1.GetControllerOf(p)
		if p.Labels[v2beta1.LabelOwnerSpiderSubnet] != subnet.Name || ref.Kind != "SpiderSubnet" || ref.Name != subnet.Name || ref.UID != got.UID {
			t.Errorf("pool %s: label %q, controller %+v; want owned by SpiderSubnet %s (%s)",
				name, p.Labels[v2beta1.LabelOwnerSpiderSubnet], *ref, subnet.Name, got.UID)
		}
	}
	var o v2beta1.SpiderIPPool
	if err := env.Client.Get(testContext(t), client.ObjectKeyFromObject(other), &o); err != nil {
		t.Fatal(err)
	}
	if len(o.OwnerReferences) != 0 || o.Labels[v2beta1.LabelOwnerSpiderSubnet] != "" {
		t.Errorf("pool of another subnet adopted: labels %v, owners %v", o.Labels, o.OwnerReferences)
	}

	// A pool that goes away gives its addresses back.
	if err := env.Client.Delete(testContext(t), poolB); err != nil {
		t.Fatal(err)
	}
	got = waitSubnet(t, subnet.Name, func(s *v2beta1.SpiderSubnet) bool {
		return subnetShows(s, 100, 10, v2beta1.PoolIPPreAllocations{poolA.Name: {IPs: []string{"10.6.0.1-10.6.0.10"}}})
	})
	t.Logf("after deleting %s: allocatedIPCount=%d controlledIPPools=%s", poolB.Name, *got.Status.AllocatedIPCount, *got.Status.ControlledIPPools)

	// The subnet is held while it still controls a pool, and released with the last one.
	if err := env.Client.Delete(testContext(t), got); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	waitSubnet(t, subnet.Name, func(s *v2beta1.SpiderSubnet) bool { return s.DeletionTimestamp != nil && len(s.Finalizers) == 1 })
	if err := env.Client.Delete(testContext(t), poolA); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Name: subnet.Name}, &v2beta1.SpiderSubnet{})
		return err != nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Errorf("subnet without pools was not deleted: %v", err)
	}
}
