package agent

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
)

// Metric names: upstream's (docs/reference/metrics.md#spiderpool-agent) and, for outcomes, group
// commit and pool sizes, ours. The average/max/min/latest gauges of each
// latency are named by latencyNames.
const (
	metricAllocations               = "spiderpool_ipam_allocation_counts"
	metricAllocationFailures        = "spiderpool_ipam_allocation_failure_counts"
	metricAllocationConflicts       = "spiderpool_ipam_allocation_update_ippool_conflict_counts"
	metricAllocErrInternal          = "spiderpool_ipam_allocation_err_internal_counts"
	metricAllocErrNoPool            = "spiderpool_ipam_allocation_err_no_available_pool_counts"
	metricAllocErrRetries           = "spiderpool_ipam_allocation_err_retries_exhausted_counts"
	metricAllocErrUsedOut           = "spiderpool_ipam_allocation_err_ip_used_out_counts"
	metricAllocationDuration        = "spiderpool_ipam_allocation_duration_seconds"
	metricAllocationLimitDuration   = "spiderpool_ipam_allocation_limit_duration_seconds"
	metricAllocationOutcomeDuration = "spiderpool_ipam_allocation_outcome_duration_seconds"
	metricReleases                  = "spiderpool_ipam_release_counts"
	metricReleaseFailures           = "spiderpool_ipam_release_failure_counts"
	metricReleaseConflicts          = "spiderpool_ipam_release_update_ippool_conflict_counts"
	metricReleaseErrInternal        = "spiderpool_ipam_release_err_internal_counts"
	metricReleaseErrRetries         = "spiderpool_ipam_release_err_retries_exhausted_counts"
	metricReleaseDuration           = "spiderpool_ipam_release_duration_seconds"
	metricReleaseLimitDuration      = "spiderpool_ipam_release_limit_duration_seconds"
	metricReleaseOutcomeDuration    = "spiderpool_ipam_release_outcome_duration_seconds"
	metricCommitBatchSize           = "spiderpool_ipam_commit_batch_size"
	metricCommitDuration            = "spiderpool_ipam_commit_duration_seconds"
	metricCommitConflicts           = "spiderpool_ipam_commit_conflict_counts"
	metricPoolTotalIPs              = "spiderpool_ipam_pool_total_ip_counts"
	metricPoolAllocatedIPs          = "spiderpool_ipam_pool_allocated_ip_counts"
	metricAutoPoolWaited            = "spiderpool_debug_auto_pool_waited_for_available_counts"

	labelPool    = "pool"
	labelOutcome = "outcome"
)

// Values of the outcome label: how the agent answered a request, one per
// api/agent/v1 error code.
const (
	outcomeSuccess          = "success"
	outcomeNoPool           = "no_pool"
	outcomeIPUsedOut        = "ip_used_out"
	outcomeRetriesExhausted = "retries_exhausted"
	outcomeInternal         = "internal"
	outcomeInvalidRequest   = "invalid_request"
	outcomeNotFound         = "not_found"
	outcomeDeadPod          = "dead_pod"
	outcomeNotReady         = "not_ready"
	outcomeForbidden        = "forbidden"
)

var outcomeOfCode = map[v1.Code]string{
	v1.CodeNoCandidatePool: outcomeNoPool,
	v1.CodePoolExhausted:   outcomeIPUsedOut,
	v1.CodeConflict:        outcomeRetriesExhausted,
	v1.CodeInternal:        outcomeInternal,
	v1.CodeInvalidRequest:  outcomeInvalidRequest,
	v1.CodeNotFound:        outcomeNotFound,
	v1.CodeDeadPod:         outcomeDeadPod,
	v1.CodeNotReady:        outcomeNotReady,
	v1.CodeForbidden:       outcomeForbidden,
}

// outcomeOf is the outcome label of a request that ended with err.
func outcomeOf(err error) string {
	if err == nil {
		return outcomeSuccess
	}
	if o, ok := outcomeOfCode[classify(err)]; ok {
		return o
	}
	return outcomeInternal
}

const outcomeList = "success, no_pool, ip_used_out, retries_exhausted, internal, invalid_request, not_found, dead_pod, not_ready, forbidden"

// poolCollectTimeout bounds the cache read of one scrape.
const poolCollectTimeout = 5 * time.Second

// durationBuckets are the buckets of every latency histogram: 1 ms to 33 s.
var durationBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// Upstream's four gauges of a latency, in the order of latencyNames.
var latencyStats = [4]string{"average", "max", "min", "latest"}

// latencyNames returns the gauges that summarise a latency histogram named
// prefix_[limit_]duration_seconds: prefix_average_[limit_]duration_seconds
// and likewise max, min and latest.
func latencyNames(prefix string, limit bool) [4]string {
	suffix := "_duration_seconds"
	if limit {
		suffix = "_limit_duration_seconds"
	}
	var out [4]string
	for i, s := range latencyStats {
		out[i] = prefix + "_" + s + suffix
	}
	return out
}

// latencyFamilies describes a latency: its histogram and its four gauges.
func latencyFamilies(prefix string, limit bool, what string) []metricsinfo.Family {
	hist := prefix + "_duration_seconds"
	if limit {
		hist = prefix + "_limit_duration_seconds"
	}
	out := []metricsinfo.Family{{Name: hist, Type: "histogram", Help: what}}
	names := latencyNames(prefix, limit)
	helps := [4]string{
		"Mean of " + hist + " since the agent started; absent until the first observation.",
		"Longest observation of " + hist + " since the agent started; absent until the first.",
		"Shortest observation of " + hist + " since the agent started; absent until the first.",
		"Most recent observation of " + hist + "; absent until the first.",
	}
	for i, n := range names {
		out = append(out, metricsinfo.Family{Name: n, Type: "gauge", Help: helps[i]})
	}
	return out
}

// DescribeMetrics lists every metric family of spiderpool-agent except the
// Go runtime and process collectors, in the order of the generated
// reference. A unit test holds it to what the registry exports.
func DescribeMetrics() []metricsinfo.Family {
	counter := func(name, help string) metricsinfo.Family {
		return metricsinfo.Family{Name: name, Type: "counter", Help: help}
	}
	var out []metricsinfo.Family
	out = append(out,
		counter(metricAllocations, "CNI ADD requests the agent answered (a body that does not decode is not counted)."),
		counter(metricAllocationFailures, "CNI ADD requests answered with an error."),
		counter(metricAllocationConflicts, "IPPool updates made for CNI ADDs that the store had to plan again because the status write carrying them lost a resourceVersion race (or, rarely, was too large to store); one ADD can count several times."),
		counter(metricAllocErrInternal, "CNI ADD requests that failed with an internal error."),
		counter(metricAllocErrNoPool, "CNI ADD requests that failed because no IPPool was left to try."),
		counter(metricAllocErrRetries, "CNI ADD requests that failed after exhausting retries on conflicts or their time budget."),
		counter(metricAllocErrUsedOut, "CNI ADD requests that failed because every candidate IPPool was exhausted."),
	)
	out = append(out, latencyFamilies("spiderpool_ipam_allocation", false,
		"Time the agent took to answer a CNI ADD, successful or not.")...)
	out = append(out, latencyFamilies("spiderpool_ipam_allocation", true,
		"Time an IPPool update made for a CNI ADD waited in this agent's per-pool group-commit queue "+
			"before the store planned it into a status write. The agent has no other admission limit: this "+
			"queue is where an ADD waits behind other requests. One observation per pool update (the IPv4 "+
			"and IPv6 pools of a dual-stack ADD are separate updates); an ADD answered from its "+
			"SpiderEndpoint makes none. With --unbatched (the benchmark baseline) there is no queue and "+
			"this is the time of the update's live read of the pool.")...)
	out = append(out, metricsinfo.Family{Name: metricAllocationOutcomeDuration, Type: "histogram", Labels: []string{labelOutcome},
		Help: "Time the agent took to answer a CNI ADD, by outcome: " + outcomeList + "."})
	out = append(out,
		counter(metricReleases, "CNI DEL requests (one interface or all of a pod's) the agent answered."),
		counter(metricReleaseFailures, "CNI DEL requests answered with an error."),
		counter(metricReleaseConflicts, "IPPool updates made for CNI DELs that the store had to plan again because the status write carrying them lost a resourceVersion race (or, rarely, was too large to store); one DEL can count several times."),
		counter(metricReleaseErrInternal, "CNI DEL requests that failed with an internal error."),
		counter(metricReleaseErrRetries, "CNI DEL requests that failed after exhausting retries on conflicts or their time budget."),
	)
	out = append(out, latencyFamilies("spiderpool_ipam_release", false,
		"Time the agent took to answer a CNI DEL, successful or not.")...)
	out = append(out, latencyFamilies("spiderpool_ipam_release", true,
		"Time an IPPool update made for a CNI DEL waited in this agent's per-pool group-commit queue "+
			"before the store planned it into a status write (see "+metricAllocationLimitDuration+"). "+
			"One observation per pool update; a DEL with nothing to free makes none.")...)
	out = append(out, metricsinfo.Family{Name: metricReleaseOutcomeDuration, Type: "histogram", Labels: []string{labelOutcome},
		Help: "Time the agent took to answer a CNI DEL, by outcome: " + outcomeList + "."})
	out = append(out,
		metricsinfo.Family{Name: metricCommitBatchSize, Type: "histogram",
			Help: "IPPool updates carried by one IPPool status write (group commit)."},
		metricsinfo.Family{Name: metricCommitDuration, Type: "histogram",
			Help: "Duration of one successful IPPool status write."},
		counter(metricCommitConflicts, "IPPool status writes (allocations and releases together) that lost a resourceVersion race and were planned again."),
		metricsinfo.Family{Name: metricPoolTotalIPs, Type: "gauge", Labels: []string{labelPool},
			Help: "Usable addresses of the IPPool (spec.ips minus spec.excludeIPs), from this agent's cache."},
		metricsinfo.Family{Name: metricPoolAllocatedIPs, Type: "gauge", Labels: []string{labelPool},
			Help: "Allocation records of the IPPool, from this agent's cache."},
		metricsinfo.Family{Name: metricAutoPoolWaited, Type: "counter", Debug: true,
			Help: "CNI ADD requests that found the IPPool a SpiderSubnet annotation asks for not created yet. " +
				"The agent does not wait for it: it answers a retryable error, and the kubelet's retry is the wait."},
	)
	return out
}

// helpOf is the help text of a family DescribeMetrics lists.
var helpOf = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, f := range DescribeMetrics() {
		m[f.Name] = f.Help
	}
	return m
})

// commitObserver is the metrics hook of internal/ipam/kubestore
// (kubestore.Observer); declared here too so that Metrics is checked
// against it without importing kubestore outside agent.go.
type commitObserver interface {
	ObserveCommit(pool string, batchSize int, d time.Duration)
	ObserveConflict(pool string)
}

var _ commitObserver = (*Metrics)(nil)

// MetricsOptions tunes NewMetrics.
type MetricsOptions struct {
	// Debug exports the spiderpool_debug_ families too
	// (spiderpoolAgent.prometheus.enabledDebugMetric).
	Debug bool
}

// Metrics are the agent's Prometheus metrics, in a registry of their own.
// A nil *Metrics records nothing, so that tests and callers may leave it out.
type Metrics struct {
	registry *prometheus.Registry

	allocations, allocationFailures, allocationConflicts prometheus.Counter
	allocErrInternal, allocErrNoPool                     prometheus.Counter
	allocErrRetries, allocErrUsedOut                     prometheus.Counter
	allocation, allocationLimit                          *latency
	allocationOutcome                                    *prometheus.HistogramVec

	releases, releaseFailures, releaseConflicts prometheus.Counter
	releaseErrInternal, releaseErrRetries       prometheus.Counter
	release, releaseLimit                       *latency
	releaseOutcome                              *prometheus.HistogramVec

	commitBatchSize prometheus.Histogram
	commitDuration  prometheus.Histogram
	commitConflicts prometheus.Counter

	// autoPoolWaited is registered only with MetricsOptions.Debug.
	autoPoolWaited prometheus.Counter
}

// NewMetrics registers the metrics in a new registry.
func NewMetrics(opts MetricsOptions) *Metrics {
	counter := func(name string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: helpOf()[name]})
	}
	outcomes := func(name string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: helpOf()[name], Buckets: durationBuckets},
			[]string{labelOutcome})
	}
	m := &Metrics{
		registry:            prometheus.NewRegistry(),
		allocations:         counter(metricAllocations),
		allocationFailures:  counter(metricAllocationFailures),
		allocationConflicts: counter(metricAllocationConflicts),
		allocErrInternal:    counter(metricAllocErrInternal),
		allocErrNoPool:      counter(metricAllocErrNoPool),
		allocErrRetries:     counter(metricAllocErrRetries),
		allocErrUsedOut:     counter(metricAllocErrUsedOut),
		allocation:          newLatency("spiderpool_ipam_allocation", false),
		allocationLimit:     newLatency("spiderpool_ipam_allocation", true),
		allocationOutcome:   outcomes(metricAllocationOutcomeDuration),
		releases:            counter(metricReleases),
		releaseFailures:     counter(metricReleaseFailures),
		releaseConflicts:    counter(metricReleaseConflicts),
		releaseErrInternal:  counter(metricReleaseErrInternal),
		releaseErrRetries:   counter(metricReleaseErrRetries),
		release:             newLatency("spiderpool_ipam_release", false),
		releaseLimit:        newLatency("spiderpool_ipam_release", true),
		releaseOutcome:      outcomes(metricReleaseOutcomeDuration),
		commitBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitBatchSize, Help: helpOf()[metricCommitBatchSize],
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricCommitDuration, Help: helpOf()[metricCommitDuration], Buckets: durationBuckets,
		}),
		commitConflicts: counter(metricCommitConflicts),
		autoPoolWaited:  counter(metricAutoPoolWaited),
	}
	m.registry.MustRegister(
		m.allocations, m.allocationFailures, m.allocationConflicts,
		m.allocErrInternal, m.allocErrNoPool, m.allocErrRetries, m.allocErrUsedOut,
		m.allocation, m.allocationLimit, m.allocationOutcome,
		m.releases, m.releaseFailures, m.releaseConflicts, m.releaseErrInternal, m.releaseErrRetries,
		m.release, m.releaseLimit, m.releaseOutcome,
		m.commitBatchSize, m.commitDuration, m.commitConflicts,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.Debug {
		m.registry.MustRegister(m.autoPoolWaited)
	}
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

// ObserveConflict records an IPPool status write that lost a race. Which
// requests it carried is counted by the store ObserveStore wraps.
func (m *Metrics) ObserveConflict(string) {
	if m == nil {
		return
	}
	m.commitConflicts.Inc()
}

func (m *Metrics) observeAllocation(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.allocations.Inc()
	m.allocation.observe(d)
	m.allocationOutcome.WithLabelValues(outcomeOf(err)).Observe(d.Seconds())
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
	if errors.Is(err, ipam.ErrAutoPoolNotReady) {
		m.autoPoolWaited.Inc()
	}
}

func (m *Metrics) observeRelease(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.releases.Inc()
	m.release.observe(d)
	m.releaseOutcome.WithLabelValues(outcomeOf(err)).Observe(d.Seconds())
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

// requestKind says whose pool updates a context carries, for the limit and
// conflict metrics of ObserveStore.
type requestKind int

const (
	kindAllocation requestKind = iota + 1
	kindRelease
)

type requestKindKey struct{}

// withRequestKind marks ctx as the context of an ADD or a DEL: the pool
// updates made under it are counted as that request's.
func withRequestKind(ctx context.Context, k requestKind) context.Context {
	return context.WithValue(ctx, requestKindKey{}, k)
}

// ObserveStore returns store with the pool updates of ADDs and DELs
// measured: how long each waited before the store first ran its update
// function (the per-pool group-commit queue of kubestore) and how often the
// store ran it again. ipam.Store runs a function again after a lost write
// race; kubestore also does once when a write was too large to store, a
// rare case the conflict counters include rather than tell apart. Updates
// made outside a request, or with m nil, pass through unmeasured.
func (m *Metrics) ObserveStore(store ipam.Store) ipam.Store {
	if m == nil {
		return store
	}
	return &observedStore{Store: store, m: m}
}

type observedStore struct {
	ipam.Store
	m *Metrics
}

var _ ipam.Store = (*observedStore)(nil)

func (s *observedStore) UpdatePool(ctx context.Context, name string, fn func(*ipam.PoolState) error) error {
	kind, _ := ctx.Value(requestKindKey{}).(requestKind)
	var limit *latency
	var conflicts prometheus.Counter
	switch kind {
	case kindAllocation:
		limit, conflicts = s.m.allocationLimit, s.m.allocationConflicts
	case kindRelease:
		limit, conflicts = s.m.releaseLimit, s.m.releaseConflicts
	default:
		return s.Store.UpdatePool(ctx, name, fn)
	}
	start := time.Now()
	var runs atomic.Int64
	err := s.Store.UpdatePool(ctx, name, func(st *ipam.PoolState) error {
		if runs.Add(1) == 1 {
			limit.observe(time.Since(start))
		}
		return fn(st)
	})
	if n := runs.Load(); n > 1 {
		conflicts.Add(float64(n - 1))
	}
	return err
}

// latency is a histogram with upstream's average, max, min and latest
// gauges beside it, computed over every observation since the start.
type latency struct {
	hist  prometheus.Histogram
	descs [4]*prometheus.Desc

	mu                    sync.Mutex
	n                     int64
	sum, min, max, latest float64
}

var _ prometheus.Collector = (*latency)(nil)

func newLatency(prefix string, limit bool) *latency {
	name := prefix + "_duration_seconds"
	if limit {
		name = prefix + "_limit_duration_seconds"
	}
	l := &latency{hist: prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: helpOf()[name], Buckets: durationBuckets})}
	for i, n := range latencyNames(prefix, limit) {
		l.descs[i] = prometheus.NewDesc(n, helpOf()[n], nil, nil)
	}
	return l
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	l.hist.Observe(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		l.min, l.max = math.Inf(1), math.Inf(-1)
	}
	l.n++
	l.sum += s
	l.min = min(l.min, s)
	l.max = max(l.max, s)
	l.latest = s
}

func (l *latency) Describe(ch chan<- *prometheus.Desc) {
	l.hist.Describe(ch)
	for _, d := range l.descs {
		ch <- d
	}
}

func (l *latency) Collect(ch chan<- prometheus.Metric) {
	l.hist.Collect(ch)
	l.mu.Lock()
	n, values := l.n, [4]float64{l.sum / float64(max(l.n, 1)), l.max, l.min, l.latest}
	l.mu.Unlock()
	if n == 0 {
		return
	}
	for i, d := range l.descs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, values[i])
	}
}

// poolCollector reports the size and use of every cached pool at scrape
// time, so that deleted pools disappear without bookkeeping.
type poolCollector struct {
	pools PoolLister
}

var _ prometheus.Collector = (*poolCollector)(nil)

var (
	poolTotalDesc     = prometheus.NewDesc(metricPoolTotalIPs, helpOf()[metricPoolTotalIPs], []string{labelPool}, nil)
	poolAllocatedDesc = prometheus.NewDesc(metricPoolAllocatedIPs, helpOf()[metricPoolAllocatedIPs], []string{labelPool}, nil)
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
		total, allocated, err := p.Usage()
		if err != nil {
			// A spec the webhook would have refused: the pool has no size to report, and one such
			// pool must not fail the whole scrape.
			continue
		}
		ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(total), p.Name)
		ch <- prometheus.MustNewConstMetric(poolAllocatedDesc, prometheus.GaugeValue, float64(allocated), p.Name)
	}
}
