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
func (r *IPPoolReconciler) convert(ctx context.Context, pool *v2beta1.SpiderIPPool) (bool, error) {
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
	for prefix, recs := range split {
		if err := r.putBlock(ctx, pool, prefix, recs); err != nil {
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
			return false, nil
		}
		return false, client.IgnoreNotFound(fmt.Errorf("mark IPPool %q converted: %w", pool.Name, err))
	}
	r.log.Info("converted IPPool to block format", "pool", pool.Name, "records", len(records), "blocks", len(split))
	return true, nil
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

// putBlock creates the block of prefix with recs, or adds to the existing block the records it
// lacks. A different holder of an address already in the block is an error: the block is the
// authority once it exists, and overwriting it could hand one address to two pods.
func (r *IPPoolReconciler) putBlock(ctx context.Context, pool *v2beta1.SpiderIPPool, prefix netip.Prefix, recs map[netip.Addr]ipblock.BlockRecord) error {
	node := majorityNode(recs)
	want := blockstore.NewBlock(pool, prefix, node, recs)
	err := r.client.Create(ctx, want)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create SpiderIPBlock %q: %w", want.Name, err)
		}
		return nil
	}
	var have ipblock.SpiderIPBlock
	if err := r.blocks.Live.Get(ctx, client.ObjectKey{Name: want.Name}, &have); err != nil {
		return fmt.Errorf("read SpiderIPBlock %q: %w", want.Name, err)
	}
	merged := maps.Clone(have.Spec.Records)
	if merged == nil {
		merged = ipblock.BlockRecords{}
	}
	added := false
	for key, rec := range want.Spec.Records {
		old, ok := merged[key]
		switch {
		case !ok:
			merged[key] = rec
			added = true
		case old.PodUID != rec.PodUID:
			return fmt.Errorf("IPPool %q: %s is recorded for pod UID %s in its status and for %s in SpiderIPBlock %q: left for an operator", pool.Name, key, rec.PodUID, old.PodUID, have.Name)
		}
	}
	if !added {
		return nil
	}
	// The labels follow the records (holder labels of the nodes they name).
	have.Labels = blockstore.NewBlock(pool, prefix, have.Spec.Node, recordsOf(merged)).Labels
	have.Spec.Records = merged
	if err := r.client.Update(ctx, &have); err != nil {
		return fmt.Errorf("add records to SpiderIPBlock %q: %w", have.Name, err)
	}
	return nil
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
