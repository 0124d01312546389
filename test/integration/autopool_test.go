package integration

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// waitAutoPools waits until the auto pools labelled for the Deployment default/<name> satisfy cond.
func waitAutoPools(t *testing.T, name string, cond func([]v2beta1.SpiderIPPool) bool) []v2beta1.SpiderIPPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var l v2beta1.SpiderIPPoolList
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		if err := env.Client.List(ctx, &l, client.MatchingLabels{
			v2beta1.LabelOwnerApplicationKind: "Deployment",
			v2beta1.LabelOwnerApplicationNS:   "default",
			v2beta1.LabelOwnerApplicationName: name,
		}); err != nil {
			return false, err
		}
		return cond(l.Items), nil
	})
	if err != nil {
		t.Fatalf("auto pools of Deployment %s never reached the expected state (last: %+v): %v", name, l.Items, err)
	}
	return l.Items
}

func poolSize(p *v2beta1.SpiderIPPool) int64 {
	s, err := ip.ParseSet(p.Spec.IPs, 4)
	if err != nil {
		return -1
	}
	return s.Count()
}

// docs/design/behaviour.md#subnets-and-auto-created-pools: a Deployment annotated with a SpiderSubnet gets a pool of replicas+1 addresses of the
// subnet, which follows its scale, serves its pods through the agent, and goes with it.
func TestAutoPoolForDeployment(t *testing.T) {
	ctx := testContext(t)
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "auto-subnet-10-170"},
		Spec: v2beta1.SubnetSpec{IPVersion: ptr.To[int64](4), Subnet: "10.170.0.0/16",
			IPs: []string{"10.170.0.10-10.170.0.60"}, Gateway: ptr.To("10.170.0.1")},
	}
	labels := map[string]string{"app": "auto-nginx"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nginx"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					v2beta1.AnnoSpiderSubnet:          `{"ipv4":["` + subnet.Name + `"]}`,
					v2beta1.AnnoSpiderSubnetPoolIPNum: "+1",
				}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}
	// Registered before the managers start, so they run after they stopped: nothing recreates
	// what is removed. The auto pools are listed then, whatever their random names.
	t.Cleanup(func() {
		bg := context.Background()
		var l v2beta1.SpiderIPPoolList
		if err := env.Client.List(bg, &l, client.MatchingLabels{v2beta1.LabelOwnerSpiderSubnet: subnet.Name}); err == nil {
			for i := range l.Items {
				p := &l.Items[i]
				p.Finalizers = nil
				_ = env.Client.Update(bg, p)
				_ = env.Client.Delete(bg, p)
			}
		}
	})
	removeWhenDone(t, subnet.DeepCopy(), dep.DeepCopy())
	runManager(t, func(mgr ctrl.Manager) error {
		if err := controller.NewSubnetReconciler(mgr.GetClient()).SetupWithManager(mgr); err != nil {
			return err
		}
		return controller.NewAutoPoolReconciler(mgr.GetClient(), mgr.GetAPIReader()).SetupWithManager(mgr)
	})

	if err := env.Client.Create(ctx, subnet); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}

	subnetIPs, err := ip.ParseSet(subnet.Spec.IPs, 4)
	if err != nil {
		t.Fatal(err)
	}
	pools := waitAutoPools(t, dep.Name, func(ps []v2beta1.SpiderIPPool) bool { return len(ps) == 1 && poolSize(&ps[0]) == 3 })
	pool := pools[0]
	t.Logf("auto pool %s: ips %v", pool.Name, pool.Spec.IPs)
	if got, _ := ip.ParseSet(pool.Spec.IPs, 4); !got.Subtract(subnetIPs).IsEmpty() {
		t.Errorf("pool ips %v are not all in the subnet's %v", pool.Spec.IPs, subnet.Spec.IPs)
	}
	if pool.Spec.Subnet != subnet.Spec.Subnet || ptr.Deref(pool.Spec.Gateway, "") != "10.170.0.1" {
		t.Errorf("pool subnet %q gateway %v", pool.Spec.Subnet, pool.Spec.Gateway)
	}
	for k, want := range map[string]string{
		v2beta1.LabelOwnerApplicationGV: "apps_v1", v2beta1.LabelOwnerApplicationKind: "Deployment",
		v2beta1.LabelOwnerApplicationNS: "default", v2beta1.LabelOwnerApplicationName: "nginx",
		v2beta1.LabelOwnerApplicationUID: string(dep.UID), v2beta1.LabelIPPoolReclaim: "true",
		v2beta1.LabelIPPoolInterface: "eth0", v2beta1.LabelIPPoolVersion: "IPv4",
		v2beta1.LabelOwnerSpiderSubnet: subnet.Name,
	} {
		if got := pool.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	wantAffinity := map[string]string{
		v2beta1.AutoPoolPodAffinityAppAPIGrp: "apps", v2beta1.AutoPoolPodAffinityAppAPIVer: "v1",
		v2beta1.AutoPoolPodAffinityAppKind: "Deployment", v2beta1.AutoPoolPodAffinityAppNS: "default",
		v2beta1.AutoPoolPodAffinityAppName: "nginx",
	}
	if pool.Spec.PodAffinity == nil || !cmp.Equal(wantAffinity, pool.Spec.PodAffinity.MatchLabels) {
		t.Errorf("podAffinity %+v, want matchLabels %v", pool.Spec.PodAffinity, wantAffinity)
	}
	// The subnet controller sees the pool as its own and counts its addresses.
	waitSubnet(t, subnet.Name, func(s *v2beta1.SpiderSubnet) bool { return ptr.Deref(s.Status.AllocatedIPCount, -1) == 3 })

	// Scale to 4: the same pool grows to 5 addresses.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
		t.Fatal(err)
	}
	dep.Spec.Replicas = ptr.To[int32](4)
	if err := env.Client.Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	pools = waitAutoPools(t, dep.Name, func(ps []v2beta1.SpiderIPPool) bool { return len(ps) == 1 && poolSize(&ps[0]) == 5 })
	if pools[0].Name != pool.Name {
		t.Errorf("scaled: pool %s replaced by %s", pool.Name, pools[0].Name)
	}

	// A pod of the Deployment (through its ReplicaSet, as kube-controller-manager would make it)
	// gets its address from the auto pool.
	makeNode(t, "autonode", nil)
	a := startAgent(t, "autonode", func(c *agent.Config) { c.EnableAutoPool = true })
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nginx-5d4f8",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name,
				UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}
	if err := env.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), rs) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nginx-5d4f8-abcde", Labels: labels,
			Annotations: dep.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name,
				UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: "autonode", Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	res, err := cniInvocation{ifName: "eth0", pod: pod, socket: a.socket}.add(t)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	got := addresses(res)
	poolIPs, _ := ip.ParseSet(pools[0].Spec.IPs, 4)
	if len(got) != 1 || !poolIPs.Contains(netip.MustParseAddr(got[0])) {
		t.Fatalf("pod got %v, want one address of auto pool %s %v", got, pool.Name, pools[0].Spec.IPs)
	}
	if recs := poolRecords(t, pool.Name); recs[got[0]] != string(pod.UID) {
		t.Errorf("pool records %v, want %s for pod %s", recs, got[0], pod.UID)
	}

	// Delete the Deployment: the pool holds a record, so it stays until the pod's IP is released.
	if err := env.Client.Delete(ctx, dep); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the deletion event has been handled by now; the pool must still be there
	if pools := waitAutoPools(t, dep.Name, func(ps []v2beta1.SpiderIPPool) bool { return true }); len(pools) != 1 {
		t.Fatalf("pool with a record was deleted with the Deployment")
	}
	if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: pod, socket: a.socket}).run(t); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	waitAutoPools(t, dep.Name, func(ps []v2beta1.SpiderIPPool) bool { return len(ps) == 0 })
}
