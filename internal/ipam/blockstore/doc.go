// Package blockstore implements ipam.Store over SpiderIPBlocks (docs/design/ipam-blocks.md): a
// pool's records live in blocks, aligned ranges of its subnet that nodes claim by creating the
// block's deterministically named object. An agent allocates inside its own node's blocks, where it
// is the only regular writer, with group commit; when they are full it claims an unclaimed block,
// and when the pool has none left it borrows an address from another node's block by
// compare-and-swap.
//
// The store hands the IPAM core a view of the pool (ipam.NewPoolView): the records of the node's
// own blocks and of the blocks holding records of the node's pods (both from the node's informer,
// which selects blocks by the node's holder label), plus any block a function asks about. A
// function that looks up, releases or transfers an address outside the view makes the store load
// that block live and run the batch again, so the core's functions keep their whole-pool meaning.
//
// Pools and reserved IPs are read as kubestore reads them. It owns nothing but block records.
package blockstore
