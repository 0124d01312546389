package agent

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// metricsTraffic runs ADDs and DELs that touch every family: a success, an exhausted pool, an
// auto pool that does not exist yet and a release.
func metricsTraffic(t *testing.T) *testEnv {
	t.Helper()
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(
		newPod("a", "ua"), newPod("b", "ub"),
		newPod("auto", "uauto", build.Annotation(v2beta1.AnnoSpiderSubnet, `{"ipv4":["s1"]}`))))
	e.mustAdd(addArgs("a", "ua", "eth0"))
	if _, apiErr := e.add(addArgs("b", "ub", "eth0")); apiErr == nil || apiErr.Code != v1.CodePoolExhausted {
		t.Fatalf("ADD of b into a full pool: %+v, want %s", apiErr, v1.CodePoolExhausted)
	}
	if _, apiErr := e.add(addArgs("auto", "uauto", "eth0")); apiErr == nil || apiErr.Code != v1.CodeConflict {
		t.Fatalf("ADD of a pod whose auto pool does not exist: %+v, want %s", apiErr, v1.CodeConflict)
	}
	if apiErr := e.del("default", "a", "ua", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	return e
}

// TestDescribeMetricsMatchesRegistry: the generated reference lists exactly the spiderpool_
// families a scrape shows, with their types, labels and help texts.
func TestDescribeMetricsMatchesRegistry(t *testing.T) {
	e := metricsTraffic(t)
	var gathered []*dto.MetricFamily
	for _, f := range gather(t, e.metrics) {
		gathered = append(gathered, f)
	}
	if diff := metricsinfo.Mismatch(DescribeMetrics(), gathered); diff != "" {
		t.Errorf("DescribeMetrics differs from the registry:\n%s", diff)
	}
}

// TestDebugMetricsSwitch: the families DescribeMetrics marks Debug are exported exactly when
// MetricsOptions.Debug is on, and the others always.
func TestDebugMetricsSwitch(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[debug], func(t *testing.T) {
			m := NewMetrics(MetricsOptions{Debug: debug})
			fams := gather(t, m)
			for _, f := range DescribeMetrics() {
				_, present := fams[f.Name]
				isPlain := f.Type == "counter" || (f.Type == "histogram" && len(f.Labels) == 0)
				switch {
				case f.Debug && present != debug:
					t.Errorf("debug family %s exported = %v with debug %v", f.Name, present, debug)
				case !f.Debug && isPlain && !present:
					// Families with labels or summary gauges appear with their first series.
					t.Errorf("family %s missing with debug %v", f.Name, debug)
				}
			}
		})
	}
}

// TestMetricsOutcomesAndLatencies checks the values the traffic of metricsTraffic must leave.
func TestMetricsOutcomesAndLatencies(t *testing.T) {
	e := metricsTraffic(t)
	fams := gather(t, e.metrics)
	for _, tc := range []struct {
		family, outcome string
		want            uint64
	}{
		{metricAllocationOutcomeDuration, outcomeSuccess, 1},
		{metricAllocationOutcomeDuration, outcomeIPUsedOut, 1},
		{metricAllocationOutcomeDuration, outcomeRetriesExhausted, 1},
		{metricAllocationOutcomeDuration, outcomeInternal, 0},
		{metricReleaseOutcomeDuration, outcomeSuccess, 1},
	} {
		if got := outcomeCount(fams, tc.family, tc.outcome); got != tc.want {
			t.Errorf("%s{outcome=%q} count = %d, want %d", tc.family, tc.outcome, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{metricAllocations, 3},
		{metricAllocationFailures, 2},
		{metricAllocErrUsedOut, 1},
		{metricAllocErrRetries, 1},
		{metricAutoPoolWaited, 1},
		{metricReleases, 1},
		{metricAllocationConflicts, 0},
		{metricReleaseConflicts, 0},
	} {
		if got := counterOf(fams, tc.name); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	// a's ADD and DEL and b's ADD (which found the pool full inside its update) made one pool
	// update each; the auto pool's ADD found no pool to update.
	for _, tc := range []struct {
		prefix string
		limit  bool
		count  uint64
	}{
		{"spiderpool_ipam_allocation", false, 3},
		{"spiderpool_ipam_allocation", true, 2},
		{"spiderpool_ipam_release", false, 1},
		{"spiderpool_ipam_release", true, 1},
	} {
		hist := tc.prefix + "_duration_seconds"
		if tc.limit {
			hist = tc.prefix + "_limit_duration_seconds"
		}
		if got := histogramCount(fams, hist); got != tc.count {
			t.Errorf("%s count = %d, want %d", hist, got, tc.count)
		}
		names := latencyNames(tc.prefix, tc.limit)
		avg, maxv, minv, latest := gaugeValue(fams, names[0]), gaugeValue(fams, names[1]), gaugeValue(fams, names[2]), gaugeValue(fams, names[3])
		if minv < 0 || minv > avg || avg > maxv || latest < minv || latest > maxv {
			t.Errorf("%s: average %v, max %v, min %v, latest %v: want 0 <= min <= average, latest <= max", hist, avg, maxv, minv, latest)
		}
		if tc.count == 1 && (avg != minv || avg != maxv || avg != latest) {
			t.Errorf("%s: one observation, yet average %v, max %v, min %v, latest %v differ", hist, avg, maxv, minv, latest)
		}
	}
}

// TestMetricsCountConflictsPerRequestKind: a pool write that loses a race is counted against the
// request whose update it carried, ADD or DEL, once per re-run of the update.
func TestMetricsCountConflictsPerRequestKind(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("a", "ua"), newPod("b", "ub")))
	e.store.SetMaxRetries(1000)
	e.store.SetConflictRate(0.8, 7)

	e.mustAdd(addArgs("a", "ua", "eth0"))
	e.mustAdd(addArgs("b", "ub", "eth0"))
	_, afterAdds := e.store.Stats()
	if apiErr := e.del("default", "a", "ua", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	_, afterDel := e.store.Stats()
	if afterAdds == 0 || afterDel == afterAdds {
		t.Fatalf("the store made %d conflicts during the ADDs and %d during the DEL: pick another seed", afterAdds, afterDel-afterAdds)
	}

	fams := gather(t, e.metrics)
	if got := counterOf(fams, metricAllocationConflicts); got != float64(afterAdds) {
		t.Errorf("%s = %v, want the %d conflicts of the ADDs", metricAllocationConflicts, got, afterAdds)
	}
	if got := counterOf(fams, metricReleaseConflicts); got != float64(afterDel-afterAdds) {
		t.Errorf("%s = %v, want the %d conflicts of the DEL", metricReleaseConflicts, got, afterDel-afterAdds)
	}
}

func outcomeCount(fams map[string]*dto.MetricFamily, name, outcome string) uint64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == labelOutcome && l.GetValue() == outcome {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func gaugeValue(fams map[string]*dto.MetricFamily, name string) float64 {
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return -1
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}
