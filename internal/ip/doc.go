// Package ip owns Spiderpool's IP address arithmetic: parsing and printing the
// address ranges stored in CRDs ("10.6.212.100-10.6.212.200", single
// addresses, CIDRs read strictly or leniently and written canonically),
// normalised immutable address sets with union, subtraction and
// intersection, overflow-free counting of pools as large as an
// IPv4 /8 or an IPv6 /64 (or /0), and the search for free addresses that the
// allocator runs against the list of addresses already in use. Every operation
// works on ranges rather than on individual addresses, so its cost depends on
// the number of ranges and used addresses, never on the size of a pool. The
// package is deliberately pure and built on net/netip: it must not import
// Kubernetes, controller-runtime or any other non-standard-library package, so
// that the webhook, the controllers and the IPAM plugin can all share it and it
// can be tested and fuzzed in isolation.
package ip
