package v2beta1

// Names of the public contract (docs/reference/annotations.md). They are spelled exactly as upstream spells them.
const (
	// Finalizer is put on pools, subnets, endpoints and coordinators so that their records are
	// released before the object goes away.
	Finalizer = "spiderpool.spidernet.io"

	// ClusterDefaultInterfaceName is the first NIC of a pod, the one the cluster network configures.
	ClusterDefaultInterfaceName = "eth0"

	// AnnoPodIPPool, on a pod or a workload's pod template, names the candidate pools of the
	// interface being configured, per family: a JSON object with the optional lists "ipv4" and
	// "ipv6". Names may be shell patterns (*, ?, [...]) that stand for every pool of the family
	// they match. It outranks the namespace annotations and the network's default pools, and is
	// outranked by AnnoPodIPPools. Example:
	//
	//	ipam.spidernet.io/ippool: '{"ipv4":["10-6-v4"],"ipv6":["10-6-v6"]}'
	AnnoPodIPPool = "ipam.spidernet.io/ippool"

	// AnnoPodIPPools, on a pod or a workload's pod template, names the candidate pools of several
	// interfaces at once: a JSON list of objects with "interface" (required, each interface once),
	// "ipv4", "ipv6" (pool names or patterns, as in AnnoPodIPPool) and "cleangateway" (true: no
	// gateway and so no default route for that interface). It takes precedence over every other
	// way of choosing pools. Example:
	//
	//	ipam.spidernet.io/ippools: '[{"interface":"eth0","ipv4":["pool-a"]},{"interface":"net1","ipv4":["pool-b"],"cleangateway":true}]'
	AnnoPodIPPools = "ipam.spidernet.io/ippools"

	// AnnoSpiderSubnet, on the pod template of a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job
	// or CronJob, asks the controller for an automatic pool per family carved out of the named
	// SpiderSubnet, for the interface being configured (Helm ipam.spiderSubnet.enable and
	// ipam.spiderSubnet.autoPool.enable). Value: a JSON object with "ipv4" and "ipv6" lists of
	// SpiderSubnet names. Example:
	//
	//	ipam.spidernet.io/subnet: '{"ipv4":["demo-v4-subnet1"]}'
	AnnoSpiderSubnet = "ipam.spidernet.io/subnet"

	// AnnoSpiderSubnets is the per-interface form of AnnoSpiderSubnet: a JSON list of objects with
	// "interface" (required, each interface once), "ipv4" and "ipv6". It takes precedence over
	// AnnoSpiderSubnet. Example:
	//
	//	ipam.spidernet.io/subnets: '[{"interface":"eth0","ipv4":["subnet-a"]},{"interface":"net1","ipv4":["subnet-b"]}]'
	AnnoSpiderSubnets = "ipam.spidernet.io/subnets"

	// AnnoSpiderSubnetPoolIPNum, on a workload's pod template next to AnnoSpiderSubnet(s), sizes its
	// automatic pools: "N" gives exactly N addresses, "+N" gives the replica count plus N. Without it
	// the pool gets replicas plus ipam.spiderSubnet.autoPool.defaultRedundantIPNumber (Helm, default
	// 1). Example:
	//
	//	ipam.spidernet.io/ippool-ip-number: "+2"
	AnnoSpiderSubnetPoolIPNum = "ipam.spidernet.io/ippool-ip-number"

	// AnnoSpiderSubnetReclaimIP, on a workload's pod template, says whether its automatic pools are
	// deleted with the workload: "true" (the default) or "false" (the pools are kept). Example:
	//
	//	ipam.spidernet.io/ippool-reclaim: "false"
	AnnoSpiderSubnetReclaimIP = "ipam.spidernet.io/ippool-reclaim"

	// AnnoPodRoutes, on a pod, adds routes to the result of the interface being configured: a JSON
	// list of {"dst": CIDR, "gw": address of the same family}, each dst once. Example:
	//
	//	ipam.spidernet.io/routes: '[{"dst":"172.10.40.0/24","gw":"172.18.40.1"}]'
	AnnoPodRoutes = "ipam.spidernet.io/routes"

	// AnnoPodDNS, on a pod, is the dns of the CNI result of every interface the spiderpool plugin
	// configures (upstream defines the key without a behaviour; this one is ours): a JSON object
	// {"nameservers": [addresses], "domain": name, "search": [names], "options": [words]}, every
	// key optional, at most 3 nameservers and 32 search domains, no white space anywhere. A
	// malformed value fails the ADD before anything is allocated (docs/ipam-reference.md). Example:
	//
	//	ipam.spidernet.io/dns: '{"nameservers":["10.6.0.53"],"search":["corp.example"],"options":["ndots:2"]}'
	AnnoPodDNS = "ipam.spidernet.io/dns"

	// AnnoDefaultRouteInterface, on a pod, names the interface that keeps the pod's default route
	// when the coordinator plugin tunes routes between several interfaces. It overrides the
	// coordinator's podDefaultRouteNIC. Example:
	//
	//	ipam.spidernet.io/default-route-nic: net1
	AnnoDefaultRouteInterface = "ipam.spidernet.io/default-route-nic"

	// AnnoNSDefaultV4Pool, on a namespace, lists the IPv4 pools of its pods that name none
	// themselves: a JSON list of pool names or patterns. It outranks the network's and the
	// cluster's default pools. Example:
	//
	//	ipam.spidernet.io/default-ipv4-ippool: '["ns-v4-pool1","ns-v4-pool2"]'
	AnnoNSDefaultV4Pool = "ipam.spidernet.io/default-ipv4-ippool"

	// AnnoNSDefaultV6Pool is AnnoNSDefaultV4Pool for IPv6. Example:
	//
	//	ipam.spidernet.io/default-ipv6-ippool: '["ns-v6-pool1"]'
	AnnoNSDefaultV6Pool = "ipam.spidernet.io/default-ipv6-ippool"

	// AnnoMultusConfigName, on a SpiderMultusConfig, is the name of the NetworkAttachmentDefinition
	// to generate instead of the SpiderMultusConfig's own name. It must be a DNS-1123 subdomain and
	// cannot change after creation. Example:
	//
	//	multus.spidernet.io/cr-name: macvlan-ens192
	AnnoMultusConfigName = "multus.spidernet.io/cr-name"

	// AnnoMultusConfigCNIVersion, on a SpiderMultusConfig, is the cniVersion of the generated
	// configuration: 0.3.0, 0.3.1, 0.4.0, 1.0.0 or 1.1.0 (without it, 0.3.1). Example:
	//
	//	multus.spidernet.io/cni-version: 1.0.0
	AnnoMultusConfigCNIVersion = "multus.spidernet.io/cni-version"

	// AnnoRDMAResourceInject, on a SpiderMultusConfig, names the group of networks whose RDMA
	// resources are injected into pods; the webhook copies it into a label of the same key and
	// refuses it for cniType ovs and custom. The injection itself is not implemented.
	AnnoRDMAResourceInject = "cni.spidernet.io/rdma-resource-inject"

	// AnnoNetworkResourceInject is AnnoRDMAResourceInject for network (device) resources, with the
	// same copy to a label and the same refusal for ovs and custom; the injection is not implemented.
	AnnoNetworkResourceInject = "cni.spidernet.io/network-resource-inject"

	// AnnoCNIConfigName, on a SpiderMultusConfig, replaces the "name" inside the generated CNI
	// configuration (the NetworkAttachmentDefinition keeps its own name). Example:
	//
	//	cni.spidernet.io/cniconfig-name: macvlan-net
	AnnoCNIConfigName = "cni.spidernet.io/cniconfig-name"

	// AnnoMultusNetworks is Multus' pod annotation listing the extra networks of a pod: "name",
	// "namespace/name" or "namespace/name@ifname", comma-separated, or a JSON list of network
	// selection elements. The IPAM reads it to learn which NetworkAttachmentDefinition an interface
	// came from (spec.multusName of pools). Example:
	//
	//	k8s.v1.cni.cncf.io/networks: kube-system/macvlan-ens192
	AnnoMultusNetworks = "k8s.v1.cni.cncf.io/networks"

	// AnnoMultusDefaultNetwork is Multus' pod annotation replacing the cluster network of eth0 with
	// one NetworkAttachmentDefinition; a name without namespace means Spiderpool's namespace.
	// Example:
	//
	//	v1.multus-cni.io/default-network: kube-system/ipvlan-eth0
	AnnoMultusDefaultNetwork = "v1.multus-cni.io/default-network"

	// AnnoNADResourceName, on a generated NetworkAttachmentDefinition, is the device-plugin resource
	// the pod must request (sriov, ib-sriov, and ovs with a deviceID): Multus adds the request to the
	// pod. Example:
	//
	//	k8s.v1.cni.cncf.io/resourceName: spidernet.io/mellanoxrdma
	AnnoNADResourceName = "k8s.v1.cni.cncf.io/resourceName"

	// LabelIPPoolCIDR, on a SpiderIPPool, is its spec.subnet with ".", ":" and "/" replaced by "-",
	// set by the webhook so that pools can be selected by subnet. Example:
	//
	//	ipam.spidernet.io/ippool-cidr: 172-31-192-0-20
	LabelIPPoolCIDR = "ipam.spidernet.io/ippool-cidr"

	// LabelSubnetCIDR is LabelIPPoolCIDR for a SpiderSubnet. Example:
	//
	//	ipam.spidernet.io/subnet-cidr: 10-6-0-0-16
	LabelSubnetCIDR = "ipam.spidernet.io/subnet-cidr"

	// LabelOwnerSpiderSubnet, on a SpiderIPPool, names the SpiderSubnet of the same subnet that
	// controls the pool (it is also the pool's controller owner reference). Set by the controller
	// when the SpiderSubnet feature is on.
	LabelOwnerSpiderSubnet = "ipam.spidernet.io/owner-spider-subnet"

	// LabelOwnerApplicationGV, on an automatic pool, is the apiVersion of the owning workload with
	// "/" replaced by "_", e.g. apps_v1.
	LabelOwnerApplicationGV = "ipam.spidernet.io/owner-application-gv"

	// LabelOwnerApplicationKind, on an automatic pool, is the kind of the owning workload, e.g.
	// Deployment.
	LabelOwnerApplicationKind = "ipam.spidernet.io/owner-application-kind"

	// LabelOwnerApplicationNS, on an automatic pool, is the namespace of the owning workload.
	LabelOwnerApplicationNS = "ipam.spidernet.io/owner-application-namespace"

	// LabelOwnerApplicationName, on an automatic pool, is the name of the owning workload.
	LabelOwnerApplicationName = "ipam.spidernet.io/owner-application-name"

	// LabelOwnerApplicationUID, on an automatic pool, is the UID of the owning workload; the IPAM
	// treats a pool carrying this label as automatic.
	LabelOwnerApplicationUID = "ipam.spidernet.io/owner-application-uid"

	// LabelIPPoolReclaim, on an automatic pool, copies the workload's AnnoSpiderSubnetReclaimIP:
	// "true" or "false".
	LabelIPPoolReclaim = "ipam.spidernet.io/ippool-reclaim"

	// LabelIPPoolInterface, on an automatic pool, is the pod interface the pool serves, e.g. net1.
	LabelIPPoolInterface = "ipam.spidernet.io/interface"

	// LabelIPPoolVersion, on an automatic pool, is its family: IPv4 or IPv6.
	LabelIPPoolVersion = "ipam.spidernet.io/ip-version"

	// AutoPoolPodAffinityAppAPIGrp is a key of the spec.podAffinity.matchLabels of an automatic
	// pool: the API group of the owning workload ("apps"; empty for the core group). With the four
	// keys below it ties the pool to the workload's pods; these are the only podAffinity labels an
	// automatic pool may carry.
	AutoPoolPodAffinityAppAPIGrp = "ipam.spidernet.io/app-api-group"

	// AutoPoolPodAffinityAppAPIVer is the matchLabels key of an automatic pool holding the
	// workload's API version, e.g. v1.
	AutoPoolPodAffinityAppAPIVer = "ipam.spidernet.io/app-api-version"

	// AutoPoolPodAffinityAppKind is the matchLabels key of an automatic pool holding the workload's
	// kind, e.g. Deployment.
	AutoPoolPodAffinityAppKind = "ipam.spidernet.io/app-kind"

	// AutoPoolPodAffinityAppNS is the matchLabels key of an automatic pool holding the workload's
	// namespace; kubectl get spiderippool -o wide shows it as APP-NAMESPACE.
	AutoPoolPodAffinityAppNS = "ipam.spidernet.io/app-namespace"

	// AutoPoolPodAffinityAppName is the matchLabels key of an automatic pool holding the workload's
	// name.
	AutoPoolPodAffinityAppName = "ipam.spidernet.io/app-name"
)

// IP families as stored in spec.ipVersion.
const (
	IPv4 int64 = 4
	IPv6 int64 = 6
)

// CNI types accepted in SpiderMultusConfig.spec.cniType.
const (
	CniTypeMacvlan = "macvlan"
	CniTypeIPvlan  = "ipvlan"
	CniTypeVlan    = "vlan"
	CniTypeSriov   = "sriov"
	CniTypeOvs     = "ovs"
	CniTypeIBSriov = "ib-sriov"
	CniTypeIPoIB   = "ipoib"
	CniTypeCustom  = "custom"
)

// Coordinator modes and pod CIDR sources.
const (
	CoordinatorModeAuto     = "auto"
	CoordinatorModeUnderlay = "underlay"
	CoordinatorModeOverlay  = "overlay"
	CoordinatorModeDisabled = "disabled"

	PodCIDRTypeAuto    = "auto"
	PodCIDRTypeCluster = "cluster"
	PodCIDRTypeCalico  = "calico"
	PodCIDRTypeCilium  = "cilium"
	PodCIDRTypeNone    = "none"

	CoordinatorPhaseSynced   = "Synced"
	CoordinatorPhaseNotReady = "NotReady"
)
