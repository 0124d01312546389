// Package sriov finds the master of an SR-IOV virtual function (VF) that a main CNI plugin has
// moved into a pod: its physical function (PF) on the host and the addresses the PF's link
// carries there. The CNI configuration's match_master_subnet keeps only the pools on that
// network (docs/ipam-reference.md).
//
// The spiderpool IPAM plugin calls it: the container runtime runs the plugin as root on the host
// with the pod's network namespace path (CNI_NETNS), which is what the lookup needs. The agent
// never calls it, because it runs without the capabilities and mounts to enter a pod's namespace;
// the plugin sends it the master instead (api/agent/v1 IpamAddArgs.master).
//
// It reads sysfs and asks the kernel through internal/netlinkx (the namespace switch, the ethtool
// ioctl, the link's addresses). It knows nothing of CNI configuration, of the agent or of
// Kubernetes.
package sriov
