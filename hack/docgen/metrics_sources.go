package main

import (
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/controller"
)

// sectionMetrics generates metrics.md from the daemons' own descriptions of their registries.
func sectionMetrics() (string, []byte, error) {
	return "metrics.md", renderMetrics([]daemonMetrics{
		{
			Daemon: "spiderpool-agent",
			Where: "Served on `-metrics-addr` when the chart's `spiderpoolAgent.prometheus.enabled` is true (port " +
				"`spiderpoolAgent.prometheus.port`); the debug families need `-debug-metrics` " +
				"(`spiderpoolAgent.prometheus.enabledDebugMetric`). The Go runtime and process families of the Prometheus " +
				"client are exported too and not listed.",
			Families: agent.DescribeMetrics(),
		},
		{
			Daemon: "spiderpool-controller",
			Where: "Served on `-metrics-addr` when the chart's `spiderpoolController.prometheus.enabled` is true (port " +
				"`spiderpoolController.prometheus.port`); the debug families need `-debug-metrics` " +
				"(`spiderpoolController.prometheus.enabledDebugMetric`). controller-runtime's own families (reconcile, " +
				"work queue, webhook, client) and the Go runtime and process families are exported too and not listed.",
			Families: controller.DescribeMetrics(),
		},
	}), nil
}
