package ctl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore/blockstoretest"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// rec is a record for testPool: IP -> "namespace/name@uid".
type rec map[string]string

func testPool(t *testing.T, name, subnet string, ips []string, records rec) v2beta1.SpiderIPPool {
	t.Helper()
	allocs := v2beta1.PoolIPAllocations{}
	for addr, holder := range records {
		pod, uid, _ := strings.Cut(holder, "@")
		allocs[addr] = v2beta1.PoolIPAllocation{NamespacedName: pod, PodUID: uid}
	}
	return *build.Pool(name, subnet, build.NoVersion(), build.IPs(ips...), build.Allocations(allocs))
}

// testEndpoint lists (interface, "ip/prefix", pool) triples.
func testEndpoint(ns, name, uid string, entries ...[3]string) v2beta1.SpiderEndpoint {
	opts := []build.Option{build.PodUID(uid), build.OnNode("node-1"), build.TopController("Pod", name)}
	for _, e := range entries {
		opts = append(opts, build.IPv4(e[0], e[1], e[2]))
	}
	return *build.Endpoint(ns, name, opts...)
}

func testPod(ns, name, uid string, phase corev1.PodPhase) corev1.Pod {
	return *build.Pod(ns, name, build.UID(uid), build.OnNode("node-1"), build.Phase(phase))
}

func stsPod(ns, name, uid, sts string) corev1.Pod {
	return *build.Pod(ns, name, build.UID(uid), build.OnNode("node-1"), build.Phase(corev1.PodRunning),
		build.Owner(build.ControllerRef("apps/v1", "StatefulSet", sts, "")))
}

func stsEndpoint(ep v2beta1.SpiderEndpoint, sts string) v2beta1.SpiderEndpoint {
	ep.Status.OwnerControllerType, ep.Status.OwnerControllerName = "StatefulSet", sts
	return ep
}

// brief is what a test asserts of a finding: the check, the IP and the objects named.
type brief struct {
	Check, IP, Pools, Endpoints, Pods string
}

func briefs(fs []Finding) []brief {
	var out []brief
	for _, f := range fs {
		out = append(out, brief{f.Check, f.IP, strings.Join(f.Pools, ","), strings.Join(f.Endpoints, ","), strings.Join(f.Pods, ",")})
	}
	return out
}

func TestDiagnose(t *testing.T) {
	const subnet = "10.1.0.0/24"
	ips := []string{"10.1.0.10-10.1.0.20"}
	healthyPool := func(t *testing.T) v2beta1.SpiderIPPool {
		return testPool(t, "a", subnet, ips, rec{"10.1.0.10": "ns/p1@u1", "10.1.0.11": "ns/p2@u2"})
	}
	healthyEps := []v2beta1.SpiderEndpoint{
		testEndpoint("ns", "p1", "u1", [3]string{"eth0", "10.1.0.10/24", "a"}),
		testEndpoint("ns", "p2", "u2", [3]string{"eth0", "10.1.0.11/24", "a"}),
	}
	healthyPods := []corev1.Pod{testPod("ns", "p1", "u1", corev1.PodRunning), testPod("ns", "p2", "u2", corev1.PodPending)}
	// StatefulSet db wants members 0 and 1.
	wants := func(_ context.Context, ns, sts, pod string) (bool, error) {
		return ns == "ns" && sts == "db" && (pod == "db-0" || pod == "db-1"), nil
	}

	tests := []struct {
		name    string
		snap    func(t *testing.T) *Snapshot
		sts     bool
		pools   []string
		want    []brief
		message string // a substring of the first finding's message
		// statusOnly marks a case about the encoding of status.allocatedIPs, which pools in block
		// format do not use; blockMessage replaces message for them when it differs.
		statusOnly   bool
		blockMessage string
	}{
		{
			name: "healthy",
			snap: func(t *testing.T) *Snapshot {
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: healthyEps, Pods: healthyPods}
			},
		},
		{
			name: "same IP in two pools",
			snap: func(t *testing.T) *Snapshot {
				b := testPool(t, "b", subnet, ips, rec{"10.1.0.10": "ns/p3@u3"})
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t), b},
					Endpoints: append(healthyEps, testEndpoint("ns", "p3", "u3", [3]string{"eth0", "10.1.0.10/24", "b"})),
					Pods:      append(healthyPods, testPod("ns", "p3", "u3", corev1.PodRunning))}
			},
			want:    []brief{{CheckDuplicateIP, "10.1.0.10", "a,b", "", "ns/p1,ns/p3"}},
			message: "IP 10.1.0.10 is recorded 2 times: SpiderIPPool a for pod ns/p1 (UID u1); SpiderIPPool b for pod ns/p3 (UID u3)",
		},
		{
			name: "one IPv6 address under two spellings in one pool",
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "v6", "fd00::/64", []string{"fd00::10-fd00::20"}, rec{"fd00::10": "ns/p1@u1", "fd00:0::10": "ns/p2@u2"})
				eps := []v2beta1.SpiderEndpoint{
					testEndpoint("ns", "p1", "u1"), testEndpoint("ns", "p2", "u2"),
				}
				eps[0].Status.Current.IPs = []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv6: ptr.To("fd00::10/64"), IPv6Pool: ptr.To("v6")}}
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: eps, Pods: healthyPods}
			},
			want: []brief{
				{CheckDuplicateIP, "fd00::10", "v6", "", "ns/p1,ns/p2"},
				{CheckRecordWithoutEndpoint, "fd00::10", "v6", "ns/p2", "ns/p2"},
			},
			statusOnly: true, // blocks: TestDiagnoseBlocks, one address in two blocks
		},
		{
			name: "one key twice in the encoded records",
			snap: func(t *testing.T) *Snapshot {
				p := healthyPool(t)
				p.Status.AllocatedIPs = ptr.To(`{"10.1.0.10":{"pod":"ns/p9","podUid":"u9"},"10.1.0.10":{"pod":"ns/p1","podUid":"u1"},"10.1.0.11":{"pod":"ns/p2","podUid":"u2"}}`)
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: healthyEps, Pods: healthyPods}
			},
			want:       []brief{{CheckDuplicateIP, "10.1.0.10", "a", "", ""}},
			message:    `status.allocatedIPs has key "10.1.0.10" more than once`,
			statusOnly: true,
		},
		{
			name: "record and endpoint of a deleted pod",
			snap: func(t *testing.T) *Snapshot {
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: healthyEps, Pods: healthyPods[1:]}
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.10", "a", "", "ns/p1"},
				{CheckOrphanEndpoint, "", "a", "ns/p1", "ns/p1"},
			},
			message: "SpiderIPPool a records 10.1.0.10 for pod ns/p1 (UID u1), which is gone",
		},
		{
			name: "pod recreated under the same name",
			snap: func(t *testing.T) *Snapshot {
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: healthyEps,
					Pods: []corev1.Pod{testPod("ns", "p1", "u1-new", corev1.PodRunning), healthyPods[1]}}
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.10", "a", "", "ns/p1"},
				{CheckOrphanEndpoint, "", "a", "ns/p1", "ns/p1"},
			},
			message: "which is replaced (pod now has UID u1-new)",
		},
		{
			name: "finished pod",
			snap: func(t *testing.T) *Snapshot {
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: healthyEps,
					Pods: []corev1.Pod{testPod("ns", "p1", "u1", corev1.PodSucceeded), healthyPods[1]}}
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.10", "a", "", "ns/p1"},
				{CheckOrphanEndpoint, "", "a", "ns/p1", "ns/p1"},
			},
			message: "which is Succeeded",
		},
		{
			name: "StatefulSet member gone but expected: kept",
			sts:  true,
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "a", subnet, ips, rec{"10.1.0.12": "ns/db-1@old"})
				ep := stsEndpoint(testEndpoint("ns", "db-1", "old", [3]string{"eth0", "10.1.0.12/24", "a"}), "db")
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: []v2beta1.SpiderEndpoint{ep}}
			},
		},
		{
			name: "StatefulSet member recreated, not yet given its IP: matched by name",
			sts:  true,
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "a", subnet, ips, rec{"10.1.0.12": "ns/db-1@old"})
				ep := stsEndpoint(testEndpoint("ns", "db-1", "old", [3]string{"eth0", "10.1.0.12/24", "a"}), "db")
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: []v2beta1.SpiderEndpoint{ep},
					Pods: []corev1.Pod{stsPod("ns", "db-1", "new", "db")}}
			},
		},
		{
			name: "StatefulSet member beyond the replicas",
			sts:  true,
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "a", subnet, ips, rec{"10.1.0.12": "ns/db-5@old"})
				ep := stsEndpoint(testEndpoint("ns", "db-5", "old", [3]string{"eth0", "10.1.0.12/24", "a"}), "db")
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: []v2beta1.SpiderEndpoint{ep}}
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.12", "a", "", "ns/db-5"},
				{CheckOrphanEndpoint, "", "a", "ns/db-5", "ns/db-5"},
			},
			message: "for pod ns/db-5 (UID old), which is gone, and StatefulSet db does not keep it",
		},
		{
			name: "StatefulSet handling off: a gone member is an orphan",
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "a", subnet, ips, rec{"10.1.0.12": "ns/db-1@old"})
				ep := stsEndpoint(testEndpoint("ns", "db-1", "old", [3]string{"eth0", "10.1.0.12/24", "a"}), "db")
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: []v2beta1.SpiderEndpoint{ep}}
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.12", "a", "", "ns/db-1"},
				{CheckOrphanEndpoint, "", "a", "ns/db-1", "ns/db-1"},
			},
		},
		{
			name: "record without endpoint, endpoint without record",
			snap: func(t *testing.T) *Snapshot {
				eps := []v2beta1.SpiderEndpoint{
					testEndpoint("ns", "p1", "u1", [3]string{"eth0", "10.1.0.10/24", "a"}, [3]string{"net1", "10.1.0.15/24", "a"}),
				}
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: eps, Pods: healthyPods}
			},
			want: []brief{
				{CheckRecordWithoutEndpoint, "10.1.0.11", "a", "", "ns/p2"},
				{CheckEndpointNotRecorded, "10.1.0.15", "a", "ns/p1", "ns/p1"},
			},
		},
		{
			name: "endpoint names a pool that does not exist",
			snap: func(t *testing.T) *Snapshot {
				eps := append(healthyEps[:1:1], testEndpoint("ns", "p2", "u2", [3]string{"eth0", "10.1.0.11/24", "a"}, [3]string{"net1", "10.9.0.1/24", "gone"}))
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: eps, Pods: healthyPods}
			},
			want:    []brief{{CheckEndpointNotRecorded, "10.9.0.1", "gone", "ns/p2", "ns/p2"}},
			message: "from SpiderIPPool gone, which does not exist",
		},
		{
			name: "endpoint lists an IP its pool records for another pod",
			snap: func(t *testing.T) *Snapshot {
				eps := append(healthyEps[:1:1], testEndpoint("ns", "p2", "u2", [3]string{"eth0", "10.1.0.11/24", "a"}, [3]string{"net1", "10.1.0.10/24", "a"}))
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: eps, Pods: healthyPods}
			},
			want:    []brief{{CheckEndpointNotRecorded, "10.1.0.10", "a", "ns/p2", "ns/p2,ns/p1"}},
			message: "SpiderEndpoint ns/p2 (UID u2) lists 10.1.0.10/24 on net1 but SpiderIPPool a records it for pod ns/p1 (UID u1)",
		},
		{
			name: "allocatedIPCount disagrees",
			snap: func(t *testing.T) *Snapshot {
				p := healthyPool(t)
				p.Status.AllocatedIPCount = ptr.To[int64](5)
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: healthyEps, Pods: healthyPods}
			},
			want:         []brief{{CheckAllocatedCount, "", "a", "", ""}},
			message:      "SpiderIPPool a: status.allocatedIPCount is 5 but status.allocatedIPs holds 2 records",
			blockMessage: "SpiderIPPool a: status.allocatedIPCount is 5 but its SpiderIPBlocks hold 2 records",
		},
		{
			name: "record outside the pool's IPs",
			snap: func(t *testing.T) *Snapshot {
				p := testPool(t, "a", subnet, ips, rec{"10.1.0.10": "ns/p1@u1", "10.1.0.11": "ns/p2@u2"})
				p.Spec.ExcludeIPs = []string{"10.1.0.11"}
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: healthyEps, Pods: healthyPods}
			},
			want: []brief{{CheckBadRecord, "10.1.0.11", "a", "", "ns/p2"}},
		},
		{
			name: "undecodable records",
			snap: func(t *testing.T) *Snapshot {
				p := healthyPool(t)
				p.Status.AllocatedIPs = ptr.To(`{"10.1.0.10":`)
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: healthyEps, Pods: healthyPods}
			},
			want: []brief{
				{CheckBadRecord, "", "a", "", ""},
				{CheckEndpointNotRecorded, "10.1.0.10", "a", "ns/p1", "ns/p1"},
				{CheckEndpointNotRecorded, "10.1.0.11", "a", "ns/p2", "ns/p2"},
			},
			statusOnly: true,
		},
		{
			name:  "scoped to other pools",
			pools: []string{"b"},
			snap: func(t *testing.T) *Snapshot {
				return &Snapshot{Pools: []v2beta1.SpiderIPPool{healthyPool(t)}, Endpoints: healthyEps, Pods: healthyPods[1:]}
			},
		},
	}
	for _, blocks := range []bool{false, true} {
		for _, tc := range tests {
			if blocks && tc.statusOnly {
				continue
			}
			name, message := "status/"+tc.name, tc.message
			if blocks {
				name = "blocks/" + tc.name
				if tc.blockMessage != "" {
					message = tc.blockMessage
				}
			}
			t.Run(name, func(t *testing.T) {
				snap := tc.snap(t)
				if blocks {
					snap = inBlocks(t, snap)
				}
				got, err := Diagnose(context.Background(), snap, DoctorOptions{EnableStatefulSet: tc.sts, StatefulSetWants: wants, Pools: tc.pools})
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, briefs(got)); d != "" {
					t.Errorf("findings (-want +got):\n%s\nfull: %+v", d, got)
				}
				if message != "" && (len(got) == 0 || !strings.Contains(got[0].Message, message)) {
					t.Errorf("first finding %+v does not say %q", got, message)
				}
			})
		}
	}
}

// inBlocks returns s with every pool in block format (blockstoretest.InBlocks): its records in
// SpiderIPBlocks of node-1 and left out of its status, whose count stays as s had it (a count
// that disagrees with the records is a mirror behind).
func inBlocks(t *testing.T, s *Snapshot) *Snapshot {
	t.Helper()
	out := *s
	out.Pools = nil
	for i := range s.Pools {
		p, blocks := blockstoretest.InBlocks(t, &s.Pools[i], "node-1")
		if c := s.Pools[i].Status.AllocatedIPCount; c != nil {
			p.Status.AllocatedIPCount = ptr.To(*c)
		}
		out.Pools = append(out.Pools, *p)
		for _, b := range blocks {
			out.Blocks = append(out.Blocks, *b)
		}
	}
	return &out
}

// What only blocks can get wrong, and what their pool's status (the mirror) must not be read for.
func TestDiagnoseBlocks(t *testing.T) {
	const subnet = "10.1.0.0/24"
	ips := []string{"10.1.0.10-10.1.0.40"}
	pods := []corev1.Pod{testPod("ns", "p1", "u1", corev1.PodRunning), testPod("ns", "p2", "u2", corev1.PodRunning)}
	eps := []v2beta1.SpiderEndpoint{
		testEndpoint("ns", "p1", "u1", [3]string{"eth0", "10.1.0.10/24", "a"}),
		testEndpoint("ns", "p2", "u2", [3]string{"eth0", "10.1.0.33/24", "a"}),
	}
	// healthy is pool a with one record in each of two blocks.
	healthy := func(t *testing.T) *Snapshot {
		return inBlocks(t, &Snapshot{Pools: []v2beta1.SpiderIPPool{testPool(t, "a", subnet, ips, rec{"10.1.0.10": "ns/p1@u1", "10.1.0.33": "ns/p2@u2"})},
			Endpoints: eps, Pods: pods})
	}
	tests := []struct {
		name    string
		snap    func(t *testing.T) *Snapshot
		want    []brief
		message string // a substring of the first finding's message
	}{
		{name: "healthy", snap: healthy},
		{
			name: "the mirror's records are not read",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				s.Pools[0].Status.AllocatedIPs = ptr.To(`{"10.1.0.12":{"pod":"ns/gone","podUid":"g"}}`)
				return s
			},
		},
		{
			name: "blocks of another incarnation of the pool are not its records",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				stale := s.Blocks[0].DeepCopy()
				stale.Name, stale.Spec.PoolUID = "a.old", "uid-old"
				stale.Spec.Records = map[string]ipblock.BlockRecord{"10.1.0.11": {Pod: "ns/gone", PodUID: "g"}}
				s.Blocks = append(s.Blocks, *stale)
				return s
			},
		},
		{
			name: "blocks of a pool in status format are not read",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				p := testPool(t, "b", subnet, []string{"10.1.0.50-10.1.0.60"}, nil)
				converting := testPool(t, "b", subnet, nil, rec{"10.1.0.50": "ns/gone@g"})
				_, blocks := blockstoretest.InBlocks(t, &converting, "")
				s.Pools = append(s.Pools, p)
				s.Blocks = append(s.Blocks, *blocks[0])
				return s
			},
		},
		{
			name: "record outside its block",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				s.Blocks[0].Spec.Records["10.1.0.34"] = ipblock.BlockRecord{Pod: "ns/p2", PodUID: "u2"}
				return s
			},
			want: []brief{
				{CheckBadRecord, "10.1.0.34", "a", "", "ns/p2"},
				{CheckAllocatedCount, "", "a", "", ""},
				{CheckRecordWithoutEndpoint, "10.1.0.34", "a", "ns/p2", "ns/p2"},
			},
			message: "records 10.1.0.34 for pod ns/p2 (UID u2), outside its range 10.1.0.0/27",
		},
		{
			name: "one address in two blocks",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				s.Blocks[1].Spec.Records["10.1.0.10"] = ipblock.BlockRecord{Pod: "ns/p2", PodUID: "u2"}
				s.Pools[0].Status.AllocatedIPCount = ptr.To[int64](3)
				return s
			},
			want: []brief{
				{CheckBadRecord, "10.1.0.10", "a", "", "ns/p2"},
				{CheckDuplicateIP, "10.1.0.10", "a", "", "ns/p1,ns/p2"},
				{CheckRecordWithoutEndpoint, "10.1.0.10", "a", "ns/p2", "ns/p2"},
			},
		},
		{
			name: "record of a deleted pod",
			snap: func(t *testing.T) *Snapshot {
				s := healthy(t)
				s.Pods = s.Pods[1:]
				return s
			},
			want: []brief{
				{CheckOrphanRecord, "10.1.0.10", "a", "", "ns/p1"},
				{CheckOrphanEndpoint, "", "a", "ns/p1", "ns/p1"},
			},
			message: "SpiderIPPool a records 10.1.0.10 for pod ns/p1 (UID u1), which is gone",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Diagnose(context.Background(), tc.snap(t), DoctorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, briefs(got)); d != "" {
				t.Errorf("findings (-want +got):\n%s\nfull: %+v", d, got)
			}
			if tc.message != "" && (len(got) == 0 || !strings.Contains(got[0].Message, tc.message)) {
				t.Errorf("first finding %+v does not say %q", got, tc.message)
			}
		})
	}
}

func TestDiagnoseStatefulSetRuleError(t *testing.T) {
	p := testPool(t, "a", "10.1.0.0/24", []string{"10.1.0.10"}, rec{"10.1.0.10": "ns/db-0@u"})
	ep := stsEndpoint(testEndpoint("ns", "db-0", "u", [3]string{"eth0", "10.1.0.10/24", "a"}), "db")
	_, err := Diagnose(context.Background(), &Snapshot{Pools: []v2beta1.SpiderIPPool{p}, Endpoints: []v2beta1.SpiderEndpoint{ep}},
		DoctorOptions{EnableStatefulSet: true, StatefulSetWants: func(context.Context, string, string, string) (bool, error) {
			return false, errors.New("apiserver down")
		}})
	if err == nil || !strings.Contains(err.Error(), "StatefulSet ns/db: apiserver down") {
		t.Errorf("err = %v, want the StatefulSet rule's error with the StatefulSet named", err)
	}
}

func TestRepeatedKeys(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{`{}`, nil},
		{`{"a":{"x":1},"b":2}`, nil},
		{`{"a":1,"b":{"a":1},"a":{"c":[1,2]},"a":3}`, []string{"a"}},
		{`not json`, nil},
		{`null`, nil},
	} {
		if d := cmp.Diff(tc.want, repeatedKeys(tc.raw)); d != "" {
			t.Errorf("repeatedKeys(%s) (-want +got):\n%s", tc.raw, d)
		}
	}
}
