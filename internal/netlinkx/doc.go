// Package netlinkx holds the few netlink, sysctl and network-namespace operations the coordinator
// and ifacer plugins need, so that list calls retry on interrupted dumps and "already there" /
// "already gone" are decided in one place. Operations act on the network namespace of the calling
// OS thread: callers enter a pod's namespace with WithNetNSPath (or ns.NetNS.Do) and lock the
// thread in init, as every CNI plugin does.
//
// It knows nothing of CNI configuration or of Kubernetes.
package netlinkx
