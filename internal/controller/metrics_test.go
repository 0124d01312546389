package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// metricsObjects are two pools, one with records, and a subnet controlling one of them.
func metricsObjects() []client.Object {
	used := build.Pool("used", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.19"),
		build.Allocated("10.6.0.10", "ns/a", "ua"), build.Allocated("10.6.0.11", "ns/b", "ub"))
	empty := build.Pool("empty", "fd00::/64", build.IPs("fd00::10-fd00::13"), build.ExcludeIPs("fd00::13"))
	subnet := build.Subnet("net", "10.6.0.0/16", build.NoVersion(), build.IPs("10.6.0.1-10.6.0.100"),
		build.Controlled("used", "10.6.0.10-10.6.0.19"),
		build.With(func(s *v2beta1.SpiderSubnet) { s.Status.TotalIPCount = new(int64(100)) }))
	// Not reconciled yet: only the pool count is known.
	fresh := build.Subnet("fresh", "10.7.0.0/16", build.NoVersion(), build.IPs("10.7.0.1"))
	return []client.Object{used, empty, subnet, fresh}
}

// gatherController registers what Run registers, over a fake cache holding metricsObjects, in a
// registry of its own, and gathers it.
func gatherController(t *testing.T, debug bool) map[string]*dto.MetricFamily {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(metricsObjects()...).Build()
	reg := prometheus.NewRegistry()
	unregister, err := RegisterMetrics(reg, c, MetricsOptions{Debug: debug})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unregister)
	// The GC registers its counters in controller-runtime's registry (RegisterMetrics made their
	// series).
	reg.MustRegister(gcCounts, gcFailureCounts)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// TestDescribeMetricsMatchesRegistry: the generated reference lists exactly the spiderpool_
// families a scrape shows with debug metrics on, with their types, labels and help texts.
func TestDescribeMetricsMatchesRegistry(t *testing.T) {
	var gathered []*dto.MetricFamily
	for _, f := range gatherController(t, true) {
		gathered = append(gathered, f)
	}
	if diff := metricsinfo.Mismatch(DescribeMetrics(), gathered); diff != "" {
		t.Errorf("DescribeMetrics differs from the registry:\n%s", diff)
	}
}

// TestControllerDebugMetricsSwitch: the families DescribeMetrics marks Debug are exported exactly
// when MetricsOptions.Debug is on, and the others always.
func TestControllerDebugMetricsSwitch(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[debug], func(t *testing.T) {
			fams := gatherController(t, debug)
			for _, f := range DescribeMetrics() {
				if _, present := fams[f.Name]; present != (debug || !f.Debug) {
					t.Errorf("%s (debug family: %v) exported = %v with debug %v", f.Name, f.Debug, present, debug)
				}
			}
		})
	}
}

// TestControllerInventoryValues checks each gauge against metricsObjects.
func TestControllerInventoryValues(t *testing.T) {
	fams := gatherController(t, true)
	for _, tc := range []struct {
		family, label, value string // label "" for an unlabelled family
		want                 float64
	}{
		{metricTotalIPPools, "", "", 2},
		{metricTotalSubnets, "", "", 2},
		{metricDebugIPPoolTotalIPs, labelPool, "used", 10},
		{metricDebugIPPoolAvailable, labelPool, "used", 8},
		{metricDebugIPPoolTotalIPs, labelPool, "empty", 3},
		{metricDebugIPPoolAvailable, labelPool, "empty", 3},
		{metricDebugSubnetIPPools, labelSubnet, "net", 1},
		{metricDebugSubnetTotalIPs, labelSubnet, "net", 100},
		{metricDebugSubnetAvailableIP, labelSubnet, "net", 90},
		{metricDebugSubnetIPPools, labelSubnet, "fresh", 0},
	} {
		got, ok := gaugeWithLabel(fams[tc.family], tc.label, tc.value)
		if !ok || got != tc.want {
			t.Errorf("%s{%s=%q} = %v (present %v), want %v", tc.family, tc.label, tc.value, got, ok, tc.want)
		}
	}
	// A subnet whose status is not computed yet has no size to report.
	for _, family := range []string{metricDebugSubnetTotalIPs, metricDebugSubnetAvailableIP} {
		if v, ok := gaugeWithLabel(fams[family], labelSubnet, "fresh"); ok {
			t.Errorf("%s{subnet=fresh} = %v before its status is computed", family, v)
		}
	}
}

func gaugeWithLabel(f *dto.MetricFamily, label, value string) (float64, bool) {
	for _, m := range f.GetMetric() {
		if label == "" {
			return m.GetGauge().GetValue(), true
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
