package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// stsFixedPod creates StatefulSet pod ns/name controlled by sts, bound to node.
func stsFixedPod(t *testing.T, sts *appsv1.StatefulSet, name, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	p := build.Pod(sts.Namespace, name, build.Annotations(annotations), build.Labels(sts.Spec.Template.Labels),
		build.Owner(build.BlockingControllerRef("apps/v1", "StatefulSet", sts.Name, string(sts.UID))),
		build.OnNode(node), build.Container("c", "busybox"))
	if err := env.Client.Create(testContext(t), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
	return p
}

// docs/design/behaviour.md#statefulset-fixed-ips through the real plugin and agent: the StatefulSet pod web-0
// is deleted (the kubelet's CNI DEL keeps its address) and recreated with a
// new UID; its ADD returns the same address and the pool record names the
// new UID. A late DEL of the old incarnation frees nothing.
func TestStatefulSetPodKeepsAddressAcrossRecreation(t *testing.T) {
	const (
		ns   = "sts-fixed-ip"
		node = "sts-node"
		pool = "sts-fixed-pool"
	)
	makeNamespace(t, ns, nil)
	makeNode(t, node, nil)
	createPool(t, pool, "10.131.0.0/24", "10.131.0.10-10.131.0.20")
	a := startAgent(t, node, func(c *agent.Config) { c.EnableStatefulSet = true })

	sts := build.StatefulSet(ns, "web", build.Replicas(2), build.PodSelector(build.Selector("app", "web")),
		build.Template(build.Label("app", "web"), build.Container("c", "busybox")))
	if err := env.Client.Create(testContext(t), sts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), sts) })
	anno := map[string]string{v2beta1.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}

	// filler holds an address until web-0 has its own; once it is freed, a
	// fresh allocation for the new web-0 would not return web-0's address.
	filler := makePod(t, ns, "filler", node, anno, nil)
	fillerInv := cniInvocation{ifName: "eth0", pod: filler, socket: a.socket}
	if _, err := fillerInv.add(t); err != nil {
		t.Fatalf("ADD filler: %v", err)
	}

	got := map[string]string{} // pod name -> address
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"web-0", "web-1"} {
		pods[name] = stsFixedPod(t, sts, name, node, anno)
		res, err := cniInvocation{ifName: "eth0", pod: pods[name], socket: a.socket}.add(t)
		if err != nil {
			t.Fatalf("ADD %s: %v", name, err)
		}
		if addrs := addresses(res); len(addrs) == 1 {
			got[name] = addrs[0]
		} else {
			t.Fatalf("ADD %s: addresses %v", name, addrs)
		}
	}
	old := pods["web-0"]
	fillerInv.command, fillerInv.cniVersion = "DEL", "1.1.0"
	if _, err := fillerInv.run(t); err != nil {
		t.Fatalf("DEL filler: %v", err)
	}

	// The kubelet tears the sandbox down, then the pod object goes.
	del := cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: old, socket: a.socket}
	if _, err := del.run(t); err != nil {
		t.Fatalf("DEL web-0: %v", err)
	}
	if uid := poolRecords(t, pool)[got["web-0"]]; uid != string(old.UID) {
		t.Fatalf("after DEL the record of %s is held by %q, want the old UID %s", got["web-0"], uid, old.UID)
	}
	if err := env.Client.Delete(testContext(t), old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(old), &corev1.Pod{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("pod web-0 never went away: %v", err)
	}

	reborn := stsFixedPod(t, sts, "web-0", node, anno)
	if reborn.UID == old.UID {
		t.Fatal("recreated pod has the old UID")
	}
	res, err := cniInvocation{ifName: "eth0", pod: reborn, socket: a.socket}.add(t)
	if err != nil {
		t.Fatalf("ADD of the new web-0: %v", err)
	}
	if addrs := addresses(res); len(addrs) != 1 || addrs[0] != got["web-0"] {
		t.Fatalf("new web-0 got %v, want %s", addrs, got["web-0"])
	}
	want := map[string]string{got["web-0"]: string(reborn.UID), got["web-1"]: string(pods["web-1"].UID)}
	if recs := poolRecords(t, pool); fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", recs, want)
	}
	ep := &v2beta1.SpiderEndpoint{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: "web-0"}, ep); err != nil {
		t.Fatal(err)
	}
	if ep.Status.Current.UID != string(reborn.UID) || ep.Status.Current.Node != node {
		t.Errorf("endpoint current %+v, want UID %s on %s", ep.Status.Current, reborn.UID, node)
	}

	// A late DEL of the old incarnation changes nothing.
	if _, err := del.run(t); err != nil {
		t.Fatalf("late DEL of the old web-0: %v", err)
	}
	if recs := poolRecords(t, pool); fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("records after the late DEL %v, want %v", recs, want)
	}
}
