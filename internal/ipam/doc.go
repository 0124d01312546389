// Package ipam is Spiderpool's pure IPAM core. It owns the decisions of one
// allocation: parsing the pod and namespace annotations that name pools
// (docs/reference/annotations.md), choosing the candidate pools of an
// interface by precedence, dropping the candidates a pod may not use,
// choosing a free address inside a pool, dual-stack all-or-nothing
// allocation and idempotent release, as docs/design/behaviour.md describes
// them (#pool-selection, #pool-filters, #multusname-matching,
// #choosing-an-address, #dual-stack-and-multiple-nics, #release-on-del). It
// declares the Store it needs and the typed errors callers check with
// errors.Is and errors.As.
//
// The package performs no I/O of its own: pools are read and written only
// through Store, and a pool's allocation records are changed only inside
// Store.UpdatePool, whose function is re-run on a write conflict. It must not
// import client-go or controller-runtime so that it stays fast to test and
// can be fuzzed; the Kubernetes-backed Store lives in internal/ipam/kubestore
// and an in-memory one for tests in internal/ipam/ipamtest.
//
// Invariants, kept by PoolState and checked by ipamtest.CheckInvariants:
//   - an address is recorded at most once across the pools of one subnet;
//   - every record lies in the pool's ips minus excludeIPs (reserved IPs are
//     never handed out, but records made before a reservation are kept);
//   - status.allocatedIPCount equals the number of records;
//   - a record is removed only by a release naming its pod UID, so a late DEL
//     of an old pod incarnation cannot free the address of a new one;
//   - a pod UID asking again for an interface gets the address it already
//     holds rather than a second one, and a failed dual-stack request leaves
//     no record it created behind.
package ipam
