package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Paths served.
const (
	PathGC       = "/v1/ipam/gc_ips"
	PathStatus   = "/v1/ipam/status"
	PathIP       = "/v1/ipam/ip"
	PathLiveness = "/healthz"
	PathReady    = "/readyz"
)

// Trigger starts a full IP GC scan soon; controller.GCReconciler implements it.
type Trigger interface {
	TriggerFullScan()
}

// Options configures the API.
type Options struct {
	// Addr is the TCP address served, e.g. ":5720".
	Addr string
	// GC is the garbage collector to trigger; nil when ipam.gc.enabled is off.
	GC Trigger
	// Elected is closed once this replica leads (manager.Elected()); the GC runs on the leader
	// only, so a trigger elsewhere would do nothing. Nil means always leading.
	Elected <-chan struct{}
	// Reader lists pools and endpoints for the status summary (the manager's cached client).
	Reader client.Reader
	// Live reads and writes pods, pools and endpoints for PUT /v1/ipam/ip. It must reach the API
	// server directly: a binding must see the pod just created and the record just released. Nil
	// answers that endpoint with 501.
	Live client.Client
	// EnableStatefulSet is ipam.enableStatefulSet: the SpiderEndpoint PUT /v1/ipam/ip creates for
	// a StatefulSet member has no owner, like the agent's.
	EnableStatefulSet bool
	// Liveness and Readiness are the probe checks served under /healthz and /readyz.
	Liveness, Readiness map[string]healthz.Checker
	// Logger may be nil.
	Logger *slog.Logger
}

// GCResponse is the body of POST /v1/ipam/gc_ips.
type GCResponse struct {
	// Triggered is true when a full scan was queued (triggers arriving while one is pending merge).
	Triggered bool `json:"triggered"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

// Status is the body of GET /v1/ipam/status.
type Status struct {
	Leader       bool  `json:"leader"`
	GCEnabled    bool  `json:"gcEnabled"`
	Pools        int   `json:"pools"`
	TotalIPs     int64 `json:"totalIPs"`
	AllocatedIPs int64 `json:"allocatedIPs"`
	Endpoints    int   `json:"endpoints"`
}

// ErrorResponse is the body of every answer that is not 2xx.
type ErrorResponse struct {
	Error string `json:"error"`
	// Field names the request field a refusal of PUT /v1/ipam/ip is about, by its JSON name.
	Field string `json:"field,omitempty"`
}

// Handler returns the API's routes.
func Handler(opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{opts: opts, log: log}
	mux := http.NewServeMux()
	mux.Handle("POST "+PathGC, localOnly(http.HandlerFunc(a.gc)))
	mux.Handle("GET "+PathStatus, localOnly(http.HandlerFunc(a.status)))
	mux.Handle("PUT "+PathIP, localOnly(http.HandlerFunc(a.setIP)))
	// Probe paths and their per-check subpaths, the way controller-runtime's probe server serves
	// them, so that the Deployment's probes do not change.
	// Upstream's paths (docs/design/behaviour.md#controller-http-api) answer too: /v1/runtime/liveness is the liveness checks,
	// startup and readiness the readiness checks.
	for path, checks := range map[string]map[string]healthz.Checker{
		PathLiveness: opts.Liveness, PathReady: opts.Readiness,
		"/v1/runtime/liveness": opts.Liveness, "/v1/runtime/readiness": opts.Readiness, "/v1/runtime/startup": opts.Readiness,
	} {
		if checks == nil {
			checks = map[string]healthz.Checker{}
		}
		h := http.StripPrefix(path, &healthz.Handler{Checks: checks})
		mux.Handle(path, h)
		mux.Handle(path+"/", h)
	}
	return mux
}

// localOnly answers only requests from a loopback address. The controller runs with host
// networking, so its port is open on the node's network: anyone there could otherwise trigger
// GC scans or read the pool summary. kubectl port-forward, the way spiderpoolctl reaches it,
// connects from the pod's (the node's) loopback. The probes stay open to the kubelet.
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		addr, perr := netip.ParseAddr(host)
		if err != nil || perr != nil || !addr.Unmap().IsLoopback() {
			writeJSON(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf(
				"%s answers only on the node itself (from %s): use kubectl -n <namespace> port-forward deployment/spiderpool-controller <port>", r.URL.Path, r.RemoteAddr)})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewServer returns the API as a manager runnable that every replica serves, leader or not
// (probes must answer everywhere), started before the caches like controller-runtime's own probe
// server.
func NewServer(opts Options) *manager.Server {
	timeout := 15 * time.Second
	return &manager.Server{
		Name: "http api",
		Server: &http.Server{
			Addr:              opts.Addr,
			Handler:           Handler(opts),
			ReadHeaderTimeout: 10 * time.Second,
		},
		ShutdownTimeout: &timeout,
	}
}

type api struct {
	opts Options
	log  *slog.Logger
}

func (a *api) leader() bool {
	if a.opts.Elected == nil {
		return true
	}
	select {
	case <-a.opts.Elected:
		return true
	default:
		return false
	}
}

func (a *api) gc(w http.ResponseWriter, _ *http.Request) {
	switch {
	case a.opts.GC == nil:
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: "IP garbage collection is disabled (ipam.gc.enabled=false)"})
	case !a.leader():
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this spiderpool-controller replica is not the leader; the IP GC runs on the leader only"})
	default:
		a.opts.GC.TriggerFullScan()
		a.log.Info("full IP GC scan triggered through the HTTP API")
		writeJSON(w, http.StatusOK, GCResponse{Triggered: true, Message: "full IP GC scan triggered"})
	}
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	if a.opts.Reader == nil {
		writeJSON(w, http.StatusNotImplemented, ErrorResponse{Error: "status needs an API reader"})
		return
	}
	st, err := a.summary(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) summary(ctx context.Context) (*Status, error) {
	var pools v2beta1.SpiderIPPoolList
	// Read only and counted at once: the cache's own objects are enough, and a pool's status can
	// be hundreds of kilobytes.
	if err := a.opts.Reader.List(ctx, &pools, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	var eps v2beta1.SpiderEndpointList
	if err := a.opts.Reader.List(ctx, &eps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list SpiderEndpoints: %w", err)
	}
	st := &Status{Leader: a.leader(), GCEnabled: a.opts.GC != nil, Pools: len(pools.Items), Endpoints: len(eps.Items)}
	for i := range pools.Items {
		// The counters the pool reconciler keeps: reading them is what keeps this cheap.
		if c := pools.Items[i].Status.TotalIPCount; c != nil {
			st.TotalIPs += *c
		}
		if c := pools.Items[i].Status.AllocatedIPCount; c != nil {
			st.AllocatedIPs += *c
		}
	}
	return st, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing left to tell it
}
