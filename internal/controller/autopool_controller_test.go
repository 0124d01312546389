package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func reconcileAuto(t *testing.T, c client.Client, kind workloadKind, name string) reconcile.Result {
	t.Helper()
	k := &kindReconciler{r: NewAutoPoolReconciler(c, c), kind: kind}
	res, err := k.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: name}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func autoPools(t *testing.T, c client.Client, name string) []v2beta1.SpiderIPPool {
	t.Helper()
	var l v2beta1.SpiderIPPoolList
	if err := c.List(context.Background(), &l, client.MatchingLabels{v2beta1.LabelOwnerApplicationName: name}); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func onePool(t *testing.T, c client.Client, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	pools := autoPools(t, c, name)
	if len(pools) != 1 {
		t.Fatalf("auto pools of %s: got %d, want 1", name, len(pools))
	}
	return &pools[0]
}

// A subnet and a pool written past the webhook keep upstream's spellings: the auto pool still
// skips the pool's addresses and is created with the canonical subnet the webhook would store.
func TestAutoPoolFromSubnetWithHostBits(t *testing.T) {
	subnet := build.Subnet("s4", "10.171.0.1/16", build.UID("uid-s4"), build.NoVersion(), build.IPs("10.171.0.10-10.171.0.60"))
	taken := build.Pool("manual", "10.171.9.9/16", build.UID("uid-manual"), build.IPs("10.171.0.10-10.171.0.11"))
	dep := build.Deployment("default", "spelt", build.UID("uid-spelt"), build.Replicas(2), build.Template(
		build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s4"]}`), build.Annotation(v2beta1.AnnoSpiderSubnetPoolIPNum, "2")))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet, taken, dep).
		WithStatusSubresource(&v2beta1.SpiderIPPool{}).Build()

	reconcileAuto(t, c, deploymentKind, "spelt")
	pool := onePool(t, c, "spelt")
	got := map[string]any{"subnet": pool.Spec.Subnet, "ips": pool.Spec.IPs}
	want := map[string]any{"subnet": "10.171.0.0/16", "ips": []string{"10.171.0.12-10.171.0.13"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("auto pool (-want +got):\n%s", diff)
	}
}

// A Deployment with /subnet gets one pool of replicas+N addresses, skipping addresses other pools
// of the subnet hold, labelled and with podAffinity for the Deployment; it grows and shrinks with
// the replica count and keeps allocated addresses on shrink.
func TestAutoPoolDeploymentLifecycle(t *testing.T) {
	subnet := build.Subnet("s4", "10.170.0.0/16", build.UID("uid-s4"), build.IPs("10.170.0.10-10.170.0.60"), build.Gateway("10.170.0.1"))
	taken := build.Pool("manual", "10.170.0.0/16", build.UID("uid-manual"), build.IPs("10.170.0.10-10.170.0.11"))
	dep := build.Deployment("default", "nginx", build.UID("uid-nginx"), build.Replicas(2), build.Template(
		build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s4"]}`), build.Annotation(v2beta1.AnnoSpiderSubnetPoolIPNum, "+1")))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet, taken, dep).
		WithStatusSubresource(&v2beta1.SpiderIPPool{}).Build()
	ctx := context.Background()

	reconcileAuto(t, c, deploymentKind, "nginx")
	pool := onePool(t, c, "nginx")
	if !strings.HasPrefix(pool.Name, "auto4-nginx-eth0-") || len(pool.Name) != len("auto4-nginx-eth0-")+5 {
		t.Errorf("name %q, want auto4-nginx-eth0-<5 chars>", pool.Name)
	}
	if diff := cmp.Diff([]string{"10.170.0.12-10.170.0.14"}, pool.Spec.IPs); diff != "" {
		t.Errorf("ips (-want +got):\n%s", diff)
	}
	if pool.Spec.Gateway == nil || *pool.Spec.Gateway != "10.170.0.1" || pool.Spec.Subnet != "10.170.0.0/16" {
		t.Errorf("subnet/gateway %q/%v", pool.Spec.Subnet, pool.Spec.Gateway)
	}
	wantLabels := map[string]string{
		v2beta1.LabelOwnerApplicationGV: "apps_v1", v2beta1.LabelOwnerApplicationKind: "Deployment",
		v2beta1.LabelOwnerApplicationNS: "default", v2beta1.LabelOwnerApplicationName: "nginx",
		v2beta1.LabelOwnerApplicationUID: "uid-nginx", v2beta1.LabelIPPoolReclaim: "true",
		v2beta1.LabelIPPoolInterface: "eth0", v2beta1.LabelIPPoolVersion: "IPv4", v2beta1.LabelOwnerSpiderSubnet: "s4",
	}
	if diff := cmp.Diff(wantLabels, pool.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	wantAffinity := map[string]string{
		v2beta1.AutoPoolPodAffinityAppAPIGrp: "apps", v2beta1.AutoPoolPodAffinityAppAPIVer: "v1",
		v2beta1.AutoPoolPodAffinityAppKind: "Deployment", v2beta1.AutoPoolPodAffinityAppNS: "default",
		v2beta1.AutoPoolPodAffinityAppName: "nginx",
	}
	if pool.Spec.PodAffinity == nil {
		t.Fatal("no podAffinity")
	}
	if diff := cmp.Diff(wantAffinity, pool.Spec.PodAffinity.MatchLabels); diff != "" {
		t.Errorf("podAffinity (-want +got):\n%s", diff)
	}
	if controllerUID(pool) != subnet.UID {
		t.Errorf("controller %q, want the subnet", controllerUID(pool))
	}

	// Idempotent: a second reconcile neither creates nor resizes.
	reconcileAuto(t, c, deploymentKind, "nginx")
	if got := onePool(t, c, "nginx").Spec.IPs; !cmp.Equal(got, []string{"10.170.0.12-10.170.0.14"}) {
		t.Errorf("after re-reconcile ips %v", got)
	}

	// Scale to 4: two more free addresses.
	dep.Spec.Replicas = ptr.To[int32](4)
	if err := c.Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "nginx")
	if diff := cmp.Diff([]string{"10.170.0.12-10.170.0.16"}, onePool(t, c, "nginx").Spec.IPs); diff != "" {
		t.Errorf("grown ips (-want +got):\n%s", diff)
	}

	// Scale to 1 with .16 allocated: the free high addresses go, .16 stays.
	pool = onePool(t, c, "nginx")
	if err := pool.Status.SetAllocations(v2beta1.PoolIPAllocations{"10.170.0.16": {NamespacedName: "default/nginx-x", PodUID: "u"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	dep.Spec.Replicas = ptr.To[int32](1)
	if err := c.Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "nginx")
	if diff := cmp.Diff([]string{"10.170.0.12", "10.170.0.16"}, onePool(t, c, "nginx").Spec.IPs); diff != "" {
		t.Errorf("shrunk ips (-want +got):\n%s", diff)
	}

	// Deleted with a record left: the pool drains first, then goes.
	if err := c.Delete(ctx, dep); err != nil {
		t.Fatal(err)
	}
	if res := reconcileAuto(t, c, deploymentKind, "nginx"); res.RequeueAfter == 0 {
		t.Error("draining pool: want a requeue")
	}
	pool = onePool(t, c, "nginx")
	if err := pool.Status.SetAllocations(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "nginx")
	if got := autoPools(t, c, "nginx"); len(got) != 0 {
		t.Errorf("after delete: %d pools left", len(got))
	}
}

// An auto pool in block format keeps on shrink, and drains before its deletion for, the records
// of its SpiderIPBlocks, never those of its status (the controller's mirror, here left out as
// past its bound).
func TestAutoPoolInBlocks(t *testing.T) {
	subnet := build.Subnet("s4", "10.172.0.0/16", build.UID("uid-s4"), build.IPs("10.172.0.10-10.172.0.60"))
	dep := build.Deployment("default", "blk", build.UID("uid-blk"), build.Replicas(4), build.Template(
		build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s4"]}`), build.Annotation(v2beta1.AnnoSpiderSubnetPoolIPNum, "+1")))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet, dep).
		WithStatusSubresource(&v2beta1.SpiderIPPool{}).Build()
	ctx := context.Background()
	reconcileAuto(t, c, deploymentKind, "blk")
	pool := onePool(t, c, "blk")
	if diff := cmp.Diff([]string{"10.172.0.10-10.172.0.14"}, pool.Spec.IPs); diff != "" {
		t.Fatalf("ips (-want +got):\n%s", diff)
	}

	// Converted, with the highest address held in a block.
	pool.Status.AllocatedIPs = ptr.To(`{"10.172.0.14":{"pod":"default/blk-x","podUid":"u"}}`)
	converted, blocks := blockstoretest.InBlocks(t, pool, "n1")
	if err := c.Update(ctx, converted); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(ctx, converted); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	// Scale to 1: .14 stays for its holder, the lowest free address makes up the rest.
	dep.Spec.Replicas = ptr.To[int32](1)
	if err := c.Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "blk")
	if diff := cmp.Diff([]string{"10.172.0.10", "10.172.0.14"}, onePool(t, c, "blk").Spec.IPs); diff != "" {
		t.Errorf("shrunk ips (-want +got):\n%s", diff)
	}

	// Deleted while the block holds a record: the pool drains, then goes once the block is empty.
	if err := c.Delete(ctx, dep); err != nil {
		t.Fatal(err)
	}
	if res := reconcileAuto(t, c, deploymentKind, "blk"); res.RequeueAfter == 0 || len(autoPools(t, c, "blk")) != 1 {
		t.Fatalf("draining block-format pool: requeue %v, %d pools; want a requeue and the pool kept", res.RequeueAfter, len(autoPools(t, c, "blk")))
	}
	for _, b := range blocks {
		var cur ipblock.SpiderIPBlock
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), &cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Records = nil
		if err := c.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
	}
	reconcileAuto(t, c, deploymentKind, "blk")
	if got := autoPools(t, c, "blk"); len(got) != 0 {
		t.Errorf("after the block emptied: %d pools left", len(got))
	}
}

// The pool events that bring a draining pool back: its last record going, which for a pool in
// block format its exact count tells (its status records may be left out).
func TestAutoPoolChangedPredicate(t *testing.T) {
	status := func(recs string) *v2beta1.SpiderIPPool {
		p := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.20"))
		if recs != "" {
			p.Status.AllocatedIPs = ptr.To(recs)
		}
		return p
	}
	blocks := func(count int64) *v2beta1.SpiderIPPool {
		p := build.Pool("p", "10.6.0.0/24", build.IPs("10.6.0.10-10.6.0.20"),
			build.Annotation(ipblock.AnnoIPAMFormat, ipblock.FormatBlocks), build.Annotation(ipblock.AnnoRecordsInBlocks, "true"))
		p.Status.AllocatedIPCount = ptr.To(count)
		return p
	}
	const rec = `{"10.6.0.10":{"pod":"default/a","podUid":"u"}}`
	for _, tc := range []struct {
		name     string
		old, new *v2beta1.SpiderIPPool
		want     bool
	}{
		{"status: last record went", status(rec), status(""), true},
		{"status: a record stays", status(rec), status(rec), false},
		{"blocks: count went to 0", blocks(3), blocks(0), true},
		{"blocks: records left (out of the mirror)", blocks(3), blocks(2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := autoPoolChanged().Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
				t.Errorf("Update = %v, want %v", got, tc.want)
			}
		})
	}
}

// ippool-reclaim false keeps the pool after the workload is gone, and a new workload of the same
// name takes it over (uid label updated) instead of carving a second pool.
func TestAutoPoolKeptForReuse(t *testing.T) {
	subnet := build.Subnet("s4", "10.170.0.0/16", build.UID("uid-s4"), build.IPs("10.170.0.10-10.170.0.60"))
	anno := map[string]string{
		v2beta1.AnnoSpiderSubnets:         `[{"interface":"net1","ipv4":["s4"]}]`,
		v2beta1.AnnoSpiderSubnetPoolIPNum: "3",
		v2beta1.AnnoSpiderSubnetReclaimIP: "false",
	}
	sts := build.StatefulSet("default", "db", build.UID("uid-1"), build.Replicas(5), build.Template(build.Annotations(anno)))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet, sts).Build()
	ctx := context.Background()

	reconcileAuto(t, c, statefulSetKind, "db")
	pool := onePool(t, c, "db")
	if got, want := pool.Spec.IPs, []string{"10.170.0.10-10.170.0.12"}; !cmp.Equal(got, want) {
		t.Errorf("ips %v, want %v (fixed size 3)", got, want)
	}
	if pool.Labels[v2beta1.LabelIPPoolInterface] != "net1" || !strings.HasPrefix(pool.Name, "auto4-db-net1-") {
		t.Errorf("pool %q labels %v", pool.Name, pool.Labels)
	}
	if err := c.Delete(ctx, sts); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, statefulSetKind, "db")
	kept := onePool(t, c, "db")

	again := sts.DeepCopy()
	again.ResourceVersion, again.UID = "", "uid-2"
	if err := c.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, statefulSetKind, "db")
	reused := onePool(t, c, "db")
	if reused.Name != kept.Name || reused.Labels[v2beta1.LabelOwnerApplicationUID] != "uid-2" {
		t.Errorf("reuse: pool %q uid %q, want %q uid-2", reused.Name, reused.Labels[v2beta1.LabelOwnerApplicationUID], kept.Name)
	}
}

func TestDesiredIPs(t *testing.T) {
	tests := []struct {
		in        string
		replicas  int
		redundant int
		want      int
		err       string
	}{
		{"", 2, 1, 3, ""}, {"+1", 2, 1, 3, ""}, {"+0", 4, 1, 4, ""}, {"5", 2, 1, 5, ""}, {"", 2, 3, 5, ""},
		{"5000", 9999, 1, 5000, ""}, {"+4999", 1, 1, 5000, ""},
		{"x", 1, 1, 0, "want N or +N"}, {"+-1", 1, 1, 0, "want N or +N"}, {"-2", 1, 1, 0, "want N or +N"},
		{"99999999999999999999", 1, 1, 0, "want N or +N"}, {"1e3", 1, 1, 0, "want N or +N"},
		// Defect 2 of the fault issue: these made the controller allocate slices of that size.
		{"100000000000", 1, 1, 0, "asks for an IPPool of 100000000000 IPs; an IPPool holds at most 5000"},
		{"", 2147483647, 1, 0, "the default size +1 with 2147483647 replicas asks for an IPPool of 2147483648 IPs"},
		{"+5000", 1, 1, 0, "with 1 replicas asks for an IPPool of 5001 IPs"},
		{"+9223372036854775807", 1, 1, 0, "asks for an IPPool of"},
	}
	for _, tt := range tests {
		got, err := desiredIPs(tt.in, tt.replicas, tt.redundant)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("desiredIPs(%q, %d, %d) = %d, %v; want %d, error with %q", tt.in, tt.replicas, tt.redundant, got, err, tt.want, tt.err)
		}
	}
}

// TestAutoPoolAbsurdSize is defect 2 of the fault issue: a workload asking for 10^11 addresses
// (or 2^31-1 replicas) got the controller to allocate a slice of that size before looking at the
// subnet. Now nothing is created, nothing is allocated and a Warning names the annotation.
func TestAutoPoolAbsurdSize(t *testing.T) {
	subnet := build.Subnet("s4", "10.170.0.0/16", build.UID("uid-s4"), build.IPs("10.170.0.10-10.170.0.60"))
	for name, dep := range map[string]*appsv1.Deployment{
		"huge-annotation": build.Deployment("default", "huge-annotation", build.UID("uid-huge-annotation"), build.Replicas(2),
			build.Template(build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s4"]}`),
				build.Annotation(v2beta1.AnnoSpiderSubnetPoolIPNum, "100000000000"))),
		"huge-replicas": build.Deployment("default", "huge-replicas", build.UID("uid-huge-replicas"), build.Replicas(2147483647),
			build.Template(build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s4"]}`))),
	} {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet.DeepCopy(), dep).
				WithStatusSubresource(&v2beta1.SpiderIPPool{}).Build()
			rec := events.NewFakeRecorder(4)
			r := NewAutoPoolReconciler(c, c)
			r.Recorder = rec
			k := &kindReconciler{r: r, kind: deploymentKind}
			if _, err := k.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: name}}); err != nil {
				t.Fatal(err)
			}
			if pools := autoPools(t, c, name); len(pools) != 0 {
				t.Errorf("%d auto pools created", len(pools))
			}
			select {
			case ev := <-rec.Events:
				if !strings.Contains(ev, "Warning InvalidAutoPoolSize") || !strings.Contains(ev, "an IPPool holds at most 5000") {
					t.Errorf("event %q", ev)
				}
			default:
				t.Error("no Warning event on the workload")
			}
		})
	}
}

// A pool whose spec.ips is a whole IPv6 /64 (an auto pool edited by hand) shrinks by walking only
// the addresses it gives back, not by listing the pool.
func TestAutoPoolShrinkHugePool(t *testing.T) {
	subnet := build.Subnet("s6", "fd00:170::/64", build.UID("uid-s6"), build.IPs("fd00:170::a-fd00:170::ffff:ffff:ffff:ffff"))
	dep := build.Deployment("default", "v6", build.UID("uid-v6"), build.Replicas(2),
		build.Template(build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv6":["s6"]}`)))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(subnet, dep).
		WithStatusSubresource(&v2beta1.SpiderIPPool{}).Build()
	reconcileAuto(t, c, deploymentKind, "v6")
	pool := onePool(t, c, "v6")
	pool.Spec.IPs = []string{"fd00:170::a-fd00:170::ffff:ffff:ffff:ffff"}
	if err := c.Update(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "v6")
	if got := onePool(t, c, "v6").Spec.IPs; !cmp.Equal(got, []string{"fd00:170::a-fd00:170::c"}) {
		t.Errorf("shrunk pool %v, want the three lowest addresses", got)
	}
}

func TestAutoPoolNameLength(t *testing.T) {
	name := autoPoolName(6, strings.Repeat("a", 80), "eth0")
	if len(name) > 63 || !strings.HasPrefix(name, "auto6-aaa") || !strings.Contains(name, "-eth0-") {
		t.Errorf("name %q (%d chars)", name, len(name))
	}
}

// The other kinds: a DaemonSet is sized by the nodes, a CronJob by its jobs' parallelism, and a
// ReplicaSet or Job with a controller gets nothing (its controller's pool serves its pods).
func TestAutoPoolOtherKinds(t *testing.T) {
	subnet := build.Subnet("s4", "10.170.0.0/16", build.UID("uid-s4"), build.IPs("10.170.0.10-10.170.0.60"))
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		v2beta1.AnnoSpiderSubnet: `{"ipv4":["s4"]}`,
	}}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent", UID: "uid-ds"},
		Spec: appsv1.DaemonSetSpec{Template: tmpl}}
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backup", UID: "uid-cj"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](3), Template: tmpl}}}}
	owned := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", UID: "uid-rs",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-web", Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Template: tmpl}}
	standalone := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "solo", UID: "uid-solo"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Template: tmpl}}
	var objs []client.Object
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		objs = append(objs, build.Node(n))
	}
	objs = append(objs, subnet, ds, cj, owned, standalone)
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(objs...).Build()

	reconcileAuto(t, c, daemonSetKind, "agent")
	if got := onePool(t, c, "agent"); !cmp.Equal(got.Spec.IPs, []string{"10.170.0.10-10.170.0.14"}) || got.Labels[v2beta1.LabelOwnerApplicationKind] != "DaemonSet" {
		t.Errorf("DaemonSet pool ips %v labels %v, want 4 nodes + 1", got.Spec.IPs, got.Labels)
	}
	reconcileAuto(t, c, cronJobKind, "backup")
	if got := onePool(t, c, "backup"); !cmp.Equal(got.Spec.IPs, []string{"10.170.0.15-10.170.0.18"}) || got.Labels[v2beta1.LabelOwnerApplicationGV] != "batch_v1" {
		t.Errorf("CronJob pool ips %v labels %v, want parallelism 3 + 1", got.Spec.IPs, got.Labels)
	}
	reconcileAuto(t, c, replicaSetKind, "web-1")
	if got := autoPools(t, c, "web-1"); len(got) != 0 {
		t.Errorf("ReplicaSet with a controller got %d pools", len(got))
	}
	reconcileAuto(t, c, replicaSetKind, "solo")
	if got := onePool(t, c, "solo"); !cmp.Equal(got.Spec.IPs, []string{"10.170.0.19-10.170.0.21"}) {
		t.Errorf("standalone ReplicaSet pool ips %v", got.Spec.IPs)
	}
}

// A workload naming a subnet that does not exist yet is retried later, not failed.
func TestAutoPoolWaitsForSubnet(t *testing.T) {
	dep := build.Deployment("default", "early", build.UID("uid-early"), build.Replicas(1),
		build.Template(build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["later"]}`)))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(dep).Build()
	if res := reconcileAuto(t, c, deploymentKind, "early"); res.RequeueAfter != AutoPoolSubnetRetry {
		t.Errorf("requeue %v, want %v", res.RequeueAfter, AutoPoolSubnetRetry)
	}
	if err := c.Create(context.Background(), build.Subnet("later", "10.170.0.0/16", build.UID("uid-later"), build.IPs("10.170.0.10-10.170.0.60"))); err != nil {
		t.Fatal(err)
	}
	reconcileAuto(t, c, deploymentKind, "early")
	if got := onePool(t, c, "early"); !cmp.Equal(got.Spec.IPs, []string{"10.170.0.10-10.170.0.11"}) {
		t.Errorf("ips %v", got.Spec.IPs)
	}
}

// FuzzDesiredIPs: any annotation and replica count gives either an error or a size the
// controller can carve (0 to MaxAutoPoolIPs), never a panic or an overflowed size.
func FuzzDesiredIPs(f *testing.F) {
	for _, s := range []string{"", "+1", "5", "100000000000", "+9223372036854775807", "-1", "+", "1e3"} {
		f.Add(s, int32(2), uint16(1))
	}
	f.Add("", int32(2147483647), uint16(1))
	f.Fuzz(func(t *testing.T, ipNumber string, replicas int32, redundant uint16) {
		if replicas < 0 {
			replicas = -replicas
		}
		n, err := desiredIPs(ipNumber, int(replicas), int(redundant))
		if err == nil && (n < 0 || n > MaxAutoPoolIPs) {
			t.Fatalf("desiredIPs(%q, %d, %d) = %d", ipNumber, replicas, redundant, n)
		}
	})
}
