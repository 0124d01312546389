// Package initjob is spiderpool-init, the one-shot install job of the Helm chart
// (docs/design/behaviour.md#spiderpool-init). It creates or updates, idempotently:
//
//   - the SpiderCoordinator coordinator.name from the coordinator.* values: created when missing;
//     otherwise the fields that have a Helm value are set to it (the values are the source of truth),
//     the other spec fields (podMACPrefix, hostRuleTable, ...) and the status are left alone;
//   - with clusterDefaultPool.installIPv4IPPool / installIPv6IPPool, the SpiderSubnet (when
//     ipam.spiderSubnet.enable) and the SpiderIPPool with default: true, subnet, ips and gateway.
//     Existing ones are never rewritten (their addresses may be allocated); differences from the
//     values are logged as warnings and reported in Result;
//   - with multus.multusCNI.install, the custom SpiderMultusConfig of Multus's cluster network:
//     defaultCniCRName ("name" or "namespace/name", namespace defaulting to the release namespace,
//     split by multusconf.ResolveClusterNetwork like the agent's and Multus's configuration)
//     with an empty customCNI; else the first CNI configuration of the CNI configuration directory
//     (lexical order, *.conf, *.conflist, *.json, skipping Multus's own 00-multus.conf and any
//     configuration of plugin type multus) wrapped verbatim, named after its network name; else one
//     named "default" with an empty customCNI. Run reports its namespace and name, which
//     Multus's configuration carries as multusNamespace and clusterNetwork. A SpiderMultusConfig of that name that spiderpool-init did not create (label
//     spiderpool.spidernet.io/created-by=spiderpool-init) is the user's and is not changed.
//
// Every value is checked offline with the api/v2beta1 Default* and Validate* functions before the
// API is contacted; an error names the Helm value, its variable and its flag, and the bad input.
// Run then waits for the API server and the CRDs (logging progress every 10 s), retries conflicts
// and transient errors until the timeout, and fails at once on errors a retry cannot fix.
//
// # Settings
//
// Each setting is a flag with an environment variable as fallback (a flag wins over its variable);
// the variable is SPIDERPOOL_INIT_ + the Helm value path in upper snake case, the flag its lower
// kebab case. A variable set to "" means an empty string or list; booleans and numbers must not be
// empty. Lists are comma-separated or a JSON array of strings (Helm's toJson); policyRoutes is a
// JSON array of {"dst","gw"}.
//
//	Helm value                                 environment variable                                      flag                                       default
//	(release namespace)                        SPIDERPOOL_INIT_NAMESPACE                                 --namespace                                kube-system
//	(CNI conf dir in the pod)                  SPIDERPOOL_INIT_CNI_CONF_DIR                              --cni-conf-dir                             /etc/cni/net.d
//	(bound of the whole run)                   SPIDERPOOL_INIT_TIMEOUT                                   --timeout                                  5m
//	(log level)                                SPIDERPOOL_INIT_LOG_LEVEL                                 --log-level                                info
//	coordinator.enabled                        SPIDERPOOL_INIT_COORDINATOR_ENABLED                       --coordinator-enabled                      true
//	coordinator.name                           SPIDERPOOL_INIT_COORDINATOR_NAME                          --coordinator-name                         default
//	coordinator.mode                           SPIDERPOOL_INIT_COORDINATOR_MODE                          --coordinator-mode                         auto
//	coordinator.podCIDRType                    SPIDERPOOL_INIT_COORDINATOR_POD_CIDR_TYPE                 --coordinator-pod-cidr-type                auto
//	coordinator.detectGateway                  SPIDERPOOL_INIT_COORDINATOR_DETECT_GATEWAY                --coordinator-detect-gateway               false
//	coordinator.detectIPConflict               SPIDERPOOL_INIT_COORDINATOR_DETECT_IP_CONFLICT            --coordinator-detect-ip-conflict           false
//	coordinator.tunePodRoutes                  SPIDERPOOL_INIT_COORDINATOR_TUNE_POD_ROUTES               --coordinator-tune-pod-routes              true
//	coordinator.hijackCIDR                     SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR                   --coordinator-hijack-cidr                  169.254.0.0/16
//	coordinator.policyRoutes                   SPIDERPOOL_INIT_COORDINATOR_POLICY_ROUTES                 --coordinator-policy-routes                (none)
//	coordinator.vethLinkAddress                SPIDERPOOL_INIT_COORDINATOR_VETH_LINK_ADDRESS             --coordinator-veth-link-address            ""
//	coordinator.vethMTU                        SPIDERPOOL_INIT_COORDINATOR_VETH_MTU                      --coordinator-veth-mtu                     1500
//	clusterDefaultPool.installIPv4IPPool       SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL  --cluster-default-pool-install-ipv4-ippool  false
//	clusterDefaultPool.installIPv6IPPool       SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV6_IPPOOL  --cluster-default-pool-install-ipv6-ippool  false
//	clusterDefaultPool.ipv4IPPoolName          SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IPPOOL_NAME     --cluster-default-pool-ipv4-ippool-name    default-v4-ippool
//	clusterDefaultPool.ipv6IPPoolName          SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV6_IPPOOL_NAME     --cluster-default-pool-ipv6-ippool-name    default-v6-ippool
//	clusterDefaultPool.ipv4SubnetName          SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET_NAME     --cluster-default-pool-ipv4-subnet-name    default-v4-subnet
//	clusterDefaultPool.ipv6SubnetName          SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV6_SUBNET_NAME     --cluster-default-pool-ipv6-subnet-name    default-v6-subnet
//	clusterDefaultPool.ipv4Subnet              SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET          --cluster-default-pool-ipv4-subnet         ""
//	clusterDefaultPool.ipv6Subnet              SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV6_SUBNET          --cluster-default-pool-ipv6-subnet         ""
//	clusterDefaultPool.ipv4IPRanges            SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES       --cluster-default-pool-ipv4-ip-ranges      (none)
//	clusterDefaultPool.ipv6IPRanges            SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV6_IP_RANGES       --cluster-default-pool-ipv6-ip-ranges      (none)
//	clusterDefaultPool.ipv4Gateway             SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_GATEWAY         --cluster-default-pool-ipv4-gateway        ""
//	clusterDefaultPool.ipv6Gateway             SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV6_GATEWAY         --cluster-default-pool-ipv6-gateway        ""
//	ipam.spiderSubnet.enable                   SPIDERPOOL_INIT_IPAM_SPIDER_SUBNET_ENABLE                 --ipam-spider-subnet-enable                true
//	multus.multusCNI.install                   SPIDERPOOL_INIT_MULTUS_INSTALL                            --multus-install                           true
//	multus.multusCNI.defaultCniCRName          SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME                --multus-default-cni-cr-name               ""
//
// The two multus values drop the "multusCNI" segment from their names. The command also takes
// --kubeconfig (env KUBECONFIG; empty means in cluster).
//
// The coordinator defaults are v2beta1.HelmDefaultCoordinator's, the object the controller creates
// when none exists, so both programs agree on the chart's defaults.
//
// It writes through the API only, so that the admission webhooks check what it writes like anything
// else. It must not import internal/agent or internal/cni (node-side code).
package initjob
