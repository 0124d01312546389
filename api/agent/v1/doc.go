// Package v1 holds the wire types of spiderpool-agent's unix-socket HTTP API (docs/design/behaviour.md#agent-api):
// what the spiderpool and coordinator CNI plugins send and receive. It imports only the standard
// library, so that the plugin binaries stay small and the agent and plugins share one definition.
//
// Field names follow upstream's API (containerID, ifName, podUID, ...). Errors are a JSON Error with
// a machine-readable Code; the agent maps its internal errors to codes and HTTP statuses in one
// place and the client turns them back into Go errors.
package v1
