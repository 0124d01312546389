package clienttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
)

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
}

// Decode unmarshals the request body into v and fails the test on error.
func (r Request) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode body of %s %s: %v (body %q)", r.Method, r.Path, err, r.Body)
	}
}

// Reply is a canned answer. Raw, when set, is sent verbatim instead of Body's JSON.
type Reply struct {
	Status int
	Body   any
	Raw    []byte
}

// OK answers 200 with body as JSON (no body when nil).
func OK(body any) Reply { return Reply{Status: http.StatusOK, Body: body} }

// Fail answers status with a v1.Error body, as the agent does.
func Fail(status int, code v1.Code, msg string) Reply {
	return Reply{Status: status, Body: &v1.Error{Code: code, Message: msg}}
}

// HandlerFunc computes a reply from a request.
type HandlerFunc func(Request) Reply

// Server is a fake agent. Routes without a reply answer 501 with a CodeInternal error naming the
// route, so a test that forgot one fails loudly; GET /v1/ipam/healthy answers 200 by default.
type Server struct {
	// SocketPath is where the server listens.
	SocketPath string

	mu       sync.Mutex
	handlers map[string]HandlerFunc
	requests []Request
}

// NewServer starts a fake agent on a unix socket in a temporary directory; it stops when the
// test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	// sun_path holds 108 bytes; a deep TMPDIR plus a long test name can exceed it.
	if len(dir) > 80 {
		d, err := os.MkdirTemp("/tmp", "agent")
		if err != nil {
			t.Fatalf("make socket directory: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		dir = d
	}
	s := &Server{
		SocketPath: filepath.Join(dir, "agent.sock"),
		handlers:   map[string]HandlerFunc{},
	}
	s.Handle(http.MethodGet, v1.PathIPAMHealthy, OK(nil))

	ln, err := net.Listen("unix", s.SocketPath)
	if err != nil {
		t.Fatalf("listen on %s: %v", s.SocketPath, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Handle makes method path answer r from now on.
func (s *Server) Handle(method, path string, r Reply) {
	s.HandleFunc(method, path, func(Request) Reply { return r })
}

// HandleFunc makes method path answer with f from now on.
func (s *Server) HandleFunc(method, path string, f HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method+" "+path] = f
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsTo returns the requests received so far for one route, oldest first.
func (s *Server) RequestsTo(method, path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) {
	body, _ := io.ReadAll(hr.Body)
	req := Request{Method: hr.Method, Path: hr.URL.Path, Query: hr.URL.Query(), Body: body}

	s.mu.Lock()
	s.requests = append(s.requests, req)
	h := s.handlers[hr.Method+" "+hr.URL.Path]
	s.mu.Unlock()

	reply := Fail(http.StatusNotImplemented, v1.CodeInternal,
		fmt.Sprintf("fake agent has no reply for %s %s", hr.Method, hr.URL.Path))
	if h != nil {
		reply = h(req)
	}
	if reply.Status == 0 {
		reply.Status = http.StatusOK
	}
	data := reply.Raw
	if data == nil && reply.Body != nil {
		var err error
		if data, err = json.Marshal(reply.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(reply.Status)
	_, _ = w.Write(data)
}
