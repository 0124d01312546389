package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
)

// DefaultTimeout bounds one request to the agent (docs/design/behaviour.md#spiderpool-ipam-plugin: the plugin gives the agent 100 s,
// long enough for an allocation that retries write conflicts against the API server).
const DefaultTimeout = 100 * time.Second

// maxBody bounds what is read from an answer. The largest legitimate answer is an allocation or
// an endpoint of a few NICs; the bound only protects a short-lived plugin from a broken peer.
const maxBody = 4 << 20

// baseURL is never resolved: every connection goes to the unix socket. The host name only
// shows up in error messages and the agent's access log.
const baseURL = "http://spiderpool-agent"

// Client is safe for concurrent use.
type Client struct {
	socketPath string
	http       *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout replaces DefaultTimeout for every request; zero or less means no timeout beyond
// the request's context.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d < 0 {
			d = 0
		}
		c.http.Timeout = d
	}
}

// New returns a client of the agent listening on socketPath; an empty path means
// v1.DefaultSocketPath. Nothing is dialled until the first request.
func New(socketPath string, opts ...Option) *Client {
	if socketPath == "" {
		socketPath = v1.DefaultSocketPath
	}
	c := &Client{socketPath: socketPath}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		// The environment's HTTP proxy must never capture a unix-socket request.
		Proxy:               nil,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	c.http = &http.Client{Transport: transport, Timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// SocketPath is the unix socket the client dials.
func (c *Client) SocketPath() string { return c.socketPath }

// Healthy returns nil when the agent answers GET /v1/ipam/healthy with 2xx, that is when it is
// ready to allocate.
func (c *Client) Healthy(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, v1.PathIPAMHealthy, nil, nil, nil)
}

// Allocate asks for the addresses of one interface (POST /v1/ipam/ip). A retried request for
// the same pod UID and interface returns what the interface already holds.
func (c *Client) Allocate(ctx context.Context, args *v1.IpamAddArgs) (*v1.IpamAddResponse, error) {
	var resp v1.IpamAddResponse
	if err := c.do(ctx, http.MethodPost, v1.PathIPAMIP, nil, args, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Release gives back what one interface holds (DELETE /v1/ipam/ip).
func (c *Client) Release(ctx context.Context, args *v1.IpamDelArgs) error {
	return c.do(ctx, http.MethodDelete, v1.PathIPAMIP, nil, args, nil)
}

// ReleaseAll gives back every address of a pod (DELETE /v1/ipam/ips). The agent refuses it with
// CodeForbidden for pods whose addresses must be kept.
func (c *Client) ReleaseAll(ctx context.Context, args *v1.IpamBatchDelArgs) error {
	return c.do(ctx, http.MethodDelete, v1.PathIPAMIPs, nil, args, nil)
}

// WorkloadEndpoint reads a pod's SpiderEndpoint (GET /v1/workloadendpoint); an unknown pod is a
// *v1.Error with CodeNotFound.
func (c *Client) WorkloadEndpoint(ctx context.Context, podNamespace, podName string) (*v1.WorkloadEndpoint, error) {
	q := url.Values{"podNamespace": {podNamespace}, "podName": {podName}}
	var ep v1.WorkloadEndpoint
	if err := c.do(ctx, http.MethodGet, v1.PathWorkloadEndpoint, q, nil, &ep); err != nil {
		return nil, err
	}
	return &ep, nil
}

// CoordinatorConfig reads the coordinator settings for a pod. Upstream's API is a GET whose JSON
// body names the pod; the request is sent the same way so that either agent answers it.
func (c *Client) CoordinatorConfig(ctx context.Context, args *v1.CoordinatorConfigArgs) (*v1.CoordinatorConfig, error) {
	var cfg v1.CoordinatorConfig
	if err := c.do(ctx, http.MethodGet, v1.PathCoordinatorConfig, nil, args, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// do sends one request. in, when non-nil, is sent as the JSON body; out, when non-nil, receives
// the JSON answer of a 2xx response.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read %s %s answer from spiderpool-agent at %s: %w", method, path, c.socketPath, err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s answer from spiderpool-agent: %w", method, path, err)
	}
	return nil
}

// transportError says where the agent was expected: a failed dial almost always means the agent
// is not running on this node or the plugin is configured with another socket path.
func (c *Client) transportError(method, path string, err error) error {
	// url.Error repeats method and URL; the URL's host is meaningless here.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("cannot connect to spiderpool-agent at unix socket %s (is spiderpool-agent running on this node?): %w", c.socketPath, err)
	}
	return fmt.Errorf("%s %s to spiderpool-agent at unix socket %s: %w", method, path, c.socketPath, err)
}

// decodeError turns a non-2xx answer into a *v1.Error. A body that is not an Error (a proxy, a
// panic page, an older agent) keeps its status and text so that nothing is lost.
func decodeError(status int, body []byte) error {
	var e v1.Error
	if err := json.Unmarshal(body, &e); err == nil && e.Code != "" {
		return &e
	}
	text := strings.TrimSpace(string(body))
	const maxText = 1024
	if len(text) > maxText {
		text = text[:maxText] + "..."
	}
	msg := fmt.Sprintf("spiderpool-agent answered HTTP %d %s", status, http.StatusText(status))
	if text != "" {
		msg += ": " + text
	}
	return &v1.Error{Code: v1.CodeInternal, Message: msg}
}
