package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

func TestHTTPError(t *testing.T) {
	gr := v2beta1.Resource("spiderendpoints")
	tests := []struct {
		name   string
		err    error
		status int
		code   v1.Code
	}{
		{"validation", (&v1.IpamAddArgs{}).Validate(), 400, v1.CodeInvalidRequest},
		{"invalid request", &reasonError{ErrInvalidRequest, "x"}, 400, v1.CodeInvalidRequest},
		{"invalid annotation", fmt.Errorf("%w ipam.spidernet.io/ippool: bad", ipam.ErrInvalidAnnotation), 400, v1.CodeInvalidRequest},
		{"feature disabled", fmt.Errorf("subnet: %w", ipam.ErrFeatureDisabled), 400, v1.CodeInvalidRequest},
		{"auto pool not created yet", fmt.Errorf("eth0: %w", ipam.ErrAutoPoolNotReady), 409, v1.CodeConflict},
		{"pod not found", &reasonError{ErrNotFound, "pod default/x not found"}, 404, v1.CodeNotFound},
		{"API not found", fmt.Errorf("get node: %w", apierrors.NewNotFound(gr, "x")), 404, v1.CodeNotFound},
		{"dead pod", &reasonError{ErrDeadPod, "dead Pod default/x, we cannot allocate IP addresees to it"}, 410, v1.CodeDeadPod},
		{"no candidate", &ipam.FilterError{Version: 4, NIC: "eth0", Pools: []string{"p"}}, 500, v1.CodeNoCandidatePool},
		{"pool not found", fmt.Errorf("IPv4 IPPools of NIC eth0: %w", ipam.ErrPoolNotFound), 500, v1.CodeNoCandidatePool},
		{"exhausted", &ipam.AllocationError{Version: 4, NIC: "eth0", Pools: []string{"p"},
			Errs: []ipam.PoolError{{Pool: "p", Err: ipam.ErrPoolExhausted}}}, 500, v1.CodePoolExhausted},
		{"store conflict", &ipam.AllocationError{Version: 4, NIC: "eth0", Pools: []string{"p"},
			Errs: []ipam.PoolError{{Pool: "p", Err: ipam.ErrConflict}}}, 409, v1.CodeConflict},
		{"exhausted and conflict", &ipam.AllocationError{Version: 4, NIC: "eth0", Pools: []string{"p", "q"},
			Errs: []ipam.PoolError{{Pool: "p", Err: ipam.ErrPoolExhausted}, {Pool: "q", Err: ipam.ErrConflict}}}, 409, v1.CodeConflict},
		{"deadline", fmt.Errorf("allocate: %w", context.DeadlineExceeded), 409, v1.CodeConflict},
		{"API conflict", apierrors.NewConflict(gr, "x", errors.New("changed")), 409, v1.CodeConflict},
		{"not ready", &reasonError{ErrNotReady, "SpiderCoordinator default not found"}, 503, v1.CodeNotReady},
		{"forbidden", &reasonError{ErrForbidden, "no"}, 522, v1.CodeForbidden},
		{"dual stack: filter beats exhaustion", errors.Join(
			&ipam.FilterError{Version: 4, NIC: "eth0"},
			&ipam.AllocationError{Version: 6, NIC: "eth0", Errs: []ipam.PoolError{{Pool: "p6", Err: ipam.ErrPoolExhausted}}}), 500, v1.CodeNoCandidatePool},
		{"other", errors.New("boom"), 500, v1.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, apiErr := httpError(tt.err)
			if status != tt.status || apiErr.Code != tt.code {
				t.Errorf("httpError(%v) = %d %s, want %d %s", tt.err, status, apiErr.Code, tt.status, tt.code)
			}
			if apiErr.Message == "" || strings.HasPrefix(apiErr.Message, string(apiErr.Code)+": ") {
				t.Errorf("message %q", apiErr.Message)
			}
			if !errors.Is(apiErr, &v1.Error{Code: tt.code}) {
				t.Errorf("answer does not match its code")
			}
		})
	}
}

func TestMetricsCount(t *testing.T) {
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10"))
	e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool}, baseObjects(newPod("a", "ua"), newPod("b", "ub")))
	e.mustAdd(addArgs("a", "ua", "eth0"))
	if _, apiErr := e.add(addArgs("b", "ub", "eth0")); apiErr == nil || apiErr.Code != v1.CodePoolExhausted {
		t.Fatalf("second pod: %+v", apiErr)
	}
	if apiErr := e.del("default", "b", "ub", "eth0"); apiErr != nil {
		t.Fatal(apiErr)
	}
	e.metrics.ObserveCommit("p", 3, 0)
	e.metrics.ObserveConflict("p")

	// Pool gauges are read at scrape time: one record before a's DEL.
	families := gather(t, e.metrics)
	if got := gaugeOf(families, metricPoolAllocatedIPs, "p"); got != 1 {
		t.Errorf("%s{pool=p} = %v, want 1", metricPoolAllocatedIPs, got)
	}
	if got := gaugeOf(families, metricPoolTotalIPs, "p"); got != 1 {
		t.Errorf("%s{pool=p} = %v, want 1", metricPoolTotalIPs, got)
	}
	want := map[string]float64{
		metricAllocations:         2,
		metricAllocationFailures:  1,
		metricAllocErrUsedOut:     1,
		metricAllocErrNoPool:      0,
		metricAllocErrInternal:    0,
		metricCommitConflicts:     1,
		metricAllocationConflicts: 0, // no update of a request lost a race; see metrics_test.go
		metricReleases:            1,
		metricReleaseFailures:     0,
	}
	for name, v := range want {
		if got := counterOf(families, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	for name, n := range map[string]uint64{metricAllocationDuration: 2, metricReleaseDuration: 1, metricCommitBatchSize: 1} {
		if got := histogramCount(families, name); got != n {
			t.Errorf("%s count = %d, want %d", name, got, n)
		}
	}

	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `spiderpool_ipam_pool_allocated_ip_counts{pool="p"} 1`) {
		t.Errorf("exposition lacks the pool gauge:\n%s", rec.Body.String())
	}
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func counterOf(fams map[string]*dto.MetricFamily, name string) float64 {
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return -1
	}
	return f.GetMetric()[0].GetCounter().GetValue()
}

func histogramCount(fams map[string]*dto.MetricFamily, name string) uint64 {
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0
	}
	return f.GetMetric()[0].GetHistogram().GetSampleCount()
}

func gaugeOf(fams map[string]*dto.MetricFamily, name, pool string) float64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == labelPool && l.GetValue() == pool {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestProbes(t *testing.T) {
	e := newEnv(t, testConfig(), nil, baseObjects(), notReady())
	health := httptest.NewServer(e.srv.HealthHandler())
	defer health.Close()
	get := func(path string) int {
		resp, err := http.Get(health.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		path              string
		before, afterSync int
	}{
		{v1.PathRuntimeLiveness, 200, 200},
		{v1.PathRuntimeStartup, 503, 200},
		{v1.PathRuntimeReadiness, 503, 200},
		{v1.PathIPAMHealthy, 503, 200},
	}
	for _, tt := range tests {
		if got := get(tt.path); got != tt.before {
			t.Errorf("TCP %s before sync: %d, want %d", tt.path, got, tt.before)
		}
		if got, _ := e.do(http.MethodGet, tt.path, nil, nil); got != tt.before {
			t.Errorf("socket %s before sync: %d, want %d", tt.path, got, tt.before)
		}
	}
	e.srv.SetReady()
	for _, tt := range tests {
		if got := get(tt.path); got != tt.afterSync {
			t.Errorf("TCP %s after sync: %d, want %d", tt.path, got, tt.afterSync)
		}
	}
	if got := get(v1.PathIPAMIP); got != http.StatusNotFound {
		t.Errorf("the health port serves %s: %d", v1.PathIPAMIP, got)
	}
}

func TestListenUnixMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "spidernet", "spiderpool.sock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stale socket file from a previous run is replaced.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
}

func TestKeyedMutexCancel(t *testing.T) {
	var k keyedMutex
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("second lock: %v", err)
	}
	other, err := k.lock(ctx, "b")
	if err != nil {
		t.Fatalf("another key must not wait: %v", err)
	}
	other()
	unlock()
	again, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(k.locks) != 0 {
		t.Errorf("%d lock entries left", len(k.locks))
	}
}
