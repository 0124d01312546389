package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// Snapshot is the cluster state the commands reason about. The doctor checks are pure functions
// of it, so they are tested on objects built in memory.
type Snapshot struct {
	Pools []v2beta1.SpiderIPPool
	// Blocks hold the records of the pools in block format (docs/design/ipam-blocks.md), whose
	// status is only the controller's mirror; a block of no pool of Pools (by name and UID) is
	// left out.
	Blocks    []ipblock.SpiderIPBlock
	Endpoints []v2beta1.SpiderEndpoint
	// Pods are the pods the records and endpoints may name; a missing pod is a pod that is gone.
	Pods []corev1.Pod
}

// loadSnapshot lists pools, the blocks of the pools in block format, and endpoints, and every pod
// when withPods.
func loadSnapshot(ctx context.Context, c client.Reader, withPods bool) (*Snapshot, error) {
	s := &Snapshot{}
	var pools v2beta1.SpiderIPPoolList
	if err := c.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	if i := slices.IndexFunc(pools.Items, func(p v2beta1.SpiderIPPool) bool { return ipblock.InBlocks(&p) }); i >= 0 {
		var blocks ipblock.SpiderIPBlockList
		if err := c.List(ctx, &blocks); err != nil {
			if meta.IsNoMatchError(err) {
				return nil, fmt.Errorf("SpiderIPPool %s keeps its records in SpiderIPBlocks, a kind this cluster does not serve: install the chart's CRDs: %w", pools.Items[i].Name, err)
			}
			return nil, fmt.Errorf("list SpiderIPBlocks: %w", err)
		}
		s.Blocks = blocks.Items
	}
	var eps v2beta1.SpiderEndpointList
	if err := c.List(ctx, &eps); err != nil {
		return nil, fmt.Errorf("list SpiderEndpoints: %w", err)
	}
	s.Pools, s.Endpoints = pools.Items, eps.Items
	if withPods {
		var pods corev1.PodList
		if err := c.List(ctx, &pods); err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		s.Pods = pods.Items
	}
	return s, nil
}

// Record is one entry of a pool's status.allocatedIPs, or of its blocks' records.
type Record struct {
	Pool   string     `json:"pool"`
	Addr   netip.Addr `json:"ip"`
	Pod    string     `json:"pod"` // namespace/name
	PodUID string     `json:"podUID"`
}

// EndpointIP is one address a SpiderEndpoint lists.
type EndpointIP struct {
	Endpoint string     `json:"endpoint"` // namespace/name, the pod's
	UID      string     `json:"podUID"`
	Node     string     `json:"node"`
	NIC      string     `json:"interface"`
	Pool     string     `json:"pool"`
	Addr     netip.Addr `json:"ip"`
	Value    string     `json:"value"` // as stored, with its prefix length
}

// index is a Snapshot decoded and keyed for lookups.
type index struct {
	snap      *Snapshot
	pools     map[string]*v2beta1.SpiderIPPool
	records   []Record // by pool, then address
	byAddr    map[netip.Addr][]Record
	poolOf    map[string][]Record // pool -> records
	epIPs     []EndpointIP
	epByAddr  map[netip.Addr][]EndpointIP
	epOf      map[string][]EndpointIP            // endpoint namespace/name -> its addresses
	endpoints map[string]*v2beta1.SpiderEndpoint // namespace/name
	pods      map[string]*corev1.Pod             // namespace/name
	// problems are records and endpoint entries that do not decode, and pools whose encoded
	// records repeat a key (the decoder keeps the last one silently).
	problems []Finding
	// undecodable are the pools whose status.allocatedIPs does not decode at all.
	undecodable map[string]bool
	// blocks are the SpiderIPBlocks of each pool in block format, by pool name.
	blocks map[string][]*ipblock.SpiderIPBlock
}

func newIndex(s *Snapshot) *index {
	x := &index{
		snap:      s,
		pools:     map[string]*v2beta1.SpiderIPPool{},
		byAddr:    map[netip.Addr][]Record{},
		poolOf:    map[string][]Record{},
		epByAddr:  map[netip.Addr][]EndpointIP{},
		epOf:      map[string][]EndpointIP{},
		endpoints: map[string]*v2beta1.SpiderEndpoint{},
		pods:      map[string]*corev1.Pod{},

		undecodable: map[string]bool{},
		blocks:      map[string][]*ipblock.SpiderIPBlock{},
	}
	for i := range s.Pods {
		x.pods[key(&s.Pods[i])] = &s.Pods[i]
	}
	for i := range s.Blocks {
		b := &s.Blocks[i]
		x.blocks[b.Spec.Pool] = append(x.blocks[b.Spec.Pool], b)
	}
	pools := slices.Clone(s.Pools)
	slices.SortFunc(pools, func(a, b v2beta1.SpiderIPPool) int { return strings.Compare(a.Name, b.Name) })
	for i := range pools {
		p := &pools[i]
		x.pools[p.Name] = p
		if ipblock.InBlocks(p) {
			x.addRecords(p.Name, x.blockRecords(p))
			continue
		}
		if p.Status.AllocatedIPs != nil {
			for _, k := range repeatedKeys(*p.Status.AllocatedIPs) {
				x.problems = append(x.problems, Finding{Check: CheckDuplicateIP, IP: k, Pools: []string{p.Name},
					Message: fmt.Sprintf("SpiderIPPool %s: status.allocatedIPs has key %q more than once; only one record survives decoding", p.Name, k)})
			}
		}
		allocs, err := p.Status.Allocations()
		if err != nil {
			x.problems = append(x.problems, Finding{Check: CheckBadRecord, Pools: []string{p.Name},
				Message: fmt.Sprintf("SpiderIPPool %s: %v", p.Name, err)})
			x.undecodable[p.Name] = true
			continue
		}
		var recs []Record
		for k, a := range allocs {
			addr, err := ip.ParseAddr(k)
			if err != nil {
				x.problems = append(x.problems, Finding{Check: CheckBadRecord, IP: k, Pools: []string{p.Name}, Pods: []string{a.NamespacedName},
					Message: fmt.Sprintf("SpiderIPPool %s: status.allocatedIPs key %q: %v", p.Name, k, err)})
				continue
			}
			recs = append(recs, Record{Pool: p.Name, Addr: addr, Pod: a.NamespacedName, PodUID: a.PodUID})
		}
		x.addRecords(p.Name, recs)
	}
	eps := slices.Clone(s.Endpoints)
	slices.SortFunc(eps, func(a, b v2beta1.SpiderEndpoint) int { return strings.Compare(key(&a), key(&b)) })
	for i := range eps {
		ep := &eps[i]
		k := key(ep)
		x.endpoints[k] = ep
		for _, d := range ep.Status.Current.IPs {
			for _, fam := range [][2]*string{{d.IPv4, d.IPv4Pool}, {d.IPv6, d.IPv6Pool}} {
				if fam[0] == nil || *fam[0] == "" {
					continue
				}
				addr, err := parseEndpointAddr(*fam[0])
				if err != nil {
					x.problems = append(x.problems, Finding{Check: CheckBadRecord, IP: *fam[0], Endpoints: []string{k}, Pools: nonEmpty(deref(fam[1])),
						Message: fmt.Sprintf("SpiderEndpoint %s: interface %s: %v", k, d.NIC, err)})
					continue
				}
				e := EndpointIP{Endpoint: k, UID: ep.Status.Current.UID, Node: ep.Status.Current.Node, NIC: d.NIC,
					Pool: deref(fam[1]), Addr: addr, Value: *fam[0]}
				x.epIPs = append(x.epIPs, e)
				x.epByAddr[addr] = append(x.epByAddr[addr], e)
				x.epOf[k] = append(x.epOf[k], e)
			}
		}
	}
	return x
}

// addRecords indexes recs, the records of pool.
func (x *index) addRecords(pool string, recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int {
		// Two keys may spell one address: order them by holder so that output is stable.
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return strings.Compare(a.Pod+"@"+a.PodUID, b.Pod+"@"+b.PodUID)
	})
	x.poolOf[pool] = recs
	x.records = append(x.records, recs...)
	for _, r := range recs {
		x.byAddr[r.Addr] = append(x.byAddr[r.Addr], r)
	}
}

// blockRecords returns the records of p, a pool in block format, from its blocks (those of its
// name and UID: a deleted incarnation's blocks are not its own), and notes as problems the keys
// that are no address and the records outside their block's range. Such a record is still
// reported as the pool's, as one outside the pool's IPs is: it claims the address all the same.
// An address recorded by two blocks comes out twice, a duplicate.
func (x *index) blockRecords(p *v2beta1.SpiderIPPool) []Record {
	var recs []Record
	blocks := slices.Clone(x.blocks[p.Name])
	slices.SortFunc(blocks, func(a, b *ipblock.SpiderIPBlock) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range blocks {
		if b.Spec.PoolUID != string(p.UID) {
			continue
		}
		prefix, perr := netip.ParsePrefix(b.Spec.CIDR)
		if perr != nil {
			x.problems = append(x.problems, Finding{Check: CheckBadRecord, Pools: []string{p.Name},
				Message: fmt.Sprintf("SpiderIPBlock %s of SpiderIPPool %s: spec.cidr %q: %v", b.Name, p.Name, b.Spec.CIDR, perr)})
		}
		for _, k := range slices.Sorted(maps.Keys(b.Spec.Records)) {
			r := b.Spec.Records[k]
			addr, err := ip.ParseAddr(k)
			if err != nil {
				x.problems = append(x.problems, Finding{Check: CheckBadRecord, IP: k, Pools: []string{p.Name}, Pods: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPBlock %s of SpiderIPPool %s: spec.records key %q: %v", b.Name, p.Name, k, err)})
				continue
			}
			if perr == nil && !prefix.Contains(addr) {
				x.problems = append(x.problems, Finding{Check: CheckBadRecord, IP: addr.String(), Pools: []string{p.Name}, Pods: []string{r.Pod},
					Message: fmt.Sprintf("SpiderIPBlock %s of SpiderIPPool %s records %s for pod %s (UID %s), outside its range %s", b.Name, p.Name, addr, r.Pod, r.PodUID, prefix)})
			}
			recs = append(recs, Record{Pool: p.Name, Addr: addr, Pod: r.Pod, PodUID: r.PodUID})
		}
	}
	return recs
}

// parseEndpointAddr reads "addr/prefix" or a bare address.
func parseEndpointAddr(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := ip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}

// repeatedKeys returns the top-level keys that a JSON object repeats. The codec decodes into a
// map, which keeps the last of them silently; this only looks at the keys, not at the records.
func repeatedKeys(raw string) []string {
	dec := json.NewDecoder(strings.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen := map[string]int{}
	var out []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return out
		}
		k, _ := t.(string)
		if seen[k]++; seen[k] == 2 {
			out = append(out, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return out
		}
	}
	return out
}

func key(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// podState describes pod as the holder of a record of uid.
func podState(p *corev1.Pod, uid string) string {
	switch {
	case p == nil:
		return "gone"
	case string(p.UID) != uid:
		return fmt.Sprintf("replaced (pod now has UID %s)", p.UID)
	case workload.PodFinished(p):
		return string(p.Status.Phase)
	case p.DeletionTimestamp != nil:
		return "Terminating"
	case p.Status.Phase == "":
		return "Pending"
	default:
		return string(p.Status.Phase)
	}
}

// podHolds reports whether pod is the live incarnation uid: it exists with that UID and has not
// finished. Unlike workload.PodAlive, a terminating pod still holds its addresses until its
// containers are gone: spiderpoolctl reports it as a holder, never as a leak.
func podHolds(p *corev1.Pod, uid string) bool {
	return p != nil && string(p.UID) == uid && !workload.PodFinished(p)
}

// splitKey splits namespace/name.
func splitKey(s string) (namespace, name string) {
	ns, n, _ := strings.Cut(s, "/")
	return ns, n
}

// usable returns spec.ips minus spec.excludeIPs of p.
func usable(p *v2beta1.SpiderIPPool) (ip.Set, error) {
	set, err := p.Spec.UsableIPs()
	if err != nil {
		return ip.Set{}, fmt.Errorf("SpiderIPPool %s: %w", p.Name, err)
	}
	return set, nil
}
