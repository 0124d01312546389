package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// Metric names: upstream's (SPEC.md section 10) and, for group commit and
// pool sizes, ours.
const (
	metricAllocations         = "spiderpool_ipam_allocation_counts"
	metricAllocationFailures  = "spiderpool_ipam_allocation_failure_counts"
	metricAllocationConflicts = "spiderpool_ipam_allocation_update_ippool_conflict_counts"
	metricAllocErrInternal    = "spiderpool_ipam_allocation_err_internal_counts"
	metricAllocErrNoPool      = "spiderpool_ipam_allocation_err_no_available_pool_counts"
	metricAllocErrRetries     = "spiderpool_ipam_allocation_err_retries_exhausted_counts"
	metricAllocErrUsedOut     = "spiderpool_ipam_allocation_err_ip_used_out_counts"
	metricAllocationDuration  = "spiderpool_ipam_allocation_duration_seconds"
	metricReleases            = "spiderpool_ipam_release_counts"
	metricReleaseFailures     = "spiderpool_ipam_release_failure_counts"
	metricReleaseConflicts    = "spiderpool_ipam_release_update_ippool_conflict_counts"
	metricReleaseErrInternal  = "spiderpool_ipam_release_err_internal_counts"
	metricReleaseErrRetries   = "spiderpool_ipam_release_err_retries_exhausted_counts"
	metricReleaseDuration     = "spiderpool_ipam_release_duration_seconds"
	metricCommitBatchSize     = "spiderpool_ipam_commit_batch_size"
	metricCommitDuration      = "spiderpool_ipam_commit_duration_seconds"
	metricPoolTotalIPs        = "spiderpool_ipam_pool_total_ip_counts"
	metricPoolAllocatedIPs    = "spiderpool_ipam_pool_allocated_ip_counts"

	labelPool = "pool"
)

// poolCollectTimeout bounds the cache read of one scrape.
const poolCollectTimeout = 5 * time.Second

// commitObserver is the metrics hook of internal/ipam/kubestore
// (kubestore.Observer); declared here too so that Metrics is checked
// against it without importing kubestore outside agent.go.
type commitObserver interface {
	ObserveCommit(pool string, batchSize int, d time.Duration)
	ObserveConflict(pool string)
}

var _ commitObserver = (*Metrics)(nil)

// Metrics are the agent's Prometheus metrics, in a registry of their own.
// A nil *Metrics records nothing, so that tests and callers may leave it out.
type Metrics struct {
	registry *prometheus.Registry

	allocations, allocationFailures, allocationConflicts prometheus.Counter
	allocErrInternal, allocErrNoPool                     prometheus.Counter
	allocErrRetries, allocErrUsedOut                     prometheus.Counter
	allocationDuration                                   prometheus.Histogram

	releases, releaseFailures, releaseConflicts prometheus.Counter
	releaseErrInternal, releaseErrRetries       prometheus.Counter
	releaseDuration                             prometheus.Histogram

	commitBatchSize prometheus.Histogram
	commitDuration  prometheus.Histogram
}

// NewMetrics registers the metrics in a new registry.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	durations := prometheus.ExponentialBuckets(0.001, 2, 16) // 1 ms to 33 s
	m := &Metrics{
		registry:            prometheus.NewRegistry(),
		allocations:         counter(metricAllocations, "CNI ADD requests."),
		allocationFailures:  counter(metricAllocationFailures, "CNI ADD requests that failed."),
		allocationConflicts: counter(metricAllocationConflicts, "IPPool status writes that lost a resourceVersion race and were re-planned (allocations and releases: group commit writes both in one update)."),
		allocErrInternal:    counter(metricAllocErrInternal, "CNI ADD requests that failed for an internal error."),
		allocErrNoPool:      counter(metricAllocErrNoPool, "CNI ADD requests that failed because no IPPool was left to try."),
		allocErrRetries:     counter(metricAllocErrRetries, "CNI ADD requests that failed after exhausting retries on conflicts or their time budget."),
		allocErrUsedOut:     counter(metricAllocErrUsedOut, "CNI ADD requests that failed because every candidate IPPool was exhausted."),
		allocationDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricAllocationDuration, Help: "Duration of CNI ADD requests served by the agent, successful or not.", Buckets: durations,
		}),
		releases:           counter(metricReleases, "CNI DEL requests."),
		releaseFailures:    counter(metricReleaseFailures, "CNI DEL requests that failed."),
		releaseConflicts:   counter(metricReleaseConflicts, "Kept for upstream's dashboards; conflicts of releases are counted in "+metricAllocationConflicts+"."),
		releaseErrInternal: counter(metricReleaseErrInternal, "CNI DEL requests that failed for an internal error."),
		releaseErrRetries:  counter(metricReleaseErrRetries, "CNI DEL requests that failed after exhausting retries on conflicts or their time budget."),
		releaseDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricReleaseDuration, Help: "Duration of CNI DEL requests served by the agent, successful or not.", Buckets: durations,
		}),
		commitBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitBatchSize, Help: "Requests carried by one IPPool status write (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitDuration, Help: "Duration of one IPPool status write.", Buckets: durations,
		}),
	}
	m.registry.MustRegister(
		m.allocations, m.allocationFailures, m.allocationConflicts,
		m.allocErrInternal, m.allocErrNoPool, m.allocErrRetries, m.allocErrUsedOut, m.allocationDuration,
		m.releases, m.releaseFailures, m.releaseConflicts, m.releaseErrInternal, m.releaseErrRetries, m.releaseDuration,
		m.commitBatchSize, m.commitDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// CollectPools adds the per-pool size gauges, read from pools at scrape
// time. It is separate from NewMetrics because the pool store itself
// reports to the Metrics.
func (m *Metrics) CollectPools(pools PoolLister) {
	m.registry.MustRegister(&poolCollector{pools: pools})
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Gatherer exposes the registry, for tests and embedding.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.registry }

// ObserveCommit records one IPPool status write carrying batchSize requests.
func (m *Metrics) ObserveCommit(_ string, batchSize int, d time.Duration) {
	if m == nil {
		return
	}
	m.commitBatchSize.Observe(float64(batchSize))
	m.commitDuration.Observe(d.Seconds())
}

// ObserveConflict records an IPPool status write that lost a race.
func (m *Metrics) ObserveConflict(string) {
	if m == nil {
		return
	}
	m.allocationConflicts.Inc()
}

func (m *Metrics) observeAllocation(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.allocations.Inc()
	m.allocationDuration.Observe(d.Seconds())
	if err == nil {
		return
	}
	m.allocationFailures.Inc()
	switch classify(err) {
	case v1.CodeInternal:
		m.allocErrInternal.Inc()
	case v1.CodeNoCandidatePool:
		m.allocErrNoPool.Inc()
	case v1.CodeConflict:
		m.allocErrRetries.Inc()
	case v1.CodePoolExhausted:
		m.allocErrUsedOut.Inc()
	}
}

func (m *Metrics) observeRelease(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.releases.Inc()
	m.releaseDuration.Observe(d.Seconds())
	if err == nil {
		return
	}
	m.releaseFailures.Inc()
	switch classify(err) {
	case v1.CodeInternal:
		m.releaseErrInternal.Inc()
	case v1.CodeConflict:
		m.releaseErrRetries.Inc()
	}
}

// poolCollector reports the size and use of every cached pool at scrape
// time, so that deleted pools disappear without bookkeeping.
type poolCollector struct {
	pools PoolLister
}

var _ prometheus.Collector = (*poolCollector)(nil)

var (
	poolTotalDesc = prometheus.NewDesc(metricPoolTotalIPs,
		"Usable addresses of the IPPool (ips minus excludeIPs), from this agent's cache.", []string{labelPool}, nil)
	poolAllocatedDesc = prometheus.NewDesc(metricPoolAllocatedIPs,
		"Allocation records of the IPPool, from this agent's cache.", []string{labelPool}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolTotalDesc
	ch <- poolAllocatedDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), poolCollectTimeout)
	defer cancel()
	pools, err := c.pools.Pools(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(poolTotalDesc, err)
		return
	}
	for _, p := range pools {
		st, err := ipam.NewPoolState(p)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(poolTotalDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(st.Usable().Count()), p.Name)
		ch <- prometheus.MustNewConstMetric(poolAllocatedDesc, prometheus.GaugeValue, float64(st.Len()), p.Name)
	}
}
