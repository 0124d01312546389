// Package client talks to spiderpool-agent's HTTP API over the agent's unix socket (docs/design/behaviour.md#agent-api).
// It is what the spiderpool and coordinator CNI plugins use, so it stays small: the standard
// library, the wire types of api/agent/v1, nothing from Kubernetes.
//
// A non-2xx answer comes back as a *v1.Error carrying the agent's code and message, so callers
// can branch with errors.Is(err, &v1.Error{Code: v1.CodeNotFound}) and show the agent's text
// (which lists the pools tried and why they were refused) unchanged. Failures to reach the socket
// name the socket path, because "the agent is not running on this node" is the usual cause.
//
// Package clienttest holds a fake agent for tests of the client's users.
package client
