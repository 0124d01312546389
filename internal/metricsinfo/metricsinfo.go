// Package metricsinfo describes the Prometheus metric families that spiderpool-agent and
// spiderpool-controller export, for the generated reference in docs/reference/metrics.md. Each
// daemon lists its families next to its registry (agent.DescribeMetrics,
// controller.DescribeMetrics), and a test holds that list to what the registry really exports.
package metricsinfo

// Family is one metric family as a scrape shows it.
type Family struct {
	// Name is the family's name, e.g. spiderpool_ipam_allocation_counts.
	Name string
	// Type is counter, gauge or histogram.
	Type string
	// Help is the HELP text.
	Help string
	// Labels are the family's label names, in order; empty for none.
	Labels []string
	// Debug is true for a family exported only with the daemon's debug metrics switched on
	// (spiderpoolAgent.prometheus.enabledDebugMetric, spiderpoolController.prometheus.enabledDebugMetric).
	Debug bool
}
