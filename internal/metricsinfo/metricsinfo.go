// Package metricsinfo describes the Prometheus metric families that spiderpool-agent and
// spiderpool-controller export, for the generated reference in docs/reference/metrics.md. Each
// daemon lists its families next to its registry (agent.DescribeMetrics,
// controller.DescribeMetrics), and a test holds that list to what the registry really exports.
package metricsinfo

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

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

// Mismatch compares the families a daemon describes with those its registry gathered and returns
// what differs, "" when nothing does: a spiderpool_ family gathered but not described or
// described but not gathered, a different type, help text or label set, and a family described
// twice. Debug is not compared (a scrape does not show it); gather with debug metrics on.
func Mismatch(described []Family, gathered []*dto.MetricFamily) string {
	var out []string
	want := map[string]Family{}
	for _, f := range described {
		if _, dup := want[f.Name]; dup {
			out = append(out, "described twice: "+f.Name)
		}
		f.Debug = false
		f.Labels = slices.Sorted(slices.Values(f.Labels))
		want[f.Name] = f
	}
	got := map[string]Family{}
	for _, mf := range gathered {
		if !strings.HasPrefix(mf.GetName(), "spiderpool_") {
			continue
		}
		g := Family{Name: mf.GetName(), Help: mf.GetHelp(), Type: strings.ToLower(mf.GetType().String())}
		if ms := mf.GetMetric(); len(ms) > 0 {
			for _, l := range ms[0].GetLabel() {
				g.Labels = append(g.Labels, l.GetName())
			}
		}
		g.Labels = slices.Sorted(slices.Values(g.Labels))
		got[g.Name] = g
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w, ok := got[name]
		switch {
		case !ok:
			out = append(out, "described, not gathered: "+name)
		case !reflect.DeepEqual(w, want[name]):
			out = append(out, fmt.Sprintf("%s: described %+v, gathered %+v", name, want[name], w))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			out = append(out, "gathered, not described: "+name)
		}
	}
	return strings.Join(out, "\n")
}
