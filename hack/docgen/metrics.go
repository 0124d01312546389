package main

import (
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
)

// daemonMetrics are the families one daemon exports.
type daemonMetrics struct {
	// Daemon is the binary; Where says where its /metrics is served.
	Daemon, Where string
	Families      []metricsinfo.Family
}

func renderMetrics(daemons []daemonMetrics) []byte {
	var p page
	p.WriteString(generatedNote)
	p.line("# Metrics")
	p.line("")
	p.line("The Prometheus metric families spiderpool-agent and spiderpool-controller export on `/metrics`, from the")
	p.line("descriptions each daemon keeps next to its registry (`agent.DescribeMetrics`, `controller.DescribeMetrics`);")
	p.line("a unit test of each daemon holds that description to what its registry really exports. Families marked")
	p.line("*debug* are exported only with the daemon's debug metrics switched on. Each histogram family also has its")
	p.line("`_bucket`, `_sum` and `_count` series.")
	p.line("")
	for _, d := range daemons {
		p.line("## " + d.Daemon)
		p.line("")
		p.line(d.Where)
		p.line("")
		rows := make([][]string, 0, len(d.Families))
		for _, f := range d.Families {
			labels := make([]string, len(f.Labels))
			for i, l := range f.Labels {
				labels[i] = code(l)
			}
			exported := "always"
			if f.Debug {
				exported = "debug"
			}
			rows = append(rows, []string{code(f.Name), f.Type, strings.Join(labels, ", "), exported, cell(f.Help)})
		}
		p.table([]string{"Name", "Type", "Labels", "Exported", "Help"}, rows)
	}
	return p.Bytes()
}
