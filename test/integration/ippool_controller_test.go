package integration

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// startPoolController runs a manager with only the SpiderIPPool reconciler until the test ends.
func startPoolController(t *testing.T) {
	t.Helper()
	runManager(t, func(mgr ctrl.Manager) error {
		return controller.NewIPPoolReconciler(mgr.GetClient(), controller.BlockFormat{}).SetupWithManager(mgr)
	})
}

func waitPool(t *testing.T, name string, cond func(*v2beta1.SpiderIPPool) bool) *v2beta1.SpiderIPPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p v2beta1.SpiderIPPool
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(&p), nil
	})
	if err != nil {
		t.Fatalf("pool %s never reached the expected state (last: finalizers %v, status %+v): %v", name, p.Finalizers, p.Status, err)
	}
	return &p
}

// The pool controller fills the counters the guides' `kubectl get spiderippool` shows, and a pool
// with allocations stays Terminating until they are released: nothing is lost by deleting it.
func TestIPPoolControllerCountsAndFinalizer(t *testing.T) {
	startPoolController(t)
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "ctl-master-172"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "172.31.192.0/20",
			IPs: []string{"172.31.199.185-172.31.199.189"}, Gateway: ptr.To("172.31.207.253")},
	}
	if err := env.Client.Create(testContext(t), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p := &v2beta1.SpiderIPPool{}
		if env.Client.Get(context.Background(), client.ObjectKey{Name: pool.Name}, p) == nil {
			p.Finalizers = nil
			_ = env.Client.Update(context.Background(), p)
			_ = env.Client.Delete(context.Background(), p)
		}
	})
	got := waitPool(t, pool.Name, func(p *v2beta1.SpiderIPPool) bool {
		return ptr.Deref(p.Status.TotalIPCount, -1) == 5 && ptr.Deref(p.Status.AllocatedIPCount, -1) == 0 && len(p.Finalizers) == 1
	})

	// An agent records an allocation (as kubestore does: records and count in one write).
	got.Status.AllocatedIPs = ptr.To(`{"172.31.199.187":{"pod":"default/test-app-1-ddlx7","podUid":"u1"}}`)
	got.Status.AllocatedIPCount = ptr.To[int64](1)
	if err := env.Client.Status().Update(testContext(t), got); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(testContext(t), got); err != nil {
		t.Fatal(err)
	}
	// Deleted but held: still there a while later, records intact.
	time.Sleep(2 * time.Second)
	held := waitPool(t, pool.Name, func(p *v2beta1.SpiderIPPool) bool { return p.DeletionTimestamp != nil })
	if allocs, _ := held.Status.Allocations(); len(allocs) != 1 {
		t.Fatalf("records of the terminating pool = %v, want the one allocation kept", allocs)
	}
	// The last release lets it go.
	held.Status.AllocatedIPs, held.Status.AllocatedIPCount = nil, ptr.To[int64](0)
	if err := env.Client.Status().Update(testContext(t), held); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, &v2beta1.SpiderIPPool{})
		return err != nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Errorf("released pool was not deleted: %v", err)
	}
}

// controller.Run as the binary runs it out of cluster: leader election through a Lease in the
// install namespace, then the reconcilers at work.
func TestControllerRunWithLeaderElection(t *testing.T) {
	runController(t, func(cfg *controller.Config) {
		def := controller.DefaultConfig()
		cfg.LeaderElection, cfg.EnsureCoordinator, cfg.GCInterval = true, def.EnsureCoordinator, def.GCInterval
	})
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "ctl-run"},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.150.0.0/24", IPs: []string{"10.150.0.10-10.150.0.19"}},
	}
	if err := env.Client.Create(testContext(t), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p := &v2beta1.SpiderIPPool{}
		if env.Client.Get(context.Background(), client.ObjectKey{Name: pool.Name}, p) == nil {
			p.Finalizers = nil
			_ = env.Client.Update(context.Background(), p)
			_ = env.Client.Delete(context.Background(), p)
		}
	})
	waitPool(t, pool.Name, func(p *v2beta1.SpiderIPPool) bool { return ptr.Deref(p.Status.TotalIPCount, -1) == 10 })
	// With no SpiderCoordinator installed, the controller creates the default one (Helm defaults),
	// and the coordinator reconciler then owns its status.
	scc := &v2beta1.SpiderCoordinator{}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	err := testenv.WaitFor(ctx2, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Name: "default"}, scc)
		return err == nil && scc.Status.Phase != "", client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("default SpiderCoordinator not created and reconciled: %v", err)
	}
	if ptr.Deref(scc.Spec.Mode, "") != "auto" || ptr.Deref(scc.Spec.PodCIDRType, "") != "auto" || ptr.Deref(scc.Spec.VethMTU, 0) != 1500 ||
		len(scc.Spec.HijackCIDR) != 1 || scc.Spec.HijackCIDR[0] != "169.254.0.0/16" {
		t.Errorf("default SpiderCoordinator spec = %+v", scc.Spec)
	}
	t.Cleanup(func() {
		deleteIgnoringFinalizers(context.Background(), t, &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	})
	var lease coordinationv1.Lease
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: "kube-system", Name: controller.DefaultLeaseName}, &lease); err != nil {
		t.Errorf("leader-election lease: %v", err)
	}
}
