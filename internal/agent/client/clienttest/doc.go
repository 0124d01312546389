// Package clienttest provides a fake spiderpool-agent for tests of the agent's clients (the
// spiderpool and coordinator CNI plugins). It listens on a real unix socket, records every
// request and answers with canned replies, so that tests exercise the real client, transport
// and encoding without an agent, a cluster or root.
package clienttest
