package v2beta1

// Names of the public contract (SPEC.md section 2). They are spelled exactly as upstream spells them.
const (
	// Finalizer is put on pools, subnets, endpoints and coordinators so that their records are
	// released before the object goes away.
	Finalizer = "spiderpool.spidernet.io"

	// ClusterDefaultInterfaceName is the first NIC of a pod, the one the cluster network configures.
	ClusterDefaultInterfaceName = "eth0"

	AnnoPodIPPool             = "ipam.spidernet.io/ippool"
	AnnoPodIPPools            = "ipam.spidernet.io/ippools"
	AnnoSpiderSubnet          = "ipam.spidernet.io/subnet"
	AnnoSpiderSubnets         = "ipam.spidernet.io/subnets"
	AnnoSpiderSubnetPoolIPNum = "ipam.spidernet.io/ippool-ip-number"
	AnnoSpiderSubnetReclaimIP = "ipam.spidernet.io/ippool-reclaim"
	AnnoPodRoutes             = "ipam.spidernet.io/routes"
	AnnoPodDNS                = "ipam.spidernet.io/dns"
	AnnoDefaultRouteInterface = "ipam.spidernet.io/default-route-nic"
	AnnoNSDefaultV4Pool       = "ipam.spidernet.io/default-ipv4-ippool"
	AnnoNSDefaultV6Pool       = "ipam.spidernet.io/default-ipv6-ippool"

	AnnoMultusConfigName       = "multus.spidernet.io/cr-name"
	AnnoMultusConfigCNIVersion = "multus.spidernet.io/cni-version"
	AnnoRDMAResourceInject     = "cni.spidernet.io/rdma-resource-inject"
	AnnoNetworkResourceInject  = "cni.spidernet.io/network-resource-inject"
	AnnoCNIConfigName          = "cni.spidernet.io/cniconfig-name"

	// Multus annotations that decide which NetworkAttachmentDefinition an interface came from.
	AnnoMultusNetworks       = "k8s.v1.cni.cncf.io/networks"
	AnnoMultusDefaultNetwork = "v1.multus-cni.io/default-network"
	AnnoNADResourceName      = "k8s.v1.cni.cncf.io/resourceName"

	LabelIPPoolCIDR              = "ipam.spidernet.io/ippool-cidr"
	LabelSubnetCIDR              = "ipam.spidernet.io/subnet-cidr"
	LabelOwnerSpiderSubnet       = "ipam.spidernet.io/owner-spider-subnet"
	LabelOwnerApplicationGV      = "ipam.spidernet.io/owner-application-gv"
	LabelOwnerApplicationKind    = "ipam.spidernet.io/owner-application-kind"
	LabelOwnerApplicationNS      = "ipam.spidernet.io/owner-application-namespace"
	LabelOwnerApplicationName    = "ipam.spidernet.io/owner-application-name"
	LabelOwnerApplicationUID     = "ipam.spidernet.io/owner-application-uid"
	LabelIPPoolReclaim           = "ipam.spidernet.io/ippool-reclaim"
	LabelIPPoolInterface         = "ipam.spidernet.io/interface"
	LabelIPPoolVersion           = "ipam.spidernet.io/ip-version"
	AutoPoolPodAffinityAppAPIGrp = "ipam.spidernet.io/app-api-group"
	AutoPoolPodAffinityAppAPIVer = "ipam.spidernet.io/app-api-version"
	AutoPoolPodAffinityAppKind   = "ipam.spidernet.io/app-kind"
	AutoPoolPodAffinityAppNS     = "ipam.spidernet.io/app-namespace"
	AutoPoolPodAffinityAppName   = "ipam.spidernet.io/app-name"
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
