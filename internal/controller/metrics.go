package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
)

// Metric families of spiderpool-controller besides controller-runtime's own (docs/reference/metrics.md#spiderpool-controller).
// The GC counters are defined beside the GC (gc_controller.go); the pool and subnet gauges are
// computed at scrape time from the manager's cache by inventoryCollector.
const (
	metricGCCounts               = "spiderpool_ip_gc_counts"
	metricGCFailureCounts        = "spiderpool_ip_gc_failure_counts"
	metricTotalIPPools           = "spiderpool_total_ippool_counts"
	metricTotalSubnets           = "spiderpool_total_subnet_counts"
	metricDebugIPPoolTotalIPs    = "spiderpool_debug_ippool_total_ip_counts"
	metricDebugIPPoolAvailable   = "spiderpool_debug_ippool_available_ip_counts"
	metricDebugSubnetIPPools     = "spiderpool_debug_subnet_ippool_counts"
	metricDebugSubnetTotalIPs    = "spiderpool_debug_subnet_total_ip_counts"
	metricDebugSubnetAvailableIP = "spiderpool_debug_subnet_available_ip_counts"

	labelReason = "reason"
	labelPool   = "pool"
	labelSubnet = "subnet"

	helpGCCounts        = "IP records reclaimed by the garbage collector, by reason (orphan_endpoint and outdated_endpoint count deleted SpiderEndpoints)."
	helpGCFailureCounts = "IP records (or SpiderEndpoints, for orphan_endpoint and outdated_endpoint) the garbage collector failed to reclaim, by reason."
)

// inventoryTimeout bounds the cache reads of one scrape.
const inventoryTimeout = 5 * time.Second

// DescribeMetrics lists the metric families spiderpool-controller adds to controller-runtime's
// registry (controller-runtime's, Go's and the process's own are not listed), in the order of the
// generated reference. A unit test holds it to what the registry exports.
func DescribeMetrics() []metricsinfo.Family {
	return []metricsinfo.Family{
		{Name: metricGCCounts, Type: "counter", Labels: []string{labelReason}, Help: helpGCCounts},
		{Name: metricGCFailureCounts, Type: "counter", Labels: []string{labelReason}, Help: helpGCFailureCounts},
		{Name: metricTotalIPPools, Type: "gauge", Help: "SpiderIPPools in the cluster, from the controller's cache."},
		{Name: metricTotalSubnets, Type: "gauge", Help: "SpiderSubnets in the cluster, from the controller's cache."},
		{Name: metricDebugIPPoolTotalIPs, Type: "gauge", Labels: []string{labelPool}, Debug: true,
			Help: "Usable addresses of the SpiderIPPool (spec.ips minus spec.excludeIPs)."},
		{Name: metricDebugIPPoolAvailable, Type: "gauge", Labels: []string{labelPool}, Debug: true,
			Help: "Usable addresses of the SpiderIPPool without an allocation record (SpiderReservedIPs are not subtracted)."},
		{Name: metricDebugSubnetIPPools, Type: "gauge", Labels: []string{labelSubnet}, Debug: true,
			Help: "SpiderIPPools the SpiderSubnet controls (status.controlledIPPools)."},
		{Name: metricDebugSubnetTotalIPs, Type: "gauge", Labels: []string{labelSubnet}, Debug: true,
			Help: "Usable addresses of the SpiderSubnet (status.totalIPCount); absent until its status is computed."},
		{Name: metricDebugSubnetAvailableIP, Type: "gauge", Labels: []string{labelSubnet}, Debug: true,
			Help: "Usable addresses of the SpiderSubnet that no SpiderIPPool holds (status.totalIPCount minus status.allocatedIPCount); absent until its status is computed."},
	}
}

// MetricsOptions says what RegisterMetrics exports.
type MetricsOptions struct {
	// Debug exports the spiderpool_debug_ families (spiderpoolController.prometheus.enabledDebugMetric).
	Debug bool
}

// RegisterMetrics registers the pool and subnet gauges, read from reader (the manager's cache) at
// each scrape, with reg, and returns the function that unregisters them. The GC counters are
// registered by NewGCReconciler.
func RegisterMetrics(reg prometheus.Registerer, reader client.Reader, opts MetricsOptions) (unregister func(), err error) {
	c := newInventoryCollector(reader, opts.Debug)
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register IPPool and SpiderSubnet metrics: %w", err)
	}
	// Every reason's series from the start, at 0, so that a scrape shows the GC families before
	// their first reclaim and rate() sees the first one.
	for _, reason := range gcReasons {
		gcCounts.WithLabelValues(reason)
		gcFailureCounts.WithLabelValues(reason)
	}
	return func() { reg.Unregister(c) }, nil
}

// gcReasons are the values of the GC counters' reason label.
var gcReasons = []string{
	GCReasonPodDeleted, GCReasonPodUIDChanged, GCReasonPodFinished, GCReasonTerminatingTimeout,
	GCReasonOrphanEndpoint, GCReasonOutdatedEndpoint, GCReasonStatefulSetScaled, GCReasonVMGone,
}

// inventoryCollector reports the pools and subnets of the cache at scrape time, so that deleted
// objects disappear from the metrics without bookkeeping.
type inventoryCollector struct {
	reader client.Reader
	debug  bool
	descs  map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*inventoryCollector)(nil)

func newInventoryCollector(reader client.Reader, debug bool) *inventoryCollector {
	c := &inventoryCollector{reader: reader, debug: debug, descs: map[string]*prometheus.Desc{}}
	for _, f := range DescribeMetrics() {
		if f.Type != "gauge" || (f.Debug && !debug) {
			continue
		}
		c.descs[f.Name] = prometheus.NewDesc(f.Name, f.Help, f.Labels, nil)
	}
	return c
}

func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), inventoryTimeout)
	defer cancel()
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}

	var pools v2beta1.SpiderIPPoolList
	if err := c.reader.List(ctx, &pools, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(c.descs[metricTotalIPPools], fmt.Errorf("list SpiderIPPools: %w", err))
	} else {
		gauge(metricTotalIPPools, float64(len(pools.Items)))
		for i := range pools.Items {
			c.collectPool(&pools.Items[i], gauge)
		}
	}

	var subnets v2beta1.SpiderSubnetList
	if err := c.reader.List(ctx, &subnets, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(c.descs[metricTotalSubnets], fmt.Errorf("list SpiderSubnets: %w", err))
		return
	}
	gauge(metricTotalSubnets, float64(len(subnets.Items)))
	for i := range subnets.Items {
		c.collectSubnet(&subnets.Items[i], gauge)
	}
}

func (c *inventoryCollector) collectPool(p *v2beta1.SpiderIPPool, gauge func(string, float64, ...string)) {
	if !c.debug {
		return
	}
	total, allocated, err := p.Usage()
	if err != nil {
		// A spec the webhook would have refused has no size; one such pool must not fail the scrape.
		return
	}
	gauge(metricDebugIPPoolTotalIPs, float64(total), p.Name)
	gauge(metricDebugIPPoolAvailable, float64(max(total-allocated, 0)), p.Name)
}

func (c *inventoryCollector) collectSubnet(s *v2beta1.SpiderSubnet, gauge func(string, float64, ...string)) {
	if !c.debug {
		return
	}
	if controlled, err := s.Status.ControlledPools(); err == nil {
		gauge(metricDebugSubnetIPPools, float64(len(controlled)), s.Name)
	}
	if s.Status.TotalIPCount == nil {
		return
	}
	total := *s.Status.TotalIPCount
	var allocated int64
	if s.Status.AllocatedIPCount != nil {
		allocated = *s.Status.AllocatedIPCount
	}
	gauge(metricDebugSubnetTotalIPs, float64(total), s.Name)
	gauge(metricDebugSubnetAvailableIP, float64(max(total-allocated, 0)), s.Name)
}
