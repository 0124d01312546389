package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// endpointWatchEvents is the apiserver's count of SpiderEndpoint watch events sent, to every
// watcher, since it started (apiserver_watch_events_total).
func endpointWatchEvents(t *testing.T) float64 {
	t.Helper()
	body, err := testenv.APIMetrics(testContext(t), env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "apiserver_watch_events_total{") && strings.Contains(line, `resource="spiderendpoints"`) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// Each agent watches only the SpiderEndpoints of its node's pods (the CRD's selectable field
// status.current.node): an endpoint written for a pod on one node reaches that node's agent and
// no other, so endpoint watch traffic does not grow with the number of nodes. A StatefulSet pod
// recreated on another node still keeps its address: the new node's agent, whose informer never
// held the endpoint, reads it live and takes it over.
func TestAgentsWatchOnlyTheirNodesEndpoints(t *testing.T) {
	const (
		ns          = "ep-select"
		nodeA       = "ep-select-a"
		nodeB       = "ep-select-b"
		pool        = "ep-select-pool"
		plainPods   = 6
		idleAgents  = 3 // agents of other nodes, which must not hear of nodeA's endpoints
		settleDelay = 2 * time.Second
	)
	makeNamespace(t, ns, nil)
	makeNode(t, nodeA, nil)
	makeNode(t, nodeB, nil)
	createPool(t, pool, "10.132.0.0/24", "10.132.0.10-10.132.0.60")
	sts := func(c *agent.Config) { c.EnableStatefulSet = true }
	agentA := startAgent(t, nodeA, sts)
	agentB := startAgent(t, nodeB, sts)
	for i := range idleAgents {
		n := fmt.Sprintf("ep-select-idle-%d", i)
		makeNode(t, n, nil)
		startAgent(t, n, sts)
	}
	anno := map[string]string{v2beta1.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}

	// Endpoint creations on nodeA: each is one event, to nodeA's agent alone (the others, 1 + 3
	// agents, would make it 5 per endpoint without the selection).
	time.Sleep(settleDelay) // the informers' initial lists are not events, but let them settle
	before := endpointWatchEvents(t)
	for i := range plainPods {
		p := makePod(t, ns, fmt.Sprintf("plain-%d", i), nodeA, anno, nil)
		gcForgetEndpoint(t, p.Name)
		if _, err := (cniInvocation{ifName: "eth0", pod: p, socket: agentA.socket}).add(t); err != nil {
			t.Fatalf("ADD %s: %v", p.Name, err)
		}
	}
	time.Sleep(settleDelay)
	sent := endpointWatchEvents(t) - before
	t.Logf("%d endpoints created on %s with %d agents running: %.0f watch events sent (%.2f per endpoint)",
		plainPods, nodeA, 2+idleAgents, sent, sent/plainPods)
	if sent != plainPods {
		t.Errorf("%.0f SpiderEndpoint watch events for %d endpoint creations, want %d: one each, to the agent of %s only",
			sent, plainPods, plainPods, nodeA)
	}

	// A StatefulSet pod moves from nodeA to nodeB and keeps its address.
	set := build.StatefulSet(ns, "db", build.Replicas(1), build.PodSelector(build.Selector("app", "db")),
		build.Template(build.Label("app", "db"), build.Container("c", "busybox")))
	if err := env.Client.Create(testContext(t), set); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), set) })
	gcForgetEndpoint(t, "db-0")
	old := stsFixedPod(t, set, "db-0", nodeA, anno)
	res, err := cniInvocation{ifName: "eth0", pod: old, socket: agentA.socket}.add(t)
	if err != nil {
		t.Fatalf("ADD db-0 on %s: %v", nodeA, err)
	}
	addrs := addresses(res)
	if len(addrs) != 1 {
		t.Fatalf("ADD db-0 on %s gave %v, want one address", nodeA, addrs)
	}
	del := cniInvocation{command: "DEL", cniVersion: "1.1.0", ifName: "eth0", pod: old, socket: agentA.socket}
	if _, err := del.run(t); err != nil {
		t.Fatalf("DEL db-0 on %s: %v", nodeA, err)
	}
	if err := env.Client.Delete(testContext(t), old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	if err := testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(old), &corev1.Pod{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}); err != nil {
		t.Fatalf("pod db-0 never went away: %v", err)
	}
	reborn := stsFixedPod(t, set, "db-0", nodeB, anno)
	res, err = cniInvocation{ifName: "eth0", pod: reborn, socket: agentB.socket}.add(t)
	if err != nil {
		t.Fatalf("ADD of db-0 recreated on %s: %v", nodeB, err)
	}
	if got := addresses(res); len(got) != 1 || got[0] != addrs[0] {
		t.Fatalf("db-0 recreated on %s got %v, want its address %s", nodeB, got, addrs[0])
	}
	if uid := poolRecords(t, pool)[addrs[0]]; uid != string(reborn.UID) {
		t.Errorf("record of %s names UID %q, want the new db-0's %s", addrs[0], uid, reborn.UID)
	}
	ep := &v2beta1.SpiderEndpoint{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: "db-0"}, ep); err != nil {
		t.Fatal(err)
	}
	if ep.Status.Current.UID != string(reborn.UID) || ep.Status.Current.Node != nodeB {
		t.Errorf("endpoint db-0 current %+v, want UID %s on %s", ep.Status.Current, reborn.UID, nodeB)
	}
	// The old incarnation's late DEL on nodeA, whose agent no longer sees the endpoint, frees
	// nothing.
	if _, err := del.run(t); err != nil {
		t.Fatalf("late DEL of the old db-0 on %s: %v", nodeA, err)
	}
	if uid := poolRecords(t, pool)[addrs[0]]; uid != string(reborn.UID) {
		t.Errorf("after the late DEL the record of %s names UID %q, want %s", addrs[0], uid, reborn.UID)
	}
}
