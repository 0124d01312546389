package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

const kvNamespace = "kubevirt-vms"

// kvObject creates a KubeVirt object of kind (VirtualMachine or VirtualMachineInstance) in
// kvNamespace, owned by owner when not nil, and deletes it at the end of the test.
func kvObject(t *testing.T, kind, name string, owner *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: workload.KubeVirtGroup, Version: "v1", Kind: kind})
	o.SetNamespace(kvNamespace)
	o.SetName(name)
	if owner != nil {
		o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(),
			Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true)}})
	}
	if err := env.Client.Create(testContext(t), o); err != nil {
		t.Fatalf("create %s %s: %v", kind, name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	return o
}

// kvDelete deletes a KubeVirt object and waits until it is gone.
func kvDelete(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	if err := env.Client.Delete(testContext(t), o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		cur := o.DeepCopy()
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), cur)
		return client.IgnoreNotFound(err) == nil && err != nil, nil
	})
	if err != nil {
		t.Fatalf("%s %s not gone: %v", o.GetKind(), o.GetName(), err)
	}
}

// virtLauncher creates the pod that runs VMI vmi on node, as KubeVirt's virt-controller does.
func virtLauncher(t *testing.T, vmi *unstructured.Unstructured, name, node, pool string) *corev1.Pod {
	t.Helper()
	p := build.Pod(kvNamespace, name, build.Annotations(gcPodAnno(pool)),
		build.Owner(build.BlockingControllerRef(vmi.GetAPIVersion(), vmi.GetKind(), vmi.GetName(), string(vmi.GetUID()))),
		build.OnNode(node), build.Container("compute", "virt-launcher"))
	if err := env.Client.Create(testContext(t), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
	return p
}

// kvEndpoint returns the SpiderEndpoint name in kvNamespace, nil when there is none.
func kvEndpoint(t *testing.T, name string) *v2beta1.SpiderEndpoint {
	t.Helper()
	ep := &v2beta1.SpiderEndpoint{}
	if err := env.Client.Get(testContext(t), types.NamespacedName{Namespace: kvNamespace, Name: name}, ep); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		t.Fatal(err)
	}
	return ep
}

// ipam.enableKubevirtStaticIP (the chart's default) through the real plugin and two agents: a VM
// keeps its address across a live migration to another node and across a restart (a new VMI of
// the same VM), and gives it back when the VM is deleted, by its pod's DEL or by the GC when no
// DEL comes. KubeVirt's CRDs are minimal stand-ins (testdata/kubevirt-crds.yaml) and the test
// plays virt-controller, creating the VMIs and virt-launcher pods.
func TestKubeVirtVMKeepsItsAddress(t *testing.T) {
	const node1, node2, pool = "kv-node-1", "kv-node-2", "kv-pool"
	makeNamespace(t, kvNamespace, nil)
	makeNode(t, node1, nil)
	makeNode(t, node2, nil)
	createPool(t, pool, "10.78.0.0/24", "10.78.0.10-10.78.0.30")
	agent1 := startAgent(t, node1, nil) // the defaults: EnableKubevirtStaticIP on
	agent2 := startAgent(t, node2, nil)
	startGCController(t, controller.GCOptions{EnableStatefulSet: true, EnableKubevirtStaticIP: true})
	// KubeVirt is installed after Spiderpool, as on most clusters: the daemons discover its kinds
	// when they first need them.
	installCRDs(t, "testdata/kubevirt-crds.yaml")

	record := func(addr string) string { return poolRecords(t, pool)[addr] }
	add := func(a *runningAgent, pod *corev1.Pod) string {
		t.Helper()
		return gcAllocate(t, a, pod)
	}
	del := func(a *runningAgent, pod *corev1.Pod) {
		t.Helper()
		if _, err := (cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: pod, socket: a.socket}).run(t); err != nil {
			t.Fatalf("DEL %s: %v", pod.Name, err)
		}
	}
	gone := func(pod *corev1.Pod) {
		t.Helper()
		if err := env.Client.Delete(testContext(t), pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}

	vm := kvObject(t, workload.KindVM, "vm1", nil)
	vmi := kvObject(t, workload.KindVMI, "vm1", vm)
	src := virtLauncher(t, vmi, "virt-launcher-vm1-aaaaa", node1, pool)
	addr := add(agent1, src)
	ep := kvEndpoint(t, "vm1")
	if ep == nil || ep.Status.Current.UID != string(src.UID) || ep.Status.OwnerControllerType != workload.KindVMI || ep.Status.OwnerControllerName != "vm1" {
		t.Fatalf("endpoint vm1 = %+v, want the VMI's, current pod %s", ep, src.UID)
	}
	if kvEndpoint(t, src.Name) != nil {
		t.Errorf("an endpoint named after pod %s exists too", src.Name)
	}
	allocs, err := getPool(t, pool).Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if a := allocs[addr]; a.NamespacedName != kvNamespace+"/vm1" || a.PodUID != string(src.UID) {
		t.Fatalf("record of %s = %+v, want it named after the VMI for pod UID %s", addr, a, src.UID)
	}

	// Live migration: the target pod on node2 starts while the source still runs.
	dst := virtLauncher(t, vmi, "virt-launcher-vm1-bbbbb", node2, pool)
	if got := add(agent2, dst); got != addr {
		t.Fatalf("migration target got %s, want the VM's %s", got, addr)
	}
	if ep := kvEndpoint(t, "vm1"); ep.Status.Current.UID != string(dst.UID) || ep.Status.Current.Node != node2 {
		t.Fatalf("after the migration the endpoint's current pod is %+v, want %s on %s", ep.Status.Current, dst.UID, node2)
	}
	if got := record(addr); got != string(dst.UID) {
		t.Fatalf("after the migration %s is recorded for %q, want the target %s", addr, got, dst.UID)
	}
	// The source's DEL frees nothing of the target's.
	del(agent1, src)
	gone(src)
	if got := record(addr); got != string(dst.UID) {
		t.Fatalf("after the source's DEL %s is recorded for %q, want the target %s", addr, got, dst.UID)
	}

	// Restart: the VMI and its pod go, the VM stays and starts a new VMI.
	kvDelete(t, vmi)
	del(agent2, dst)
	gone(dst)
	if got := record(addr); got != string(dst.UID) {
		t.Fatalf("after the stopped VM's DEL %s is recorded for %q, want it kept for %s", addr, got, dst.UID)
	}
	time.Sleep(2 * time.Second) // the GC's pod events have run; the VM still wants the address
	if got := record(addr); got != string(dst.UID) {
		t.Fatalf("the GC released %s of a VM that still exists (record %q)", addr, got)
	}
	vmi2 := kvObject(t, workload.KindVMI, "vm1", vm)
	again := virtLauncher(t, vmi2, "virt-launcher-vm1-ccccc", node1, pool)
	if got := add(agent1, again); got != addr {
		t.Fatalf("the restarted VM got %s, want its %s", got, addr)
	}

	// The VM is deleted: its last pod's DEL gives the address back.
	kvDelete(t, vmi2)
	kvDelete(t, vm)
	del(agent1, again)
	if got, ok := poolRecords(t, pool)[addr]; ok {
		t.Fatalf("after the deleted VM's DEL %s is still recorded for %q", addr, got)
	}
	if ep := kvEndpoint(t, "vm1"); ep != nil {
		t.Fatalf("after the deleted VM's DEL its endpoint is left: %+v", ep.Status.Current)
	}
	gone(again)

	// A VM deleted with no DEL for its pod (its node died): the GC reclaims it.
	vm2 := kvObject(t, workload.KindVM, "vm2", nil)
	vmi3 := kvObject(t, workload.KindVMI, "vm2", vm2)
	lost := virtLauncher(t, vmi3, "virt-launcher-vm2-ddddd", node2, pool)
	addr2 := add(agent2, lost)
	kvDelete(t, vmi3)
	kvDelete(t, vm2)
	start := time.Now()
	gone(lost)
	ctx, cancel := context.WithTimeout(testContext(t), gcReclaimBudget)
	defer cancel()
	err = testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		_, held := poolRecords(t, pool)[addr2]
		return !held && kvEndpoint(t, "vm2") == nil, nil
	})
	if err != nil {
		t.Fatalf("address %s of deleted VM vm2 not reclaimed within %v: records %v", addr2, gcReclaimBudget, poolRecords(t, pool))
	}
	t.Logf("the GC reclaimed the address of a VM deleted without DEL %v after its pod went", time.Since(start).Round(time.Millisecond))
}
