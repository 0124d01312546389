package controller

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blocks"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
)

// This file is the controller's side of block-format pools (docs/design/ipam-blocks.md): the
// conversion of a pool from status records to SpiderIPBlocks, and the pool status mirror. Both run
// in the IPPool reconciler, so that one writer keeps a pool's status.

// MirrorMaxRecords bounds status.allocatedIPs of a pool in block format: past it the mirror
// leaves the records out (about 400 KiB at the largest record size) and says so with
// ipblock.AnnoRecordsInBlocks; allocatedIPCount stays exact.
const MirrorMaxRecords = 2000

// mirrorPeriod is the least time between two mirror writes of one pool.
const mirrorPeriod = 2 * time.Second

// BlockFormat configures the IPPool reconciler's handling of block-format pools.
type BlockFormat struct {
	// Served says the cluster serves SpiderIPBlocks; without it nothing here runs.
	Served bool
	// Convert converts every pool in status format (ipam.enableIPBlocks).
	Convert bool
	// AgentDaemonSet, when set, is the spiderpool-agent DaemonSet: conversion waits until its
	// rollout is complete, so that no agent of an earlier version, which would keep writing
	// records into a converted pool's status, is left.
	AgentDaemonSet types.NamespacedName
	// Live reads blocks from the API server where the cache's lag matters (the finalizer).
	Live client.Reader
}

// mirrorClock remembers when each pool's mirror was last written.
type mirrorClock struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// wait returns how long the pool's next mirror write must wait.
func (c *mirrorClock) wait(pool string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.last[pool]; ok && now.Sub(t) < mirrorPeriod {
		return mirrorPeriod - now.Sub(t)
	}
	return 0
}

func (c *mirrorClock) wrote(pool string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]time.Time{}
	}
	c.last[pool] = now
}

// agentsCurrent reports whether every agent runs the DaemonSet's current template.
func (r *IPPoolReconciler) agentsCurrent(ctx context.Context) (bool, error) {
	key := r.blocks.AgentDaemonSet
	if key.Name == "" {
		return true, nil
	}
	var ds appsv1.DaemonSet
	if err := r.client.Get(ctx, key, &ds); err != nil {
		return false, fmt.Errorf("read the agent DaemonSet %s: %w", key, err)
	}
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation && st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberAvailable == st.DesiredNumberScheduled, nil
}

// convert moves the records of a pool in status format into blocks and marks the pool converted.
// It is idempotent and crash-safe: blocks are named after their range, so a retry finds the ones
// it created and adds what they miss; and the pool is marked with a precondition on the version
// whose records were copied, so a record an agent wrote meanwhile makes it start over, never lost.
// It reports whether the pool was converted.
//
// The pool is read live, never from the cache: a cache that has not seen the marking yet holds an
// old status, and copying it into blocks that agents already write would bring back the records
// they released since (or stop at an address they gave to another pod).
func (r *IPPoolReconciler) convert(ctx context.Context, cached *v2beta1.SpiderIPPool) (bool, error) {
	pool := &v2beta1.SpiderIPPool{}
	if err := r.blocks.Live.Get(ctx, client.ObjectKeyFromObject(cached), pool); err != nil {
		return false, client.IgnoreNotFound(fmt.Errorf("read IPPool %q: %w", cached.Name, err))
	}
	if ipblock.InBlocks(pool) {
		r.drafts.forget(pool.UID)
		return true, nil
	}
	if pool.DeletionTimestamp != nil {
		return false, nil
	}
	allocs, err := pool.Status.Allocations()
	if err != nil {
		return false, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	subnet, err := pool.Spec.SubnetPrefix()
	if err != nil {
		return false, fmt.Errorf("IPPool %q: spec.subnet: %w", pool.Name, err)
	}
	layout, err := blocks.NewLayout(subnet, blocks.DefaultBits)
	if err != nil {
		return false, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	records := make(map[netip.Addr]ipblock.BlockRecord, len(allocs))
	for key, a := range allocs {
		addr, err := ip.ParseAddr(key)
		if err != nil {
			return false, fmt.Errorf("IPPool %q: status.allocatedIPs: %w", pool.Name, err)
		}
		records[addr] = ipblock.BlockRecord{Pod: a.NamespacedName, PodUID: a.PodUID, Node: r.podNode(ctx, a)}
	}
	split, err := blocks.Split(layout, records)
	if err != nil {
		return false, fmt.Errorf("IPPool %q: %w", pool.Name, err)
	}
	// Blocks an earlier attempt of this process wrote records into are visited even when the
	// status has nothing left in their range: those records may have to go.
	prefixes := r.drafts.prefixes(pool.UID)
	for prefix := range split {
		prefixes[prefix] = true
	}
	for prefix := range prefixes {
		if err := r.putBlock(ctx, pool, prefix, split[prefix]); err != nil {
			return false, err
		}
	}
	marked := pool.DeepCopy()
	if marked.Annotations == nil {
		marked.Annotations = map[string]string{}
	}
	marked.Annotations[ipblock.AnnoIPAMFormat] = ipblock.FormatBlocks
	// Update carries the resourceVersion the records were read at: a record written since fails
	// it, and the next attempt copies that record too.
	if err := r.client.Update(ctx, marked); err != nil {
		if apierrors.IsConflict(err) {
			r.log.V(1).Info("IPPool changed while converting, starting over", "pool", pool.Name)
			return false, nil
		}
		return false, client.IgnoreNotFound(fmt.Errorf("mark IPPool %q converted: %w", pool.Name, err))
	}
	r.drafts.forget(pool.UID)
	r.log.Info("converted IPPool to block format", "pool", pool.Name, "records", len(records), "blocks", len(split))
	return true, nil
}

// drafts remembers, per pool UID, the records this process wrote into blocks while converting
// the pool and before marking it, and each block as last written. Until the marking nobody else
// writes the pool's blocks (agents and the GC route an unmarked pool's updates to its status), so
// such a record that the status no longer holds is an old copy: its pod released the address (then
// it goes), or another pod got it since (then it is replaced). A record this process did not
// write, such as one left by a replica that crashed, is never changed: it is only added to.
//
// Knowing its own writes also keeps a retry short: it writes only the blocks whose records
// changed, each with one update, and the shorter the time between reading the pool and marking
// it, the likelier the marking wins against agents writing the pool's status.
type drafts struct {
	mu sync.Mutex
	m  map[types.UID]map[netip.Prefix]draft
}

// draft is what this process wrote into one block: its records (address -> pod UID) and the
// block as the API server returned it.
type draft struct {
	mine  map[string]string
	block *ipblock.SpiderIPBlock
}

// prefixes returns a new set of the blocks holding drafts of pool.
func (d *drafts) prefixes(pool types.UID) map[netip.Prefix]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[netip.Prefix]bool{}
	for p := range d.m[pool] {
		out[p] = true
	}
	return out
}

// of returns pool's draft of block prefix; the zero draft when there is none.
func (d *drafts) of(pool types.UID, prefix netip.Prefix) draft {
	d.mu.Lock()
	defer d.mu.Unlock()
	dr := d.m[pool][prefix]
	return draft{mine: maps.Clone(dr.mine), block: dr.block.DeepCopy()}
}

// wrote remembers block, just written, of which ours are this process's records.
func (d *drafts) wrote(pool types.UID, prefix netip.Prefix, ours ipblock.BlockRecords, block *ipblock.SpiderIPBlock) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[types.UID]map[netip.Prefix]draft{}
	}
	if d.m[pool] == nil {
		d.m[pool] = map[netip.Prefix]draft{}
	}
	if len(ours) == 0 {
		delete(d.m[pool], prefix)
		return
	}
	mine := make(map[string]string, len(ours))
	for k, r := range ours {
		mine[k] = r.PodUID
	}
	d.m[pool][prefix] = draft{mine: mine, block: block.DeepCopy()}
}

// drop forgets what this process knows of block prefix of pool.
func (d *drafts) drop(pool types.UID, prefix netip.Prefix) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m[pool], prefix)
}

func (d *drafts) forget(pool types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, pool)
}

// podNode returns the node of the pod holding a record, or "" when the pod is gone (or is another
// incarnation): such a record is the GC's, and its block belongs to nobody.
func (r *IPPoolReconciler) podNode(ctx context.Context, a v2beta1.PoolIPAllocation) string {
	key, ok := splitPodKey(a.NamespacedName)
	if !ok {
		return ""
	}
	var pod corev1.Pod
	if err := r.client.Get(ctx, key, &pod); err != nil || string(pod.UID) != a.PodUID {
		return ""
	}
	return pod.Spec.NodeName
}

// putBlock creates the block of prefix with recs, or brings the existing block in line with recs:
// it adds the records the block lacks, and replaces or removes the drafts of this process that the
// status no longer holds (see drafts). A different holder of an address already in the block that
// is not such a draft is an error: overwriting it could hand one address to two pods.
func (r *IPPoolReconciler) putBlock(ctx context.Context, pool *v2beta1.SpiderIPPool, prefix netip.Prefix, recs map[netip.Addr]ipblock.BlockRecord) error {
	want := blockstore.NewBlock(pool, prefix, majorityNode(recs), recs)
	dr := r.drafts.of(pool.UID, prefix)
	if dr.block != nil && maps.EqualFunc(want.Spec.Records, dr.mine, func(rec ipblock.BlockRecord, uid string) bool { return rec.PodUID == uid }) {
		return nil // this process wrote exactly these records, and nobody else writes the block yet
	}
	have := dr.block // as this process last wrote it; read live when unknown or outdated
	for range 2 {
		if have == nil && len(recs) > 0 {
			created := want.DeepCopy()
			err := r.client.Create(ctx, created)
			if err == nil {
				r.drafts.wrote(pool.UID, prefix, created.Spec.Records, created)
				return nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create SpiderIPBlock %q: %w", want.Name, err)
			}
		}
		if have == nil {
			have = &ipblock.SpiderIPBlock{}
			if err := r.blocks.Live.Get(ctx, client.ObjectKey{Name: want.Name}, have); err != nil {
				if apierrors.IsNotFound(err) && len(recs) == 0 {
					r.drafts.drop(pool.UID, prefix)
					return nil
				}
				return fmt.Errorf("read SpiderIPBlock %q: %w", want.Name, err)
			}
		}
		merged, ours, changed, err := mergeDrafts(have.Spec.Records, want.Spec.Records, dr.mine)
		if err != nil {
			return fmt.Errorf("IPPool %q: SpiderIPBlock %q: %w", pool.Name, have.Name, err)
		}
		if !changed {
			r.drafts.wrote(pool.UID, prefix, ours, have)
			return nil
		}
		// The labels follow the records (holder labels of the nodes they name).
		updated := have.DeepCopy()
		updated.Labels = blockstore.NewBlock(pool, prefix, have.Spec.Node, recordsOf(merged)).Labels
		updated.Spec.Records = merged
		err = r.client.Update(ctx, updated)
		switch {
		case err == nil:
			r.drafts.wrote(pool.UID, prefix, ours, updated)
			return nil
		case (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && have == dr.block && dr.block != nil:
			// Someone wrote the block after this process did (an operator, an earlier leader):
			// read it live and merge again.
			have = nil
			r.drafts.drop(pool.UID, prefix)
			continue
		default:
			return fmt.Errorf("write records of SpiderIPBlock %q: %w", have.Name, err)
		}
	}
	return fmt.Errorf("IPPool %q: SpiderIPBlock %q changed under the conversion: %w", pool.Name, want.Name, ipam.ErrConflict)
}

// mergeDrafts returns the records a block must hold so that it holds want: have's records, plus
// those of want it lacks, with the records of mine (this process's drafts, address -> pod UID)
// that want no longer holds removed or replaced. ours are the merged records this process wrote;
// changed says whether merged differs from have. A record of want whose address have holds for
// another pod, not as one of mine, is an error naming both.
func mergeDrafts(have, want ipblock.BlockRecords, mine map[string]string) (merged, ours ipblock.BlockRecords, changed bool, err error) {
	isMine := func(key string, rec ipblock.BlockRecord) bool {
		uid, ok := mine[key]
		return ok && uid == rec.PodUID
	}
	merged, ours = maps.Clone(have), ipblock.BlockRecords{}
	if merged == nil {
		merged = ipblock.BlockRecords{}
	}
	for key, old := range have {
		if _, kept := want[key]; !kept && isMine(key, old) {
			delete(merged, key) // released in the status since this process copied it
			changed = true
		}
	}
	for key, rec := range want {
		old, ok := have[key]
		switch {
		case !ok, old.PodUID != rec.PodUID && isMine(key, old):
			merged[key], ours[key] = rec, rec
			changed = true
		case old.PodUID == rec.PodUID:
			if isMine(key, old) {
				ours[key] = old
			}
		default:
			return nil, nil, false, fmt.Errorf("%s is recorded for pod UID %s in the pool's status and for %s in the block: left for an operator", key, rec.PodUID, old.PodUID)
		}
	}
	return merged, ours, changed, nil
}

// recordsOf decodes a block's records keyed by address; keys that do not parse are dropped (the
// block's own labels do not depend on them).
func recordsOf(rs ipblock.BlockRecords) map[netip.Addr]ipblock.BlockRecord {
	out := make(map[netip.Addr]ipblock.BlockRecord, len(rs))
	for k, r := range rs {
		if a, err := ip.ParseAddr(k); err == nil {
			out[a] = r
		}
	}
	return out
}

// majorityNode is the node most records name ("" when none does); ties go to the smallest name.
func majorityNode(recs map[netip.Addr]ipblock.BlockRecord) string {
	count := map[string]int{}
	for _, r := range recs {
		if r.Node != "" {
			count[r.Node]++
		}
	}
	nodes := slices.Sorted(maps.Keys(count))
	best := ""
	for _, n := range nodes {
		if best == "" || count[n] > count[best] {
			best = n
		}
	}
	return best
}

// mirror writes a block-format pool's status from its blocks: the count, and the records up to
// MirrorMaxRecords. It returns when to look again.
func (r *IPPoolReconciler) mirror(ctx context.Context, pool *v2beta1.SpiderIPPool, allocs v2beta1.PoolIPAllocations, total int64) (time.Duration, error) {
	want := pool.DeepCopy()
	want.Status.TotalIPCount = &total
	over := len(allocs) > MirrorMaxRecords
	if !over {
		if err := want.Status.SetAllocations(allocs); err != nil {
			return 0, fmt.Errorf("IPPool %q: %w", pool.Name, err)
		}
	}
	countsOnly := func() {
		n := int64(len(allocs))
		want.Status.AllocatedIPs, want.Status.AllocatedIPCount = nil, &n
	}
	if over {
		countsOnly()
	}
	if !equalCount(pool.Status.TotalIPCount, want.Status.TotalIPCount) || !equalCount(pool.Status.AllocatedIPCount, want.Status.AllocatedIPCount) ||
		!ptrEqual(pool.Status.AllocatedIPs, want.Status.AllocatedIPs) {
		now := time.Now()
		if d := r.clock.wait(pool.Name, now); d > 0 {
			return d, nil
		}
		err := r.client.Status().Patch(ctx, want, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{}))
		if err != nil && !over && kubestore.TooLarge(err) {
			// The records do not fit this cluster's request limit (etcd's can be set lower than
			// the 1.5 MiB MirrorMaxRecords is sized for): mirror the counts only, as past the bound.
			over = true
			countsOnly()
			err = r.client.Status().Patch(ctx, want, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{}))
		}
		if err != nil {
			if apierrors.IsConflict(err) {
				return time.Second, nil
			}
			return 0, client.IgnoreNotFound(fmt.Errorf("mirror IPPool %q status: %w", pool.Name, err))
		}
		r.clock.wrote(pool.Name, now)
		pool = want
	}
	if over != (pool.Annotations[ipblock.AnnoRecordsInBlocks] == "true") {
		marked := pool.DeepCopy()
		if over {
			if marked.Annotations == nil {
				marked.Annotations = map[string]string{}
			}
			marked.Annotations[ipblock.AnnoRecordsInBlocks] = "true"
		} else {
			delete(marked.Annotations, ipblock.AnnoRecordsInBlocks)
		}
		if err := r.client.Patch(ctx, marked, client.MergeFrom(pool)); err != nil {
			return 0, client.IgnoreNotFound(fmt.Errorf("annotate IPPool %q: %w", pool.Name, err))
		}
	}
	return IPPoolResync, nil
}

// ptrEqual compares two optional strings, nil and "" being different only from each other.
func ptrEqual(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// blockFormat reads the block-format configuration of cfg and whether the cluster serves blocks.
func blockFormat(mgr ctrl.Manager, cfg Config) (BlockFormat, error) {
	bf := BlockFormat{Convert: cfg.IPAMBlocks, Live: mgr.GetAPIReader()}
	if cfg.AgentDaemonSet != "" {
		ns, name, ok := strings.Cut(cfg.AgentDaemonSet, "/")
		if !ok || ns == "" || name == "" {
			return bf, fmt.Errorf("agent DaemonSet %q: want namespace/name", cfg.AgentDaemonSet)
		}
		bf.AgentDaemonSet = types.NamespacedName{Namespace: ns, Name: name}
	}
	if _, err := mgr.GetRESTMapper().RESTMapping(ipblock.SchemeGroupVersion.WithKind("SpiderIPBlock").GroupKind(), ipblock.SchemeGroupVersion.Version); err != nil {
		if !meta.IsNoMatchError(err) {
			return bf, fmt.Errorf("look up the SpiderIPBlock kind: %w", err)
		}
		if cfg.IPAMBlocks {
			mgr.GetLogger().Info("SpiderIPBlocks are not served: IPPools stay in status format until the chart's CRDs are installed")
		}
		return bf, nil
	}
	bf.Served = true
	return bf, nil
}
