// Package kubestore implements ipam.Store over the Kubernetes API: pools and reserved IPs are read
// from an informer cache, allocation records are written to SpiderIPPool.status with
// resourceVersion compare-and-swap.
//
// Group commit: concurrent UpdatePool calls for one pool on one agent are queued and applied to one
// decoded snapshot, then persisted in a single status update. On a conflict the whole batch is
// re-planned against a fresh read, which is why ipam.Store requires update functions to be pure.
// Retries are bounded by each caller's context, not by a small fixed count. Each agent starts its
// free-address search at an offset derived from its node name so that agents rarely pick the same
// address and conflicts stay rare.
//
// It owns nothing but pool records: SpiderEndpoints are the agent's business. It must not import
// the agent or the CNI packages.
package kubestore
