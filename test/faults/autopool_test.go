package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// controllerKilledInAutoPool: a Deployment names a SpiderSubnet, so the controller gives it an
// auto pool of replicas+1 addresses (the chart's defaultRedundantIPNumber) and resizes it as the
// Deployment scales; the controller is SIGKILLed right after each scale, while it carves
// addresses out of the subnet and writes pool and subnet. Pods of the Deployment wait for the pool
// (their ADD fails until it has room). In the end the pool has replicas+1 addresses, all of the
// subnet, and the subnet records exactly the pool's addresses as the pool's.
func controllerKilledInAutoPool(t *testing.T, rng *rand.Rand, ctl *proc) outcome {
	nodes := []string{"auto-0", "auto-1"}
	w := newWorld(t, "f-auto", nodes...)
	ctx := testContext(t)
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "f-auto"},
		Spec: v2beta1.SubnetSpec{IPVersion: ptr.To[int64](4), Subnet: "10.83.0.0/16",
			IPs: []string{"10.83.0.10-10.83.0.200"}, Gateway: ptr.To("10.83.0.1")},
	}
	if err := env.Client.Create(ctx, subnet); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "f-auto"}
	anno := map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["f-auto"]}`}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: anno},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "web-7c5d9",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(dep, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}
	if err := env.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// After the world's teardown (registered earlier, so run later): the Deployment goes, then
	// its pool, then the subnet.
	t.Cleanup(func() {
		bg := context.Background()
		_ = env.Client.Delete(bg, rs)
		_ = env.Client.Delete(bg, dep)
		var l v2beta1.SpiderIPPoolList
		if env.Client.List(bg, &l, client.MatchingLabels{v2beta1.LabelOwnerSpiderSubnet: subnet.Name}) == nil {
			for i := range l.Items {
				p := &l.Items[i]
				p.Finalizers = nil
				_ = env.Client.Update(bg, p)
				_ = env.Client.Delete(bg, p)
			}
		}
		s := &v2beta1.SpiderSubnet{}
		if env.Client.Get(bg, client.ObjectKeyFromObject(subnet), s) == nil {
			s.Finalizers = nil
			_ = env.Client.Update(bg, s)
			_ = env.Client.Delete(bg, s)
		}
	})
	owner := []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}
	bringUp := func(n int) int {
		pods := make([]*pod, n)
		for i := range pods {
			p, err := w.newOwnedPod(nodes[i%2], anno, labels, owner)
			if err != nil {
				t.Fatal(err)
			}
			pods[i] = p
		}
		var bad atomic.Int64
		testutil.Parallel(n, 6, func(i int) {
			if err := w.addRetry(pods[i], addBudget); err != nil {
				t.Log(err)
				bad.Add(1)
			}
		})
		return int(bad.Load())
	}
	scale := func(n int32) {
		var d appsv1.Deployment
		err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), &d); err != nil {
				return false, nil
			}
			d.Spec.Replicas = ptr.To(n)
			return env.Client.Update(ctx, &d) == nil, nil
		})
		if err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
	}

	failed := bringUp(2)
	injected := 0
	for _, replicas := range []int32{10, 3, 12, 5} {
		scale(replicas)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		ctl.Kill()
		injected++
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		if err := ctl.Start(); err != nil {
			t.Fatal(err)
		}
		if n := int(replicas) - len(w.live()); n > 0 {
			failed += bringUp(n)
		} else {
			for _, p := range w.live()[:-n] {
				if err := w.remove(p, true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// The pool settles at replicas+1 addresses of the subnet, and the subnet's record of it
	// matches.
	var pools v2beta1.SpiderIPPoolList
	var last string
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.List(ctx, &pools, client.MatchingLabels{v2beta1.LabelOwnerSpiderSubnet: subnet.Name}); err != nil {
			return false, nil
		}
		var s v2beta1.SpiderSubnet
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(subnet), &s); err != nil {
			return false, nil
		}
		last = autoPoolProblem(&s, pools.Items, len(w.live())+1)
		return last == "", nil
	})
	if err != nil {
		t.Fatalf("auto pool never settled: %s", last)
	}
	for i := range pools.Items {
		if !slices.Contains(w.pools, pools.Items[i].Name) {
			w.pools = append(w.pools, pools.Items[i].Name)
		}
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}

// autoPoolProblem describes how the subnet and its auto pools differ from one pool of want
// addresses of the subnet that the subnet records as that pool's; "" when they agree.
func autoPoolProblem(s *v2beta1.SpiderSubnet, pools []v2beta1.SpiderIPPool, want int) string {
	if len(pools) != 1 {
		return fmt.Sprintf("%d auto pools, want 1", len(pools))
	}
	p := &pools[0]
	got, err := ip.ParseSet(p.Spec.IPs, 4)
	if err != nil {
		return err.Error()
	}
	if got.Count() != int64(want) {
		return fmt.Sprintf("pool %s has %d addresses, want %d", p.Name, got.Count(), want)
	}
	subnetIPs, err := ip.ParseSet(s.Spec.IPs, 4)
	if err != nil {
		return err.Error()
	}
	if !got.Subtract(subnetIPs).IsEmpty() {
		return fmt.Sprintf("pool %s has %v, not all of subnet %v", p.Name, p.Spec.IPs, s.Spec.IPs)
	}
	ctrl, err := s.Status.ControlledPools()
	if err != nil {
		return err.Error()
	}
	if len(ctrl) != 1 {
		return fmt.Sprintf("subnet records %d pools, want 1: %v", len(ctrl), ctrl)
	}
	rec, ok := ctrl[p.Name]
	if !ok {
		return fmt.Sprintf("subnet does not record pool %s: %v", p.Name, ctrl)
	}
	recIPs, err := ip.ParseSet(rec.IPs, 4)
	if err != nil {
		return err.Error()
	}
	if !recIPs.Subtract(got).IsEmpty() || !got.Subtract(recIPs).IsEmpty() {
		return fmt.Sprintf("subnet records %v for pool %s, which has %v", rec.IPs, p.Name, p.Spec.IPs)
	}
	if n := ptr.Deref(s.Status.AllocatedIPCount, -1); n != int64(want) {
		return fmt.Sprintf("subnet allocatedIPCount %d, want %d", n, want)
	}
	return ""
}
