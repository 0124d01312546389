// Package cniplugins owns the reference CNI plugins (containernetworking/plugins) that the
// spiderpool-plugins image ships, and the choice of which of them a node gets: the chart's
// plugins.install* values reach the image's init container as INSTALL_* environment switches,
// and Select turns them into a list of plugins. The copying itself is internal/cniinstall's, so
// that the agent's plugins and these reach the node the same atomic way.
//
// The image ships the reference plugins only. Upstream Spiderpool's image also carries ovs-cni,
// rdma-cni, sriov-cni, ib-sriov-cni and ipoib-cni; their switches are understood so that the
// chart's defaults (all true) work, but asking for them installs nothing and says so.
package cniplugins
