package apiproxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		method, url string
		want        Request
	}{
		{"GET", "/api/v1/namespaces/ns/pods/p", Request{Verb: "get", Resource: "pods", Namespace: "ns", Name: "p"}},
		{"GET", "/api/v1/pods?watch=true", Request{Verb: "watch", Resource: "pods"}},
		{"GET", "/api/v1/namespaces/ns/pods?watch=1&sendInitialEvents=true", Request{Verb: "watch", Resource: "pods", Namespace: "ns", InitialEvents: true}},
		{"GET", "/apis/spiderpool.spidernet.io/v2beta1/spiderippools", Request{Verb: "list", Resource: "spiderippools"}},
		{"PUT", "/apis/spiderpool.spidernet.io/v2beta1/spiderippools/p1/status", Request{Verb: "update", Resource: "spiderippools", Name: "p1", Subresource: "status"}},
		{"POST", "/apis/spiderpool.spidernet.io/v2beta1/namespaces/ns/spiderendpoints", Request{Verb: "create", Resource: "spiderendpoints", Namespace: "ns"}},
		{"DELETE", "/apis/spiderpool.spidernet.io/v2beta1/namespaces/ns/spiderendpoints/e", Request{Verb: "delete", Resource: "spiderendpoints", Namespace: "ns", Name: "e"}},
		{"DELETE", "/api/v1/namespaces/ns/pods", Request{Verb: "deletecollection", Resource: "pods", Namespace: "ns"}},
		{"GET", "/api/v1/namespaces/kube-system", Request{Verb: "get", Resource: "namespaces", Name: "kube-system"}},
		{"PUT", "/api/v1/namespaces/x/status", Request{Verb: "update", Resource: "namespaces", Name: "x", Subresource: "status"}},
		{"PATCH", "/api/v1/nodes/n1/status", Request{Verb: "patch", Resource: "nodes", Name: "n1", Subresource: "status"}},
		{"GET", "/healthz", Request{Verb: "get"}},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.url, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.url, nil)
			c.want.Client = "a"
			if got := parseRequest("a", r); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// upstream is an apiserver stand-in for the proxy's own tests: it counts requests and streams a
// line per 50 ms on watches.
func upstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Query().Get("watch") == "true" {
			f := w.(http.Flusher)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "event %d\n", i); err != nil {
					return
				}
				f.Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func clientOf(t *testing.T, p *Proxy, name string) string {
	t.Helper()
	kc, err := p.Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Host
}

func TestFaults(t *testing.T) {
	srv, hits := upstream(t)
	p, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	host := clientOf(t, p, "agent-a")
	other := clientOf(t, p, "agent-b")
	put := func(base string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPut, base+"/apis/g/v1/things/x/status", strings.NewReader("{}"))
		return http.DefaultClient.Do(req)
	}

	// A lost response: the upstream got the write, the client an error.
	p.LoseResponses(On("agent-a", "update", "things", "status"), 1)
	before := hits.Load()
	if resp, err := put(host); err == nil {
		resp.Body.Close()
		t.Fatalf("lost response: got status %d, want a transport error", resp.StatusCode)
	}
	if hits.Load() != before+1 {
		t.Errorf("lost response: upstream saw %d requests, want 1", hits.Load()-before)
	}
	// Consumed: the next one passes.
	if resp, err := put(host); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the lost response: %v %v", resp, err)
	}

	// Fail aims at its client only.
	p.Fail(On("agent-a", "", "", "-"), 1, 500)
	if resp, err := put(other); err != nil || resp.StatusCode != 200 {
		t.Fatalf("other client: %v %v", resp, err)
	}
	before = hits.Load()
	resp, err := put(host)
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("injected failure: %v %v", resp, err)
	}
	if hits.Load() != before {
		t.Errorf("an injected failure reached the upstream")
	}

	// A held request waits for its release.
	held := p.HoldNext(On("agent-a", "update", "", "-"), 1)
	done := make(chan int, 1)
	go func() {
		resp, err := put(host)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	h := <-held
	select {
	case <-done:
		t.Fatal("a held request was answered before its release")
	case <-time.After(100 * time.Millisecond):
	}
	h.Release(true)
	if code := <-done; code != 200 {
		t.Errorf("released request: %d", code)
	}

	// A delayed watch delivers its first event no sooner than the lag; a cut ends it.
	p.DelayWatches(On("agent-a", "watch", "", "-"), 400*time.Millisecond)
	start := time.Now()
	wr, err := http.Get(host + "/api/v1/pods?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Body.Close()
	line, err := bufio.NewReader(wr.Body).ReadString('\n')
	if err != nil || line != "event 0\n" {
		t.Fatalf("watch: %q %v", line, err)
	}
	if lag := time.Since(start); lag < 400*time.Millisecond {
		t.Errorf("first event after %v, want at least the 400ms lag", lag)
	}
	if n := p.CutWatches(On("agent-a", "watch", "", "-")); n != 1 {
		t.Errorf("cut %d watches, want 1", n)
	}
	if _, err := io.Copy(io.Discard, wr.Body); err != nil {
		t.Logf("cut watch ended with %v", err)
	}
	got := p.Injected()
	for _, k := range []string{"lose", "fail", "hold", "delay", "cut-watch"} {
		if got[k] != 1 {
			t.Errorf("Injected()[%q] = %d, want 1 (%v)", k, got[k], got)
		}
	}
}
