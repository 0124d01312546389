// Package multusconf generates configurations for the Multus thin CNI plugin (the "multus" binary
// of multus-cni v4, built into .tools/bin by hack/build-tools.sh from hack/tools/multus), the
// meta-plugin that sits between the container runtime and the main CNI on a Spiderpool node.
//
// The contract below was read from the multus-cni v4.2.2 source (pkg/types/conf.go,
// pkg/multus/multus.go, pkg/k8sclient, cmd/thin_entrypoint, deployments/multus-daemonset.yml)
// multus_linux_test.go checks the central parts against a real apiserver and real plugins:
// clusterNetwork from a NAD, the networks annotation, interface names, network-status, DEL,
// a missing pod, a UID mismatch and a "namespace/name" clusterNetwork read as a path.
//
// # How the runtime runs it
//
// The Multus daemonset (thin_entrypoint) writes 00-multus.conf into the runtime's CNI
// configuration directory so that it sorts first; for cniVersion 1.0.0 it writes
// 00-multus.conflist instead, a list whose only plugin is multus. The runtime execs
// <binDir>/multus with that configuration on stdin, as for any plugin. ThinConfig returns the
// single-plugin form and ThinConfList the list form; current libcni (v1.3) has deprecated
// single-plugin configurations, so the list is what a Go caller hands to AddNetworkList.
//
// # Configuration keys (stdin)
//
//   - "type": "multus" (the binary name), "name", "cniVersion": ordinary CNI keys. cniVersion also
//     fills in a delegate configuration list that has none when it is re-read on DEL.
//   - "kubeconfig": path of a kubeconfig file. Without it Multus only talks to Kubernetes when
//     KUBERNETES_SERVICE_HOST/PORT are in its environment (in-cluster), which a runtime does
//     not provide; with neither, "clusterNetwork" cannot be resolved and the pod's annotations
//     are ignored. The client asks for protobuf, has a 1 minute timeout and 50 QPS.
//   - "clusterNetwork" XOR "delegates": the pod's primary network. If "clusterNetwork" is empty,
//     "delegates" (inline CNI configurations or lists) must be non-empty and the first one is
//     the primary network ("master plugin"); this is the form the daemonset writes, with the
//     node's existing primary CNI configuration copied in. If "clusterNetwork" is set,
//     "delegates" is ignored and the value is resolved on every ADD (and on DEL without cache):
//   - a value WITHOUT "/" is a name: first a NetworkAttachmentDefinition of that name in
//     "multusNamespace", then a CNI configuration file in "confDir" whose "name" is that value;
//   - a value WITH a "/" is a filesystem path, never "namespace/name": a directory (the first
//     .conf/.conflist in it, by file name) or a file (".conflist" loaded as a list, else a
//     single configuration). A relative path is taken relative to the runtime's working
//     directory, so "kube-system/foo" is os.Stat-ed as a path and fails. ThinConfig therefore
//     splits "namespace/name" into "multusNamespace" and "clusterNetwork".
//   - "multusNamespace" (default "kube-system"): namespace of the clusterNetwork and
//     defaultNetworks NetworkAttachmentDefinitions and of the v1.multus-cni.io/default-network
//     annotation's NAD.
//   - "defaultNetworks": further networks (same name/path rules) attached to every pod whose
//     namespace is not in "systemNamespaces" (default ["kube-system"]).
//   - "confDir" (default /etc/cni/multus/net.d): where file-backed networks are looked up (a
//     NAD with an empty spec.config means the file in confDir whose "name" is the NAD's name).
//   - "binDir" (default /opt/cni/bin): searched first for delegate plugins, then CNI_PATH.
//   - "cniDir" (default /var/lib/cni/multus): Multus' cache. ADD saves the resolved delegate
//     list in cniDir/<containerID>, DEL reads and removes it (so DEL works after the pod and
//     the NADs are gone). Without that file DEL resolves the delegates again from the pod and
//     the NADs and DELs them; with neither it logs and succeeds. cniDir is also the libcni
//     cache directory of the delegate invocations (cniDir/results), which GC reads.
//   - "readinessindicatorfile": ADD (and STATUS, GC) polls every 1 s for up to 45 s until the
//     file exists, then fails; DEL only logs its absence. Empty disables the wait.
//   - "namespaceIsolation" (bool): a pod may only reference NADs in its own namespace or in
//     "globalNamespaces", a comma-separated string (default "default").
//   - "logFile" (rotated by lumberjack), "logLevel" (debug, verbose, error, panic; default
//     panic, i.e. nearly silent), "logToStderr" (default true), "logOptions" {maxAge, maxSize,
//     maxBackups, compress}.
//   - also read: "capabilities" and "runtimeConfig" (portMappings, bandwidth, ips, mac,
//     infinibandGUID, deviceID, passed on to the delegates), "retryDeleteOnError",
//     "auxiliaryCNIChainName" (clusterNetwork must then be a path), "prevResult".
//
// # The pod
//
// Multus reads CNI_ARGS into K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID and
// K8S_POD_UID (the CNI common-args parser: any other key fails unless IgnoreUnknown=1 is also
// given, as kubelet runtimes do). On ADD it GETs the pod, retrying transient apiserver errors for
// up to 2.5 s. If K8S_POD_UID is set and differs from the pod's UID (and the pod is not static),
// ADD fails. If the pod does not exist, ADD SUCCEEDS without doing anything: it prints an empty
// result with IP 0.0.0.0/0 on the requested interface, and no delegate runs. The delegates get
// the same K8S_POD_* args and the rest of CNI_ARGS.
//
// # Annotations honoured
//
//   - v1.multus-cni.io/default-network: one NAD (namespace defaults to multusNamespace) that
//     replaces the primary network for this pod.
//   - k8s.v1.cni.cncf.io/networks: secondary networks, either "name", "ns/name", "name@ifname"
//     separated by commas, or a JSON list of {name, namespace, interface, ips, mac, default-route,
//     portMappings, bandwidth, cni-args, infiniband-guid, deviceID}. Namespace defaults to the
//     pod's namespace. A NAD whose spec.config has no "name" gets the NAD's name.
//   - on the NAD: k8s.v1.cni.cncf.io/resourceName (device-plugin device IDs from the kubelet
//     pod-resources socket).
//
// # Interface names
//
// Delegates run in order: primary network, defaultNetworks, then the annotation's networks. The
// primary network gets the runtime's CNI_IFNAME (eth0); every other delegate at position i of
// that list gets "net<i>" unless the selection asks for a name ("@ifname" or "interface"). With
// no defaultNetworks the first secondary network is therefore net1, the second net2. ADD fails if
// the name already exists in the pod's namespace. If one delegate fails, the ones before it are
// DELeted and ADD fails. The result printed to the runtime is the primary network's. DEL runs the
// delegates in reverse order, continuing past errors and joining them.
//
// # What it writes back
//
// With a kube client, after all delegates succeeded, Multus sets the pod annotation
// k8s.v1.cni.cncf.io/network-status: a JSON list with, per pod-side interface, {name (the
// network, "namespace/nad" for NADs), interface, ips, mac, mtu, default (true for the primary
// network's interface), dns, gateway, device-info}. It does so with GET pods and UPDATE
// pods/status (retrying on conflict), so its RBAC needs get on pods and update on pods/status;
// not patch (the upstream ClusterRole grants get and update on pods and pods/status, everything
// on k8s.cni.cncf.io, and create/patch/update on events). A failure to write it fails the ADD,
// unless the pod is gone. (Multus 4.2.2 means to skip this for pods in systemNamespaces but
// compares the pod's name, not its namespace, with that list, so kube-system pods get the
// annotation too.) It also records an AddedInterface event per delegate through an event
// broadcaster it never flushes, so an event can be lost when the process exits (none were in
// multus_linux_test.go). DEL writes nothing back.
package multusconf
