package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tt := range tests {
		if got := l.percentile(tt.p); got != tt.want {
			t.Errorf("p%.0f = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := (latencies{}).percentile(50); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
}

func TestParseWriteCounts(t *testing.T) {
	m := `# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",dry_run="",group="spiderpool.spidernet.io",resource="spiderippools",scope="resource",subresource="status",verb="PUT",version="v2beta1"} 46
apiserver_request_total{code="409",component="apiserver",dry_run="",group="spiderpool.spidernet.io",resource="spiderippools",scope="resource",subresource="status",verb="PUT",version="v2beta1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="spiderpool.spidernet.io",resource="spiderippools",scope="resource",subresource="",verb="GET",version="v2beta1"} 99
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1000
`
	got := parseWriteCounts(m, "spiderippools", "status")
	if got.ok != 46 || got.conflict != 3 {
		t.Errorf("parseWriteCounts = %+v, want ok=46 conflict=3", got)
	}
}
