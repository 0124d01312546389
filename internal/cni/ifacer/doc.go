// Package ifacer is the ifacer CNI plugin (docs/design/behaviour.md#ifacer). First in a chain, it prepares the host
// parent interface that the main plugin (macvlan, ipvlan, vlan) attaches pods to: it bonds two or
// more interfaces (or one, when a bond is configured) and adds a VLAN sub-interface
// "<parent>.<vlanID>" on the bond or the single interface. Devices that already exist with the
// expected kind and settings are reused, so every pod of a node can run the same ADD; they are
// shared by the node's pods, hence never removed (DEL is a no-op), and addresses are never put on
// them. It prints prevResult, or an empty result, unchanged.
//
// The configuration parsing is pure and fuzzed; the netlink work acts on the calling thread's
// network namespace (the host's, when run by a container runtime). Tests exercise bonds and
// VLANs in user-mode-linux guests (internal/testutil/uml) because the CI host lacks both.
//
// logOptions.logFile must lie under /var/log/spidernet, or under the directory the node operator
// names in the plugin's environment variable SPIDERPOOL_CNI_LOG_DIR; any other fails the command
// (internal/cni/cnilog says why).
//
// cmd/ifacer hands Funcs to cnirun.Main, which runs each command through skel and turns a panic or
// failure into the CNI error, logged once; everything else lives here so tests can reach it.
package ifacer
