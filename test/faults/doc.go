// Package faults is the fault-injection suite (make test-faults): the real spiderpool-agent and
// spiderpool-controller binaries, run as processes against a real etcd and kube-apiserver,
// reach the apiserver through a fault-injecting proxy (internal/testutil/apiproxy), and the
// test kills them, loses their answers, restarts the apiserver, lags or cuts their watches, and
// takes nodes away. Every fault class ends with the same invariant check, after the controller's
// GC has had its turn: no address held twice, pool records == SpiderEndpoints == live pods, and
// every pool's counts right. The controller runs with its defaults, so pools are converted to
// block format (docs/design/ipam-blocks.md) as the suite creates them, under load: the records
// checked are the blocks', and a pool's counts are its status mirror's.
//
// Pods are API objects the test creates bound to a node, and the test plays the kubelet: it runs
// the real spiderpool plugin binary for ADD (retrying with a DEL in between, as a container
// runtime does when sandbox setup fails) and DEL. That stand-in is deliberate: the suite aims
// below the kubelet, at IPAM and GC; the real kubelet path is covered by test/e2e.
package faults
