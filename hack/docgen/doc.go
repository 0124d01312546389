// Command docgen writes the generated reference in docs/reference: the API of the CRDs, the
// annotations and labels, the CNI configuration keys of our plugins, the Helm values, the metrics
// and the flags of every binary. Each page is derived from the thing it describes (the generated
// CRDs, the Go source and its comments, values.yaml and its schema, the metrics registries' own
// descriptions, the binaries' help output), so `make docs` rewrites it and `make verify` fails
// when a committed page no longer matches.
//
// Output is deterministic: everything is sorted or kept in source order, and nothing depends on
// the time, the host or the environment (binaries run with an empty environment in a scratch
// directory whose path is replaced in their output).
//
// The generator reads the repository and runs our binaries; it is a build tool and no product
// package imports it.
package main
