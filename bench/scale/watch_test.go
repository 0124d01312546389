package main

import (
	"net/netip"
	"testing"
)

// The lines are kube-apiserver 1.37's, as scraped from the test control plane.
const sampleMetrics = `# HELP apiserver_watch_events_sizes [BETA] Watch event size distribution in bytes
# TYPE apiserver_watch_events_sizes histogram
apiserver_watch_events_sizes_bucket{group="internal.spiderpool-go.io",resource="spideripblocks",version="v1alpha1",le="+Inf"} 14
apiserver_watch_events_sizes_sum{group="internal.spiderpool-go.io",resource="spideripblocks",version="v1alpha1"} 19059
apiserver_watch_events_sizes_count{group="internal.spiderpool-go.io",resource="spideripblocks",version="v1alpha1"} 14
apiserver_watch_events_sizes_sum{group="spiderpool.spidernet.io",resource="spiderippools",version="v2beta1"} 965
# TYPE apiserver_watch_events_total counter
apiserver_watch_events_total{group="internal.spiderpool-go.io",resource="spideripblocks",version="v1alpha1"} 14
apiserver_watch_events_total{group="spiderpool.spidernet.io",resource="spiderippools",version="v2beta1"} 2
apiserver_longrunning_requests{component="apiserver",group="internal.spiderpool-go.io",resource="spideripblocks",scope="cluster",subresource="",verb="WATCH",version="v1alpha1"} 2
apiserver_longrunning_requests{component="apiserver",group="spiderpool.spidernet.io",resource="spiderippools",scope="cluster",subresource="",verb="WATCH",version="v2beta1"} 1
`

func TestTraffic(t *testing.T) {
	for _, tc := range []struct {
		resource string
		want     watchTraffic
	}{
		{blocksRes, watchTraffic{events: 14, bytes: 19059}},
		{poolsRes, watchTraffic{events: 2, bytes: 965}},
		{"spiderendpoints", watchTraffic{}},
	} {
		if got := traffic(sampleMetrics, tc.resource); got != tc.want {
			t.Errorf("traffic(%s) = %+v, want %+v", tc.resource, got, tc.want)
		}
	}
	if got := watchesServed(sampleMetrics, blocksRes); got != 2 {
		t.Errorf("watches of %s = %v, want 2", blocksRes, got)
	}
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		size          int
		subnet, first string
	}{
		{65536, "10.128.0.0/15", "10.128.128.0"},
		{4096, "10.128.0.0/19", "10.128.8.0"},
		{1024, "10.128.0.0/21", "10.128.2.0"},
		{800, "10.128.0.0/21", "10.128.2.0"},
		{32, "10.128.0.0/25", "10.128.0.32"},
	} {
		subnet, first := poolSpec{base: netip.MustParseAddr("10.128.0.0"), size: tc.size}.place()
		if subnet.String() != tc.subnet || first.String() != tc.first {
			t.Errorf("place(%d) = %s, %s; want %s, %s", tc.size, subnet, first, tc.subnet, tc.first)
		}
	}
}
