// Package ipamtest holds test doubles for package ipam: an in-memory
// ipam.Store with compare-and-swap versions and injectable write conflicts,
// builders for SpiderIPPool and SpiderReservedIP objects, and
// CheckInvariants, which states the allocation invariants every test and
// fuzz target asserts. It is imported by tests only.
package ipamtest
