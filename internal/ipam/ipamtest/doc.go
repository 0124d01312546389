// Package ipamtest holds test doubles for package ipam: an in-memory
// ipam.Store with compare-and-swap versions and injectable write conflicts,
// the pools of the public-cloud guide, and CheckInvariants, which states the
// allocation invariants every test and fuzz target asserts. It is imported by
// tests only; the objects they build come from internal/testutil/build.
package ipamtest
