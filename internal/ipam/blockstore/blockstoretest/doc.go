// Package blockstoretest puts the pools of tests into block format (docs/design/ipam-blocks.md), for
// the tests of the components that read a pool's records wherever they live. It owns nothing a
// production binary uses.
package blockstoretest
