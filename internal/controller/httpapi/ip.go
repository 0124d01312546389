package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/binding"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

const (
	// maxSetIPBody bounds the body of PUT /v1/ipam/ip, a few short strings.
	maxSetIPBody = 64 << 10
	// setIPTimeout bounds one binding, which finishes even if the client goes away.
	setIPTimeout = 30 * time.Second
)

// SetIPRequest is the body of PUT /v1/ipam/ip: bind IP to an interface of a pod by hand, as
// spiderpoolctl ip set does (internal/binding). Upstream declares the endpoint ("force set ip,
// for CLI debug usage") without a body or a handler; this body is ours.
type SetIPRequest struct {
	IP string `json:"ip"`
	// Pool records the address; empty means the one pool whose IPs contain it.
	Pool         string `json:"pool,omitempty"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	// PodUID, when set, must be the pod's.
	PodUID string `json:"podUID,omitempty"`
	// Interface is the interface in the pod; empty means eth0.
	Interface string `json:"interface,omitempty"`
	// Node is recorded in the SpiderEndpoint; empty keeps the endpoint's or takes the pod's.
	Node string `json:"node,omitempty"`
	// ContainerID, when set, must be one of the pod's containers; it is not stored.
	ContainerID string `json:"containerID,omitempty"`
}

// SetIPResponse is the body of a 200 answer to PUT /v1/ipam/ip.
type SetIPResponse struct {
	// IP carries the pool's prefix length, as the SpiderEndpoint lists it.
	IP           string `json:"ip"`
	Pool         string `json:"pool"`
	Interface    string `json:"interface"`
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID"`
	Node         string `json:"node,omitempty"`
	// Recorded is false when the binding already existed and nothing changed.
	Recorded bool   `json:"recorded"`
	Message  string `json:"message"`
}

// setIP serves PUT /v1/ipam/ip. Refusals answer 400 (malformed request, address outside the
// pool), 404 (pod, pool or container not found) or 409 (address held by another pod, interface
// busy, pod gone or of another UID), each with the field it is about; failures to reach the API
// answer 503.
func (a *api) setIP(w http.ResponseWriter, r *http.Request) {
	if a.opts.Live == nil {
		writeJSON(w, http.StatusNotImplemented, ErrorResponse{Error: "setting an IP needs an API client"})
		return
	}
	body := SetIPRequest{}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSetIPBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("request body: %v", err)})
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "request body: trailing data after the JSON object"})
		return
	}
	if body.IP == "" {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "ip is required", Field: "ip"})
		return
	}
	addr, err := ip.ParseAddr(body.IP)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "ip: " + err.Error(), Field: "ip"})
		return
	}
	// A client that goes away half way must not leave a record without its endpoint entry.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), setIPTimeout)
	defer cancel()
	res, err := binding.Set(ctx, a.opts.Live, binding.Request{
		IP: addr, Pool: body.Pool, PodNamespace: body.PodNamespace, PodName: body.PodName, PodUID: body.PodUID,
		Interface: body.Interface, Node: body.Node, ContainerID: body.ContainerID, EnableStatefulSet: a.opts.EnableStatefulSet,
	})
	var refusal *binding.Error
	switch {
	case errors.As(err, &refusal):
		status := http.StatusBadRequest
		switch {
		case errors.Is(refusal, binding.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(refusal, binding.ErrConflict):
			status = http.StatusConflict
		}
		writeJSON(w, status, ErrorResponse{Error: refusal.Error(), Field: refusal.Field})
		return
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: err.Error()})
		return
	}
	a.log.Info("IP set through the HTTP API", "ip", res.Address.String(), "pool", res.Pool, "pod", res.Pod,
		"podUID", res.PodUID, "interface", res.Interface, "recorded", res.Recorded)
	writeJSON(w, http.StatusOK, SetIPResponse{
		IP: res.Address.String(), Pool: res.Pool, Interface: res.Interface, PodNamespace: body.PodNamespace,
		PodName: body.PodName, PodUID: res.PodUID, Node: res.Node, Recorded: res.Recorded, Message: res.String(),
	})
}
