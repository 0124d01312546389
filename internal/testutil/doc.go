// Package testutil holds helpers shared by test suites, benchmarks and the sandbox: nothing here is
// used by the components themselves.
package testutil
