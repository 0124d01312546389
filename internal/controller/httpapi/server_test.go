package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

type countingTrigger struct{ n int }

func (c *countingTrigger) TriggerFullScan() { c.n++ }

func closed() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	return doFrom(t, h, "127.0.0.1:40000", method, path)
}

// doFrom is do from remote address from (httptest's default is 192.0.2.1:1234).
func doFrom(t *testing.T, h http.Handler, from, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = from
	h.ServeHTTP(rec, req)
	return rec
}

// TestAPIOnlyFromLoopback is part of defect 7 of the fault issue: with host networking the
// controller's port is open on the node's network, and anyone there could trigger GC scans or read
// the summary. Only loopback (kubectl port-forward) may; the probes answer everyone.
func TestAPIOnlyFromLoopback(t *testing.T) {
	trig := &countingTrigger{}
	h := Handler(Options{GC: trig})
	for _, tc := range []struct {
		from, method, path string
		want               int
	}{
		{"10.6.0.20:51000", http.MethodPost, PathGC, 403},
		{"[fd00::20]:51000", http.MethodGet, PathStatus, 403},
		{"10.6.0.20:51000", http.MethodPut, PathIP, 403},
		{"10.6.0.20:51000", http.MethodGet, PathReady, 200},
		{"10.6.0.20:51000", http.MethodGet, "/v1/runtime/liveness", 200},
		{"[::1]:51000", http.MethodPost, PathGC, 200},
		{"127.0.0.1:51000", http.MethodPost, PathGC, 200},
	} {
		rec := doFrom(t, h, tc.from, tc.method, tc.path)
		if rec.Code != tc.want {
			t.Errorf("%s %s from %s: %d, want %d (%s)", tc.method, tc.path, tc.from, rec.Code, tc.want, rec.Body)
		}
		if tc.want == 403 && !strings.Contains(rec.Body.String(), "port-forward") {
			t.Errorf("refusal %q does not say how to reach the API", rec.Body)
		}
	}
	if trig.n != 2 {
		t.Errorf("%d GC triggers, want 2 (the loopback ones)", trig.n)
	}
}

func TestGCTrigger(t *testing.T) {
	tests := []struct {
		name        string
		gc          bool
		elected     <-chan struct{}
		method      string
		wantCode    int
		wantTrigger int
		wantBody    string
	}{
		{name: "leader", gc: true, elected: closed(), method: http.MethodPost, wantCode: 200, wantTrigger: 1, wantBody: `"triggered":true`},
		{name: "no leader election", gc: true, method: http.MethodPost, wantCode: 200, wantTrigger: 1, wantBody: "full IP GC scan triggered"},
		{name: "follower", gc: true, elected: make(chan struct{}), method: http.MethodPost, wantCode: 503, wantBody: "not the leader"},
		{name: "gc disabled", elected: closed(), method: http.MethodPost, wantCode: 409, wantBody: "ipam.gc.enabled=false"},
		{name: "GET is not a trigger", gc: true, method: http.MethodGet, wantCode: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trig := &countingTrigger{}
			opts := Options{Elected: tc.elected}
			if tc.gc {
				opts.GC = trig
			}
			rec := do(t, Handler(opts), tc.method, PathGC)
			if rec.Code != tc.wantCode {
				t.Errorf("code = %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			if trig.n != tc.wantTrigger {
				t.Errorf("triggers = %d, want %d", trig.n, tc.wantTrigger)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not contain %q", rec.Body, tc.wantBody)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v2beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: v2beta1.IPPoolStatus{TotalIPCount: ptr.To[int64](10), AllocatedIPCount: ptr.To[int64](3)}},
		&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: v2beta1.IPPoolStatus{TotalIPCount: ptr.To[int64](5)}},
		&v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}},
	).Build()
	rec := do(t, Handler(Options{Reader: c, GC: &countingTrigger{}, Elected: make(chan struct{})}), http.MethodGet, PathStatus)
	if rec.Code != 200 {
		t.Fatalf("code = %d: %s", rec.Code, rec.Body)
	}
	var got Status
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := Status{Leader: false, GCEnabled: true, Pools: 2, TotalIPs: 15, AllocatedIPs: 3, Endpoints: 1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
}

func TestProbes(t *testing.T) {
	failing := func(*http.Request) error { return errors.New("not yet") }
	h := Handler(Options{
		Liveness:  map[string]healthz.Checker{"ping": healthz.Ping},
		Readiness: map[string]healthz.Checker{"ping": healthz.Ping, "webhook": failing},
	})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/healthz", 200}, {"/healthz/ping", 200}, {"/readyz", 500}, {"/readyz/ping", 200}, {"/readyz/webhook", 500},
		{"/v1/runtime/liveness", 200}, {"/v1/runtime/readiness", 500}, {"/v1/runtime/startup", 500}, {"/v1/runtime/nothing", 404},
	} {
		if got := do(t, h, http.MethodGet, tc.path).Code; got != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.path, got, tc.want)
		}
	}
}

// PUT /v1/ipam/ip refuses what it cannot decode before touching the cluster; its behaviour against
// a cluster is tested against a real apiserver (test/integration TestControllerAPISetIP).
func TestSetIPRequestChecks(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v2beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	withClient := Handler(Options{Live: fake.NewClientBuilder().WithScheme(scheme).Build()})
	for _, tc := range []struct {
		name     string
		h        http.Handler
		body     string
		want     int
		wantBody string
	}{
		{"no API client", Handler(Options{}), `{}`, 501, "needs an API client"},
		{"not JSON", withClient, `ip=10.6.0.5`, 400, "request body: invalid character"},
		{"two objects", withClient, `{"ip":"10.6.0.5"} {}`, 400, "trailing data"},
		{"unknown field", withClient, `{"ip":"10.6.0.5","pod":"x"}`, 400, `unknown field \"pod\"`},
		{"too large", withClient, `{"ip":"` + strings.Repeat("1", maxSetIPBody) + `"}`, 400, "request body too large"},
		{"bad ip", withClient, `{"ip":"10.6.0.5/24","podNamespace":"a","podName":"b"}`, 400, `"field":"ip"`},
		{"GET is not a set", withClient, ``, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if tc.want == 405 {
				method = http.MethodGet
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, PathIP, strings.NewReader(tc.body))
			req.RemoteAddr = "127.0.0.1:40000"
			tc.h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("%d %s, want %d containing %q", rec.Code, rec.Body, tc.want, tc.wantBody)
			}
		})
	}
}
