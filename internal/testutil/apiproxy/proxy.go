// Package apiproxy is a fault-injecting HTTP proxy in front of a kube-apiserver, for the fault
// suite (test/faults). Each component under test gets its own listener and kubeconfig, so a fault
// can aim at one agent or one controller replica. The proxy forwards with the upstream's admin
// credentials; on its side it listens on loopback only, in plain HTTP.
//
// Faults it injects, each counted:
//   - a request forwarded whose response never reaches the client (the connection is cut after the
//     apiserver has answered): a write that landed but whose caller cannot know it;
//   - a request held before it is forwarded, until the test releases or drops it (to kill the
//     caller at that exact point);
//   - a request answered with an error status without reaching the apiserver;
//   - watch streams delayed by a fixed lag (an informer seconds behind), cut (a re-watch), or
//     answered "410 Expired" as after an etcd compaction (a relist).
//
// It is a test kit: nothing in the product imports it.
package apiproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Request is what a fault matches on: the caller's listener and the API request.
type Request struct {
	// Client names the listener the request came through (Proxy.Listen).
	Client string
	// Verb is get, list, watch, create, update, patch, delete or deletecollection.
	Verb string
	// Resource is the plural resource ("spiderippools", "pods"), Subresource e.g. "status".
	Resource, Subresource string
	Namespace, Name       string
	// InitialEvents is a watch that starts with the current state (sendInitialEvents=true): the
	// streaming form of a list, which informers use to (re)list.
	InitialEvents bool
}

func (r Request) String() string {
	s := r.Client + " " + r.Verb + " " + r.Resource
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	if r.Namespace != "" {
		s += " " + r.Namespace + "/" + r.Name
	} else if r.Name != "" {
		s += " " + r.Name
	}
	return s
}

// Match selects requests.
type Match func(Request) bool

// On matches requests of client (any when "") with verb and resource (any when "") and, when
// sub is not "-", that subresource ("" for the object itself).
func On(client, verb, resource, sub string) Match {
	return func(r Request) bool {
		return (client == "" || r.Client == client) && (verb == "" || r.Verb == verb) &&
			(resource == "" || r.Resource == resource) && (sub == "-" || r.Subresource == sub)
	}
}

// parseRequest reads the verb, resource and names from an API path.
func parseRequest(client string, r *http.Request) Request {
	req := Request{Client: client}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		req.Verb = strings.ToLower(r.Method)
		return req
	}
	// namespaces/x/status and namespaces/x/finalize are subresources of namespace x; any other
	// namespaces/x/... is a resource in namespace x.
	if len(segs) >= 3 && segs[0] == "namespaces" && !(len(segs) == 3 && (segs[2] == "status" || segs[2] == "finalize")) {
		req.Namespace, segs = segs[1], segs[2:]
	}
	if len(segs) > 0 {
		req.Resource = segs[0]
	}
	if len(segs) > 1 {
		req.Name = segs[1]
	}
	if len(segs) > 2 {
		req.Subresource = strings.Join(segs[2:], "/")
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case req.Name != "":
			req.Verb = "get"
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			req.Verb = "watch"
			req.InitialEvents = r.URL.Query().Get("sendInitialEvents") == "true"
		default:
			req.Verb = "list"
		}
	case http.MethodPost:
		req.Verb = "create"
	case http.MethodPut:
		req.Verb = "update"
	case http.MethodPatch:
		req.Verb = "patch"
	case http.MethodDelete:
		req.Verb = "delete"
		if req.Name == "" {
			req.Verb = "deletecollection"
		}
	default:
		req.Verb = strings.ToLower(r.Method)
	}
	return req
}

// Held is a request stopped before it was forwarded.
type Held struct {
	Request Request
	release chan bool
}

// Release lets the held request go on: forward true sends it to the apiserver (if its caller is
// still waiting: a request whose caller has died is dropped, as a real connection's would be),
// false answers 503 without forwarding. Calling it twice is a no-op.
func (h *Held) Release(forward bool) {
	select {
	case h.release <- forward:
	default:
	}
}

type rule struct {
	match Match
	left  int           // how many more requests it applies to; <0 means until removed
	kind  string        // "lose", "hold", "fail", "delay"
	code  int           // fail: status code
	held  chan *Held    // hold: where held requests are announced
	delay time.Duration // delay: watch lag
}

// Proxy forwards API requests to one apiserver, injecting the faults set on it.
type Proxy struct {
	upstream  *url.URL
	transport http.RoundTripper

	mu      sync.Mutex
	rules   []*rule
	watches map[*watch]struct{}
	counts  map[string]int // fault kind → times injected
	seen    []Request      // every request forwarded, when recording
	record  bool
	servers []*http.Server
	closed  bool
}

type watch struct {
	req    Request
	cancel context.CancelFunc
}

// New returns a proxy to the apiserver cfg reaches, using cfg's credentials.
func New(cfg *rest.Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("apiproxy: upstream host %q: %v", cfg.Host, err)
	}
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("apiproxy: upstream transport: %w", err)
	}
	return &Proxy{upstream: u, transport: tr, watches: map[*watch]struct{}{}, counts: map[string]int{}}, nil
}

// Listen serves client on a new loopback port and returns a kubeconfig for it.
func (p *Proxy) Listen(client string) ([]byte, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("apiproxy: listen for %s: %w", client, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(client, w, r) })}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return nil, errors.New("apiproxy: closed")
	}
	p.servers = append(p.servers, srv)
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()

	kc := clientcmdapi.NewConfig()
	kc.Clusters["proxy"] = &clientcmdapi.Cluster{Server: "http://" + ln.Addr().String()}
	kc.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy"}
	kc.CurrentContext = "proxy"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("apiproxy: kubeconfig for %s: %w", client, err)
	}
	return data, nil
}

// Close stops every listener and cuts open watches.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	servers := p.servers
	p.servers = nil
	for w := range p.watches {
		w.cancel()
	}
	p.mu.Unlock()
	for _, s := range servers {
		_ = s.Close()
	}
}

func (p *Proxy) add(r *rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

// LoseResponses makes the next n matching requests reach the apiserver and their answers get lost:
// the client's connection is cut once the apiserver has replied.
func (p *Proxy) LoseResponses(m Match, n int) { p.add(&rule{match: m, left: n, kind: "lose"}) }

// ExpireWatches answers the next n matching watches with the event the apiserver sends when the
// requested resource version has been compacted away (ERROR, 410 Expired): the client must relist.
func (p *Proxy) ExpireWatches(m Match, n int) { p.add(&rule{match: m, left: n, kind: "expire"}) }

// Fail answers the next n matching requests (every one while n < 0, until ClearAll) with code and
// a Status body, without forwarding them. Watches included: an unreachable apiserver for them.
func (p *Proxy) Fail(m Match, n, code int) { p.add(&rule{match: m, left: n, kind: "fail", code: code}) }

// HoldNext holds the next n matching requests; each is announced on the returned channel (buffered
// for n) and waits for its Release, or for its caller to go away.
func (p *Proxy) HoldNext(m Match, n int) <-chan *Held {
	ch := make(chan *Held, n)
	p.add(&rule{match: m, left: n, kind: "hold", held: ch})
	return ch
}

// DelayWatches delays every byte of matching watch streams opened from now on by d, until
// ClearDelays. Streams already open keep their pace: cut them (CutWatches) to apply the lag at once.
func (p *Proxy) DelayWatches(m Match, d time.Duration) {
	p.add(&rule{match: m, left: -1, kind: "delay", delay: d})
}

// ClearDelays removes every watch delay; lagging streams stay lagged until they are re-opened.
func (p *Proxy) ClearDelays() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = deleteKind(p.rules, "delay")
}

// ClearAll removes every pending fault.
func (p *Proxy) ClearAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

func deleteKind(rules []*rule, kind string) []*rule {
	out := rules[:0]
	for _, r := range rules {
		if r.kind != kind {
			out = append(out, r)
		}
	}
	return out
}

// CutWatches ends every open matching watch stream (the client re-watches) and returns how many.
func (p *Proxy) CutWatches(m Match) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for w := range p.watches {
		if m(w.req) {
			w.cancel()
			delete(p.watches, w)
			n++
		}
	}
	p.counts["cut-watch"] += n
	return n
}

// OpenWatches returns how many matching watch streams are open.
func (p *Proxy) OpenWatches(m Match) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for w := range p.watches {
		if m(w.req) {
			n++
		}
	}
	return n
}

// Injected returns how many times each fault kind (lose, fail, hold, delay, expire, cut-watch) was
// applied.
func (p *Proxy) Injected() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Record starts (or stops) keeping every request forwarded; Seen returns those matching m.
func (p *Proxy) Record(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record, p.seen = on, nil
}

// Seen returns how many recorded requests match m.
func (p *Proxy) Seen(m Match) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.seen {
		if m(r) {
			n++
		}
	}
	return n
}

// pick returns the first rule matching req of one of kinds, consuming one of its uses.
func (p *Proxy) pick(req Request, kinds ...string) *rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r.left == 0 || !r.match(req) {
			continue
		}
		ok := false
		for _, k := range kinds {
			ok = ok || r.kind == k
		}
		if !ok {
			continue
		}
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		p.counts[r.kind]++
		return r
	}
	return nil
}

func (p *Proxy) serve(client string, w http.ResponseWriter, r *http.Request) {
	req := parseRequest(client, r)
	ctx := r.Context()
	lose := false
	if req.Verb == "watch" {
		if rl := p.pick(req, "fail", "expire"); rl != nil {
			if rl.kind == "expire" {
				// What the apiserver streams to a watch from a compacted resource version.
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				fmt.Fprintln(w, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version (injected by apiproxy)","reason":"Expired","code":410}}`)
				return
			}
			writeStatus(w, rl.code, fmt.Sprintf("apiproxy: injected %d for %s", rl.code, req))
			return
		}
	} else {
		if rl := p.pick(req, "hold", "fail", "lose"); rl != nil {
			switch rl.kind {
			case "fail":
				writeStatus(w, rl.code, fmt.Sprintf("apiproxy: injected %d for %s", rl.code, req))
				return
			case "hold":
				h := &Held{Request: req, release: make(chan bool, 1)}
				rl.held <- h
				select {
				case forward := <-h.release:
					if !forward {
						writeStatus(w, http.StatusServiceUnavailable, "apiproxy: held request dropped")
						return
					}
				case <-ctx.Done():
					// The caller is gone (killed while held): the request never reaches the
					// apiserver, as with a connection closed before it was sent.
					return
				}
			case "lose":
				lose = true
			}
		}
	}
	p.mu.Lock()
	if p.record {
		p.seen = append(p.seen, req)
	}
	p.mu.Unlock()

	var delay time.Duration
	upCtx := context.WithoutCancel(ctx) // a write forwarded completes even if its caller dies meanwhile
	cancel := func() {}
	if req.Verb == "watch" {
		upCtx, cancel = context.WithCancel(ctx)
		wt := &watch{req: req, cancel: cancel}
		p.mu.Lock()
		p.watches[wt] = struct{}{}
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.watches, wt)
			p.mu.Unlock()
		}()
		if rl := p.pick(req, "delay"); rl != nil {
			delay = rl.delay
		}
	}
	defer cancel()

	out := r.Clone(upCtx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.Host = p.upstream.Host
	out.Header.Del("Authorization")
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		if ctx.Err() == nil {
			writeStatus(w, http.StatusBadGateway, fmt.Sprintf("apiproxy: upstream: %v", err))
		}
		return
	}
	defer resp.Body.Close()
	if lose {
		// The apiserver has answered; read it all so the write is complete, then cut the
		// client's connection without a byte of the answer.
		_, _ = io.Copy(io.Discard, resp.Body)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if req.Verb != "watch" {
		_, _ = io.Copy(w, resp.Body)
		return
	}
	streamWatch(upCtx, w, resp.Body, delay)
}

// streamWatch copies a watch stream, flushing each chunk, every chunk held back by delay.
func streamWatch(ctx context.Context, w http.ResponseWriter, body io.Reader, delay time.Duration) {
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	type chunk struct {
		at   time.Time
		data []byte
	}
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := body.Read(buf)
			if n > 0 {
				select {
				case chunks <- chunk{at: time.Now().Add(delay), data: buf[:n]}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		if d := time.Until(c.at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		if _, err := w.Write(c.data); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	reason := "InternalError"
	switch code {
	case http.StatusServiceUnavailable:
		reason = "ServiceUnavailable"
	case http.StatusTooManyRequests:
		reason = "TooManyRequests"
	case http.StatusConflict:
		reason = "Conflict"
	}
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}
