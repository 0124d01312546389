package sandbox

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// ScenarioAWS is the AWS guide's topology on the real cluster: NICs ens5 and ens6, each node's
// NICs in subnets of their own (routed through the VPC's gateways), the SpiderMultusConfigs in
// the default namespace and Multus's cluster network "default/ipvlan-ens5".
const ScenarioAWS = "aws"

// topology is a guide's network as the real cluster builds it.
type topology struct {
	subnets []netsim.Subnet
	nodes   []topoNode
	// cp is the control plane's (and the registry's) address on the switch; client the outside
	// host's.
	cp, client netip.Prefix
	// helm are the guide's `helm install` flags.
	helm []string
	// manifests are the guide's SpiderMultusConfigs and pools; workloads its workloads, which
	// rollouts name for `kubectl rollout status`.
	manifests []byte
	workloads string
	rollouts  []string
	// podCIDR, when set, is the cluster's pod range that kube-controller-manager splits into the
	// nodes' spec.podCIDR, on which the nodes' first CNI (bridge) runs: the overlay scenario.
	podCIDR netip.Prefix
	// openSwitch leaves out the VPC's MAC filter (a data centre's switch, not a cloud's).
	openSwitch bool
}

type topoNode struct {
	name string
	nics []topoNIC
}

type topoNIC struct {
	name    string
	addr    netip.Prefix
	gateway netip.Addr
}

func (n topoNode) ip() netip.Addr { return n.nics[0].addr.Addr() }

// topologyFor returns the real cluster's topology of a scenario.
func topologyFor(name string, nodes []string) (*topology, error) {
	switch name {
	case ScenarioPublicCloud:
		sc := newScenario(name)
		sc.kernelHasIPVlan = true
		t := &topology{
			subnets:   sc.subnets,
			cp:        netip.PrefixFrom(netip.MustParseAddr("172.31.199.180"), sc.subnets[0].CIDR.Bits()),
			client:    sc.clientAddr(),
			helm:      []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=ipvlan-eth0"},
			workloads: guideWorkloads,
			rollouts:  []string{"daemonset/test-app-1", "daemonset/test-app-2"},
		}
		for i, n := range nodes {
			tn := topoNode{name: n}
			for j, sub := range sc.subnets {
				tn.nics = append(tn.nics, topoNIC{name: fmt.Sprintf("eth%d", j), addr: nodeAddr(sub, sc.nodeIP(i, j)), gateway: sub.Gateway})
			}
			t.nodes = append(t.nodes, tn)
		}
		m, err := sc.manifests("ipvlan", nodes)
		if err != nil {
			return nil, err
		}
		t.manifests = m
		return t, nil
	case ScenarioOverlay:
		return overlayTopology(nodes), nil
	case ScenarioAWS:
		if !slices.Equal(nodes, []string{"master", "worker1"}) {
			return nil, fmt.Errorf("scenario %s: the guide's nodes are master and worker1 (got %v)", name, nodes)
		}
		// The guide's addresses, except that its public ranges (210.22.16.0/24, 180.17.16.0/24,
		// 210.22.32.0/24) become private ones with the same host numbers: nothing of the sandbox
		// may look like someone else's network.
		sub := func(cidr, gw string) netsim.Subnet {
			return netsim.Subnet{CIDR: netip.MustParsePrefix(cidr), Gateway: netip.MustParseAddr(gw)}
		}
		s5m, s6m := sub("172.31.16.0/20", "172.31.16.1"), sub("10.22.16.0/24", "10.22.16.1")
		s5w, s6w := sub("10.17.16.0/24", "10.17.16.1"), sub("10.22.32.0/24", "10.22.32.1")
		nic := func(name, addr string, s netsim.Subnet) topoNIC {
			return topoNIC{name: name, addr: netip.PrefixFrom(netip.MustParseAddr(addr), s.CIDR.Bits()), gateway: s.Gateway}
		}
		return &topology{
			subnets: []netsim.Subnet{s5m, s6m, s5w, s6w},
			nodes: []topoNode{
				{name: "master", nics: []topoNIC{nic("ens5", "172.31.22.228", s5m), nic("ens6", "10.22.16.10", s6m)}},
				{name: "worker1", nics: []topoNIC{nic("ens5", "10.17.16.17", s5w), nic("ens6", "10.22.32.10", s6w)}},
			},
			cp:        netip.MustParsePrefix("172.31.16.250/20"),
			client:    netip.MustParsePrefix("172.31.16.200/20"),
			helm:      []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=default/ipvlan-ens5"},
			manifests: []byte(kubeadmConfig + "---\n" + awsManifests),
			workloads: awsWorkloads,
			rollouts:  []string{"deployment/nginx-lb-1"},
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q (public-cloud, aws or overlay)", name)
}

// awsManifests are the AWS guide's SpiderMultusConfigs and pools (private ranges, see above).
const awsManifests = `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens5
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens5
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens6
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens6
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens5
spec:
  subnet: 172.31.16.0/20
  ips:
    - 172.31.16.4-172.31.16.8
  gateway: 172.31.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens6
spec:
  subnet: 10.22.16.0/24
  ips:
    - 10.22.16.11-10.22.16.15
  gateway: 10.22.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens6"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens5
spec:
  subnet: 10.17.16.0/24
  ips:
    - 10.17.16.11-10.17.16.15
  gateway: 10.17.16.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens6
spec:
  subnet: 10.22.32.0/24
  ips:
    - 10.22.32.11-10.22.32.15
  gateway: 10.22.32.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens6"]
`

// awsWorkloads: the guide's nginx-lb-1 (two replicas on ens5, one per node) behind a LoadBalancer
// with externalTrafficPolicy Local. The checks run from the client on the switch: nginx has no
// shell to run them from.
const awsWorkloads = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-lb-1
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: nginx-lb-1
  template:
    metadata:
      labels:
        app: nginx-lb-1
      annotations:
        v1.multus-cni.io/default-network: "default/ipvlan-ens5"
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels:
                app: nginx-lb-1
            topologyKey: kubernetes.io/hostname
      containers:
      - name: nginx
        image: nginx
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: nginx-svc-lb-1
  namespace: default
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: nginx-lb-1
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 80
`
