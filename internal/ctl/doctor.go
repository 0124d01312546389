package ctl

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/utils/ptr"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// The checks of doctor, the `check` of a Finding.
const (
	// CheckDuplicateIP: one address recorded more than once (in two pools, or twice in one).
	CheckDuplicateIP = "duplicate-ip"
	// CheckBadRecord: a record or endpoint entry that does not decode, or lies outside its pool.
	CheckBadRecord = "bad-record"
	// CheckOrphanRecord: a record whose pod is gone, was replaced or finished.
	CheckOrphanRecord = "orphan-record"
	// CheckRecordWithoutEndpoint: a live pod's record that its SpiderEndpoint does not list.
	CheckRecordWithoutEndpoint = "record-without-endpoint"
	// CheckEndpointNotRecorded: an endpoint address that its pool does not record for the pod.
	CheckEndpointNotRecorded = "endpoint-not-recorded"
	// CheckOrphanEndpoint: an endpoint whose pod is gone or was replaced.
	CheckOrphanEndpoint = "orphan-endpoint"
	// CheckAllocatedCount: status.allocatedIPCount differs from the number of records.
	CheckAllocatedCount = "allocated-count"
)

// Finding is one broken invariant, naming the objects involved.
type Finding struct {
	Check     string   `json:"check"`
	IP        string   `json:"ip,omitempty"`
	Message   string   `json:"message"`
	Pools     []string `json:"pools,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	Pods      []string `json:"pods,omitempty"`
}

// StatefulSetRule reports whether StatefulSet namespace/sts will (re)create pod; production
// passes workload.StatefulSetWantsPod, the rule the agent and the GC share.
type StatefulSetRule func(ctx context.Context, namespace, sts, pod string) (bool, error)

// DoctorOptions tunes Diagnose.
type DoctorOptions struct {
	// EnableStatefulSet is ipam.enableStatefulSet: a StatefulSet member's records and endpoint are
	// kept, matched by pod name, while its StatefulSet wants it back.
	EnableStatefulSet bool
	// StatefulSetWants answers for StatefulSet members; required when EnableStatefulSet.
	StatefulSetWants StatefulSetRule
	// EnableKubevirtStaticIP is ipam.enableKubevirtStaticIP: the records and endpoint named after a
	// KubeVirt VirtualMachineInstance belong to its live virt-launcher pod of that UID, or are kept
	// for the endpoint's pod UID while the VM wants them.
	EnableKubevirtStaticIP bool
	// VMWants answers for KubeVirt VMIs; required when EnableKubevirtStaticIP. Production passes
	// workload.VMWantsAddresses, the rule the agent and the GC share.
	VMWants func(ctx context.Context, namespace, vmi string) (bool, error)
	// Pools, when not empty, keeps only the findings that name one of these pools.
	Pools []string
}

// Diagnose checks the invariants of docs/design (no IP held twice, records of live pods only,
// endpoints and pools in agreement, counters matching records) on s and returns the findings in
// a stable order. It errs only when the StatefulSet rule does.
func Diagnose(ctx context.Context, s *Snapshot, opts DoctorOptions) ([]Finding, error) {
	x := newIndex(s)
	out := slices.Clone(x.problems)

	// kept answers, once per pod name, whether a StatefulSet keeps the records and endpoint of
	// uid for pod name k although no live pod of that UID exists.
	type keptKey struct{ pod, uid string }
	keptMemo := map[keptKey]bool{}
	kept := func(k, uid string) (bool, error) {
		if !opts.EnableStatefulSet {
			return false, nil
		}
		if v, ok := keptMemo[keptKey{k, uid}]; ok {
			return v, nil
		}
		ep := x.endpoints[k]
		sts := workload.StatefulSetOf(x.pods[k], ep)
		v := false
		// Like the GC: only what the endpoint names for that UID is kept for the member.
		if sts != "" && ep != nil && ep.Status.Current.UID == uid {
			ns, name := splitKey(k)
			var err error
			if v, err = opts.StatefulSetWants(ctx, ns, sts, name); err != nil {
				return false, fmt.Errorf("StatefulSet %s/%s: %w", ns, sts, err)
			}
		}
		keptMemo[keptKey{k, uid}] = v
		return v, nil
	}
	// vmHolds answers whether uid holds what is named after VMI k: a live virt-launcher pod of
	// that UID, or the endpoint's pod UID while the VM wants its addresses.
	vmHolds := func(k, uid string) (bool, error) {
		if !opts.EnableKubevirtStaticIP {
			return false, nil
		}
		ns, name := splitKey(k)
		for i := range s.Pods {
			if p := &s.Pods[i]; p.Namespace == ns && workload.VMIOf(p) == name && podHolds(p, uid) {
				return true, nil
			}
		}
		if ep := x.endpoints[k]; ep != nil && workload.VMIOfEndpoint(ep) == name && ep.Status.Current.UID == uid {
			ok, err := opts.VMWants(ctx, ns, name)
			if err != nil {
				return false, fmt.Errorf("KubeVirt VM %s: %w", k, err)
			}
			return ok, nil
		}
		return false, nil
	}
	// alive reports whether uid is the pod name k's live incarnation, or one its StatefulSet or
	// KubeVirt VM keeps.
	alive := func(k, uid string) (bool, string, error) {
		p := x.pods[k]
		if podHolds(p, uid) {
			return true, "", nil
		}
		if ok, err := kept(k, uid); err != nil || ok {
			return ok, "", err
		}
		if ok, err := vmHolds(k, uid); err != nil || ok {
			return ok, "", err
		}
		state := podState(p, uid)
		if sts := workload.StatefulSetOf(p, x.endpoints[k]); opts.EnableStatefulSet && sts != "" {
			state += fmt.Sprintf(", and StatefulSet %s does not keep it", sts)
		}
		return false, state, nil
	}

	// 1. No address recorded twice.
	for _, addr := range sortedAddrs(x.byAddr) {
		recs := x.byAddr[addr]
		if len(recs) < 2 {
			continue
		}
		f := Finding{Check: CheckDuplicateIP, IP: addr.String()}
		var holders []string
		for _, r := range recs {
			f.Pools = appendUnique(f.Pools, r.Pool)
			f.Pods = appendUnique(f.Pods, r.Pod)
			holders = append(holders, fmt.Sprintf("SpiderIPPool %s for pod %s (UID %s)", r.Pool, r.Pod, r.PodUID))
		}
		f.Message = fmt.Sprintf("IP %s is recorded %d times: %s", addr, len(recs), strings.Join(holders, "; "))
		out = append(out, f)
	}

	for _, name := range sortedKeys(x.poolOf) {
		p, recs := x.pools[name], x.poolOf[name]
		// 2. The counter agrees with the records.
		if got := ptr.Deref(p.Status.AllocatedIPCount, 0); got != int64(len(recs)) && !x.undecodable[name] {
			msg := fmt.Sprintf("SpiderIPPool %s: status.allocatedIPCount is %d but status.allocatedIPs holds %d records", name, got, len(recs))
			if ipblock.InBlocks(p) {
				msg = fmt.Sprintf("SpiderIPPool %s: status.allocatedIPCount is %d but its SpiderIPBlocks hold %d records (the controller mirrors them into the status every 2 s at most)", name, got, len(recs))
			}
			out = append(out, Finding{Check: CheckAllocatedCount, Pools: []string{name}, Message: msg})
		}
		set, err := usable(p)
		for _, r := range recs {
			if err == nil && !set.Contains(r.Addr) {
				out = append(out, Finding{Check: CheckBadRecord, IP: r.Addr.String(), Pools: []string{name}, Pods: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPPool %s records %s for pod %s (UID %s) but the IP is not in spec.ips minus spec.excludeIPs", name, r.Addr, r.Pod, r.PodUID)})
			}
			// 3. Every record belongs to a live pod of the same UID.
			ok, state, err := alive(r.Pod, r.PodUID)
			if err != nil {
				return nil, err
			}
			if !ok {
				out = append(out, Finding{Check: CheckOrphanRecord, IP: r.Addr.String(), Pools: []string{name}, Pods: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPPool %s records %s for pod %s (UID %s), which is %s", name, r.Addr, r.Pod, r.PodUID, state)})
				continue
			}
			// 4. ... and is listed by that pod's endpoint.
			ep := x.endpoints[r.Pod]
			switch {
			case ep == nil:
				out = append(out, Finding{Check: CheckRecordWithoutEndpoint, IP: r.Addr.String(), Pools: []string{name}, Pods: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPPool %s records %s for pod %s (UID %s) but SpiderEndpoint %s does not exist", name, r.Addr, r.Pod, r.PodUID, r.Pod)})
			case ep.Status.Current.UID != r.PodUID:
				out = append(out, Finding{Check: CheckRecordWithoutEndpoint, IP: r.Addr.String(), Pools: []string{name}, Pods: []string{r.Pod}, Endpoints: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPPool %s records %s for pod %s (UID %s) but SpiderEndpoint %s is of UID %s", name, r.Addr, r.Pod, r.PodUID, r.Pod, ep.Status.Current.UID)})
			case !x.endpointLists(r.Pod, name, r.Addr):
				out = append(out, Finding{Check: CheckRecordWithoutEndpoint, IP: r.Addr.String(), Pools: []string{name}, Pods: []string{r.Pod}, Endpoints: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPPool %s records %s for pod %s (UID %s) but SpiderEndpoint %s does not list it from that pool", name, r.Addr, r.Pod, r.PodUID, r.Pod)})
			}
		}
	}

	// 5. Every endpoint belongs to a live pod and its addresses are recorded for it.
	for _, k := range sortedKeys(x.endpoints) {
		ep := x.endpoints[k]
		uid := ep.Status.Current.UID
		var pools []string
		for _, e := range x.epOf[k] {
			pools = appendUnique(pools, e.Pool)
		}
		ok, state, err := alive(k, uid)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, Finding{Check: CheckOrphanEndpoint, Endpoints: []string{k}, Pods: []string{k}, Pools: pools,
				Message: fmt.Sprintf("SpiderEndpoint %s is of pod UID %s, which is %s", k, uid, state)})
			continue
		}
		for _, e := range x.epOf[k] {
			f := Finding{Check: CheckEndpointNotRecorded, IP: e.Addr.String(), Endpoints: []string{k}, Pods: []string{k}, Pools: nonEmpty(e.Pool)}
			switch rec, found := x.record(e.Pool, e.Addr, uid); {
			case e.Pool == "":
				f.Message = fmt.Sprintf("SpiderEndpoint %s lists %s on %s without a pool", k, e.Value, e.NIC)
			case x.pools[e.Pool] == nil:
				f.Message = fmt.Sprintf("SpiderEndpoint %s lists %s on %s from SpiderIPPool %s, which does not exist", k, e.Value, e.NIC, e.Pool)
			case !found:
				f.Message = fmt.Sprintf("SpiderEndpoint %s lists %s on %s from SpiderIPPool %s, which has no record of it", k, e.Value, e.NIC, e.Pool)
			case rec.PodUID != uid:
				f.Pods = appendUnique(f.Pods, rec.Pod)
				f.Message = fmt.Sprintf("SpiderEndpoint %s (UID %s) lists %s on %s but SpiderIPPool %s records it for pod %s (UID %s)", k, uid, e.Value, e.NIC, e.Pool, rec.Pod, rec.PodUID)
			default:
				continue
			}
			out = append(out, f)
		}
	}

	if len(opts.Pools) > 0 {
		out = slices.DeleteFunc(out, func(f Finding) bool {
			return !slices.ContainsFunc(f.Pools, func(p string) bool { return slices.Contains(opts.Pools, p) })
		})
	}
	return out, nil
}

// record returns pool's record of addr, the one of uid if there are several.
func (x *index) record(pool string, addr netip.Addr, uid string) (Record, bool) {
	var out Record
	found := false
	for _, r := range x.byAddr[addr] {
		if r.Pool != pool {
			continue
		}
		if r.PodUID == uid {
			return r, true
		}
		if !found {
			out, found = r, true
		}
	}
	return out, found
}

// endpointLists reports whether endpoint k lists addr from pool.
func (x *index) endpointLists(k, pool string, addr netip.Addr) bool {
	return slices.ContainsFunc(x.epByAddr[addr], func(e EndpointIP) bool { return e.Endpoint == k && e.Pool == pool })
}

func appendUnique(s []string, v string) []string {
	if v == "" || slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
