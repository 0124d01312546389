package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// maxBodyBytes bounds request bodies; the largest legitimate one (an ADD
// with long default pool lists) is a few kilobytes.
const maxBodyBytes = 1 << 20

// IPAM is what the handlers need of the IPAM core.
type IPAM interface {
	Allocate(ctx context.Context, req *ipam.Request) (*ipam.Result, error)
	Release(ctx context.Context, req *ipam.ReleaseRequest) error
}

var _ IPAM = (*ipam.Allocator)(nil)

// PoolLister lists the cached pools, in store order, for the pool gauges of the metrics.
type PoolLister interface {
	Pools(ctx context.Context) ([]*v2beta1.SpiderIPPool, error)
}

var _ PoolLister = ipam.Store(nil)

// Deps are the Server's collaborators, injected by Run (informer cache, live
// client, kubestore) or by tests (fake client, ipamtest store).
type Deps struct {
	// Cache reads pods of this node, namespaces, this node, SpiderEndpoints
	// and SpiderCoordinators from informers. It may lag behind the API.
	Cache client.Reader

	// Live reads what the cache has not seen yet and writes
	// SpiderEndpoints. Owner lookups are metadata-only GETs through it.
	Live client.Client

	IPAM IPAM
	// Store is the pool store IPAM allocates through. DEL lists its pools to find records of a pod
	// that has no endpoint; a StatefulSet takeover moves records between UIDs through it, which is
	// not an allocation.
	Store   ipam.Store
	Metrics *Metrics // nil disables metrics
	// Quarantine receives the addresses a plugin found in use by another host; the IPAM core
	// must skip the same ones (ipam.Config.Quarantine). nil: conflicts are not remembered.
	Quarantine *ipam.Quarantine
}

// Server serves the agent API. It is safe for concurrent use; requests for
// the same pod are serialised.
type Server struct {
	cfg        Config
	log        *slog.Logger
	cache      client.Reader
	live       client.Client
	ipam       IPAM
	pools      ipam.Store
	metrics    *Metrics
	quarantine *ipam.Quarantine

	ready  atomic.Bool
	locks  keyedMutex
	owners workload.OwnerCache
}

// NewServer returns a Server over deps. It answers NotReady until SetReady.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if deps.Cache == nil || deps.Live == nil || deps.IPAM == nil || deps.Store == nil {
		return nil, errors.New("agent server: Cache, Live, IPAM and Store are required")
	}
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		cache:      deps.Cache,
		live:       deps.Live,
		ipam:       deps.IPAM,
		pools:      deps.Store,
		metrics:    deps.Metrics,
		quarantine: deps.Quarantine,
	}, nil
}

// SetReady marks the caches synced: from now on requests are served.
func (s *Server) SetReady() { s.ready.Store(true) }

func (s *Server) checkReady() error {
	if !s.ready.Load() {
		return &reasonError{ErrNotReady, "spiderpool-agent is not ready: its caches have not synced yet"}
	}
	return nil
}

// Handler returns the API of the unix socket (docs/design/behaviour.md#agent-api).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.addProbes(mux)
	mux.HandleFunc("POST "+v1.PathIPAMIP, s.handleAdd)
	mux.HandleFunc("DELETE "+v1.PathIPAMIP, s.handleDel)
	// Reserved upstream; answered as upstream does, with success and no body.
	mux.HandleFunc("POST "+v1.PathIPAMIPs, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("DELETE "+v1.PathIPAMIPs, s.handleBatchDel)
	mux.HandleFunc("GET "+v1.PathWorkloadEndpoint, s.handleWorkloadEndpoint)
	mux.HandleFunc("GET "+v1.PathCoordinatorConfig, s.handleCoordinatorConfig)
	return mux
}

// HealthHandler returns the probes served on the TCP health address.
func (s *Server) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	s.addProbes(mux)
	return mux
}

func (s *Server) addProbes(mux *http.ServeMux) {
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	whenReady := func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkReady(); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	mux.HandleFunc("GET "+v1.PathRuntimeLiveness, ok)
	mux.HandleFunc("GET "+v1.PathRuntimeStartup, whenReady)
	mux.HandleFunc("GET "+v1.PathRuntimeReadiness, whenReady)
	mux.HandleFunc("GET "+v1.PathIPAMHealthy, whenReady)
}

func (s *Server) handleAdd(w http.ResponseWriter, r *http.Request) {
	var args v1.IpamAddArgs
	if !s.decode(w, r, &args) {
		return
	}
	start := time.Now()
	resp, err := s.add(withRequestKind(r.Context(), kindAllocation), &args)
	s.metrics.observeAllocation(time.Since(start), err)
	log := s.log.With(keyPod, args.PodNamespace+"/"+args.PodName, keyPodUID, args.PodUID,
		keyIfName, args.IfName, keyContainerID, args.ContainerID, keyDuration, time.Since(start))
	if err != nil {
		s.writeError(w, r.WithContext(withLogger(r.Context(), log)), err)
		return
	}
	log.Info("allocated", keyIPs, addresses(resp))
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleDel(w http.ResponseWriter, r *http.Request) {
	var args v1.IpamDelArgs
	if !s.decode(w, r, &args) {
		return
	}
	if err := args.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveRelease(w, r, &releaseArgs{namespace: args.PodNamespace, name: args.PodName, uid: args.PodUID,
		containerID: args.ContainerID, ifName: args.IfName})
}

func (s *Server) handleBatchDel(w http.ResponseWriter, r *http.Request) {
	var args v1.IpamBatchDelArgs
	if !s.decode(w, r, &args) {
		return
	}
	if err := args.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	var conflicts []netip.Addr
	for i, c := range args.ConflictIPs {
		a, err := netip.ParseAddr(c)
		if err != nil {
			s.writeError(w, r, &reasonError{ErrInvalidRequest, fmt.Sprintf("conflictIPs[%d]: %q is not an IP address", i, c)})
			return
		}
		conflicts = append(conflicts, a)
	}
	s.serveRelease(w, r, &releaseArgs{namespace: args.PodNamespace, name: args.PodName, uid: args.PodUID,
		containerID: args.ContainerID, conflictIPs: args.IsReleaseConflictIPs, conflicts: conflicts})
}

func (s *Server) serveRelease(w http.ResponseWriter, r *http.Request, args *releaseArgs) {
	start := time.Now()
	released, err := s.release(withRequestKind(r.Context(), kindRelease), args)
	s.metrics.observeRelease(time.Since(start), err)
	log := s.log.With(keyPod, args.namespace+"/"+args.name, keyPodUID, args.uid,
		keyIfName, args.ifName, keyContainerID, args.containerID, keyDuration, time.Since(start))
	if err != nil {
		s.writeError(w, r.WithContext(withLogger(r.Context(), log)), err)
		return
	}
	log.Info("released", keyOutcome, released)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleWorkloadEndpoint(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, name := q.Get("podNamespace"), q.Get("podName")
	if ns == "" || name == "" {
		s.writeError(w, r, &v1.Error{Code: v1.CodeInvalidRequest, Message: "query parameters podNamespace and podName are required"})
		return
	}
	we, err := s.workloadEndpoint(r.Context(), ns, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, we)
}

func (s *Server) handleCoordinatorConfig(w http.ResponseWriter, r *http.Request) {
	var args v1.CoordinatorConfigArgs
	if !s.decode(w, r, &args) {
		return
	}
	cc, err := s.coordinatorConfig(r.Context(), &args)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cc)
}

// decode reads the JSON body into v, answering the error itself when it
// cannot.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	err := json.NewDecoder(body).Decode(v)
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		err = &v1.Error{Code: v1.CodeInvalidRequest, Message: fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		err = &v1.Error{Code: v1.CodeInvalidRequest, Message: "empty request body"}
	default:
		err = &v1.Error{Code: v1.CodeInvalidRequest, Message: "decode request body: " + err.Error()}
	}
	s.writeError(w, r, err)
	return false
}

// writeError answers err and logs it: this is the one place failures are
// logged, so nothing below logs what it returns.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, apiErr := httpError(err)
	log := loggerFrom(r.Context(), s.log).With(keyMethod, r.Method, keyPath, r.URL.Path, keyCode, apiErr.Code, keyError, err)
	switch apiErr.Code {
	case v1.CodeInternal:
		log.Error("request failed")
	case v1.CodeNotReady, v1.CodeNotFound:
		log.Debug("request failed")
	default:
		log.Warn("request failed")
	}
	writeJSON(w, status, apiErr)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error can get here: every answer is a plain struct.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ListenUnix listens on the unix socket path with mode 0600, replacing a
// stale socket left by a previous run and creating the directory. The
// socket is created under a temporary name and renamed into place, so that
// it is never reachable with wider permissions. The caller removes path
// when done.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("move socket into place: %w", err)
	}
	return ln, nil
}

// keyedMutex serialises the requests of one pod, so that a retried ADD,
// the next NIC's ADD and a DEL never race each other on this node.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	held chan struct{} // a one-slot semaphore, so that waiting can be cancelled
	refs int
}

// lock blocks until key is free or ctx is done, and returns the unlock
// function.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	drop := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
	default:
		select {
		case l.held <- struct{}{}:
		case <-ctx.Done():
			drop()
			return nil, fmt.Errorf("wait for another request of pod %s: %w", key, ctx.Err())
		}
	}
	return func() {
		<-l.held
		drop()
	}, nil
}
