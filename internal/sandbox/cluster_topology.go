package sandbox

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"text/template"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// Scenarios: the guides the real cluster builds.
const (
	// ScenarioPublicCloud is the Alibaba Cloud guide: two NICs per node (eth0, eth1), a few
	// addresses per NIC in node-topology pools, one ipvlan SpiderMultusConfig per NIC in
	// kube-system, Multus's cluster network ipvlan-eth0.
	ScenarioPublicCloud = "public-cloud"
	// ScenarioOverlay is the Calico-overlay guide: eth0 from the nodes' own CNI, net1 from the
	// guide's Macvlan SpiderMultusConfig, the coordinator in overlay mode (cluster_overlay.go).
	ScenarioOverlay = "overlay"
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
		// The Alibaba Cloud guide: eth0 in 172.31.192.0/20, eth1 in 192.168.0.0/24, the guide's
		// own node addresses for the first two nodes.
		subnets := []netsim.Subnet{
			{CIDR: netip.MustParsePrefix("172.31.192.0/20"), Gateway: netip.MustParseAddr("172.31.207.253")},
			{CIDR: netip.MustParsePrefix("192.168.0.0/24"), Gateway: netip.MustParseAddr("192.168.0.253")},
		}
		t := &topology{
			subnets:   subnets,
			cp:        netip.MustParsePrefix("172.31.199.180/20"),
			client:    netip.MustParsePrefix("172.31.206.100/20"),
			helm:      []string{"--set", "ipam.enableStatefulSet=false", "--set", "multus.multusCNI.defaultCniCRName=ipvlan-eth0"},
			workloads: guideWorkloads,
			rollouts:  []string{"daemonset/test-app-1", "daemonset/test-app-2"},
		}
		d := manifestData{CNI: "ipvlan"}
		for i, n := range nodes {
			tn := topoNode{name: n}
			for j, sub := range subnets {
				tn.nics = append(tn.nics, topoNIC{name: fmt.Sprintf("eth%d", j), addr: netip.PrefixFrom(publicCloudNodeIP(i, j), sub.CIDR.Bits()), gateway: sub.Gateway})
			}
			t.nodes = append(t.nodes, tn)
			d.Nodes = append(d.Nodes, manifestNode{
				Name:     n,
				Eth0Pool: fmt.Sprintf("172.31.199.%d-172.31.199.%d", 185+5*i, 189+5*i),
				Eth1Pool: fmt.Sprintf("192.168.0.%d-192.168.0.%d", 156+5*i, 160+5*i),
			})
		}
		var b bytes.Buffer
		if err := publicCloudManifests.Execute(&b, d); err != nil {
			return nil, err
		}
		t.manifests = b.Bytes()
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

// publicCloudNodeIP is node i's address on NIC eth<nic>: the guide's own for the first two nodes.
func publicCloudNodeIP(i, nic int) netip.Addr {
	if nic == 0 {
		if i < 2 {
			return netip.AddrFrom4([4]byte{172, 31, 199, byte(183 + i)})
		}
		return netip.AddrFrom4([4]byte{172, 31, 196, byte(i)})
	}
	return netip.AddrFrom4([4]byte{192, 168, 0, byte(10 + i)})
}

// Cluster CIDRs of both scenarios: the guides' service range and kubeadm-config's pod subnet.
const (
	serviceCIDR = "10.233.0.0/18"
	podSubnet   = "10.244.64.0/18"
)

type manifestData struct {
	CNI   string
	Nodes []manifestNode
}

type manifestNode struct {
	Name     string
	Eth0Pool string // first-last
	Eth1Pool string
}

// kubeadmConfig is the guides' kubeadm-config workaround with the clusters' CIDRs: where the
// SpiderCoordinator finds the pod and Service CIDRs.
const kubeadmConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: kubeadm-config
  namespace: kube-system
data:
  ClusterConfiguration: |
    networking:
      podSubnet: ` + podSubnet + `
      serviceSubnet: ` + serviceCIDR + `
`

// The public-cloud guides' manifests (docs/guides/public-cloud.md) with the nodes of the sandbox; the pools'
// ranges are the guide's for master and worker and continue the same way for more nodes.
var publicCloudManifests = template.Must(template.New("public-cloud").Parse(`
` + kubeadmConfig + `---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: {{.CNI}}-eth0
  namespace: kube-system
spec:
  cniType: {{.CNI}}
  enableCoordinator: true
  {{.CNI}}:
    master:
    - eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: {{.CNI}}-eth1
  namespace: kube-system
spec:
  cniType: {{.CNI}}
  enableCoordinator: true
  {{.CNI}}:
    master:
    - eth1
{{- range .Nodes}}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: {{.Name}}-172
spec:
  default: true
  ips:
  - {{.Eth0Pool}}
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  nodeName:
  - {{.Name}}
  multusName:
  - kube-system/{{$.CNI}}-eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: {{.Name}}-192
spec:
  default: true
  ips:
  - {{.Eth1Pool}}
  subnet: 192.168.0.0/24
  gateway: 192.168.0.253
  nodeName:
  - {{.Name}}
  multusName:
  - kube-system/{{$.CNI}}-eth1
{{- end}}
`))
