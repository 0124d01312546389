// Package spiderpool is the spiderpool IPAM CNI plugin (docs/design/behaviour.md#spiderpool-ipam-plugin): it parses the `ipam`
// object of the network configuration and the Kubernetes CNI_ARGS, asks the node's
// spiderpool-agent over its unix socket for the addresses of one interface (ADD), gives them back
// (DEL), compares what the runtime holds with what the agent recorded (CHECK) and reports whether
// the agent can serve (STATUS).
//
// The plugin is thin on purpose: it decides nothing about pools. All allocation state lives in
// the cluster and is reached through internal/agent/client; the plugin only translates between
// the CNI protocol and the agent's API. It configures nothing (the main plugin configures the
// interface) but reads what only a process on the host with the pod's namespace path can read,
// so that the agent needs no privileges: the SR-IOV PF behind the pod's interface and its
// addresses for match_master_subnet (internal/sriov), sent to the agent with the request, and,
// when the agent asks for it, IP conflict and gateway probes from the pod's interface (detect.go).
//
// Its only output on stdout is the CNI result or the CNI error (written by skel). Logs go to the
// file named in the configuration and nowhere else, because stdout belongs to the protocol and
// the runtime's handling of stderr varies. That file must lie under /var/log/spidernet, or under
// the directory the node operator names in the plugin's environment variable
// SPIDERPOOL_CNI_LOG_DIR; any other ipam.log_file_path fails the command (internal/cni/cnilog says
// why: the plugin runs as root and a NetworkAttachmentDefinition's author chooses the path).
//
// cmd/spiderpool hands Funcs to cnirun.Main, which runs each command through skel and turns a panic or
// failure into the CNI error, logged once; everything else lives here so tests can reach it.
package spiderpool
