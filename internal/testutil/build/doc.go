// Package build makes the API objects tests need, each from a name and options that set one field
// apiece:
//
//	build.Pool("p", "10.6.0.0/16", build.IPs("10.6.0.10-10.6.0.20"), build.Gateway("10.6.0.1"))
//	build.Pod("default", "web-0", build.UID("u1"), build.OnNode("worker1"))
//
// An option means the same on every kind it applies to, and applying it to a kind that lacks its
// field panics: only a broken test does that. Builders return new objects on every call, so a test
// may change what it gets. Nothing here talks to an API server.
//
// It is a test kit: tests, benchmarks and the sandbox import it, the components never do. It imports
// the API types and apimachinery, never client-go or a component package.
package build
