package sandbox

import (
	"bytes"
	"fmt"
	"net/netip"
	"text/template"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// scenario is what differs between the guides' topologies: subnets, node addresses, the
// manifests applied, the pods and what they must reach.
type scenario struct {
	name string
	// subnets[i] is the subnet of node NIC eth<i>.
	subnets []netsim.Subnet
	// kernelHasIPVlan decides ipvlan or macvlan for the public-cloud NICs.
	kernelHasIPVlan bool
}

func newScenario(name string) *scenario {
	sc := &scenario{name: name, kernelHasIPVlan: kernelHasIPVlan()}
	switch name {
	case ScenarioOverlay:
		// The Calico-overlay guide: one underlay subnet, gateway 10.6.0.1.
		sc.subnets = []netsim.Subnet{{CIDR: netip.MustParsePrefix("10.6.0.0/16"), Gateway: netip.MustParseAddr("10.6.0.1")}}
	default:
		// The Alibaba Cloud guide: eth0 in 172.31.192.0/20, eth1 in 192.168.0.0/24.
		sc.subnets = []netsim.Subnet{
			{CIDR: netip.MustParsePrefix("172.31.192.0/20"), Gateway: netip.MustParseAddr("172.31.207.253")},
			{CIDR: netip.MustParsePrefix("192.168.0.0/24"), Gateway: netip.MustParseAddr("192.168.0.253")},
		}
	}
	return sc
}

// cniType is the main plugin of the public-cloud NICs.
func (sc *scenario) cniType() string {
	if sc.name == ScenarioOverlay || !sc.kernelHasIPVlan {
		return "macvlan"
	}
	return "ipvlan"
}

// clusterDefaultNAD is Helm's multus.multusCNI.defaultCniCRName for the scenario ("" none).
func (sc *scenario) clusterDefaultNAD(cni string) string {
	if sc.name == ScenarioOverlay {
		return ""
	}
	return "kube-system/" + cni + "-eth0"
}

// nodeIP is node i's address on NIC eth<nic>: the guides' own for the first two nodes.
func (sc *scenario) nodeIP(i, nic int) netip.Addr {
	if sc.name == ScenarioOverlay {
		return netip.AddrFrom4([4]byte{10, 6, 212, byte(131 + i)})
	}
	if nic == 0 {
		if i < 2 {
			return netip.AddrFrom4([4]byte{172, 31, 199, byte(183 + i)})
		}
		return netip.AddrFrom4([4]byte{172, 31, 196, byte(i)})
	}
	return netip.AddrFrom4([4]byte{192, 168, 0, byte(10 + i)})
}

// overlayCIDR is node i's range of the overlay stand-in (inside kubeadm-config's podSubnet).
func overlayCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(73 + i), 0}), 24)
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
	Index    int
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

// The public-cloud guides' manifests (SPEC.md 12(a)) with the nodes of the sandbox; the pools'
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

// The Calico-overlay guide's manifests (SPEC.md 12(b)), with the node NIC eth0 for ens192.
var overlayManifests = template.Must(template.New("overlay").Parse(`
` + kubeadmConfig + `---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  name: default
spec:
  mode: overlay
  podCIDRType: cluster
  hijackCIDR:
  - 169.254.0.0/16
  hostRuleTable: 500
  podRPFilter: 0
  tunePodRoutes: true
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  disable: false
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  subnet: 10.6.0.0/16
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-eth0
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master:
    - eth0
    ippools:
      ipv4:
      - 10-6-v4
    vlanID: 0
`))

// manifests renders the scenario's manifests for the nodes.
func (sc *scenario) manifests(cni string, nodes []string) ([]byte, error) {
	d := manifestData{CNI: cni}
	for i, n := range nodes {
		d.Nodes = append(d.Nodes, manifestNode{
			Name: n, Index: i,
			Eth0Pool: fmt.Sprintf("172.31.199.%d-172.31.199.%d", 185+5*i, 189+5*i),
			Eth1Pool: fmt.Sprintf("192.168.0.%d-192.168.0.%d", 156+5*i, 160+5*i),
		})
	}
	t := publicCloudManifests
	if sc.name == ScenarioOverlay {
		t = overlayManifests
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// workload is one pod the sandbox runs per node.
type workload struct {
	app         string
	annotations map[string]string
}

func (sc *scenario) workloads(cni string) []workload {
	if sc.name == ScenarioOverlay {
		return []workload{{app: "nginx", annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": "macvlan-eth0"}}}
	}
	return []workload{
		{app: "test-app-1", annotations: map[string]string{"v1.multus-cni.io/default-network": "kube-system/" + cni + "-eth0"}},
		{app: "test-app-2", annotations: map[string]string{"v1.multus-cni.io/default-network": "kube-system/" + cni + "-eth1"}},
	}
}

// serviceApp is the app behind test-svc and the LoadBalancer (externalTrafficPolicy Local).
func (sc *scenario) serviceApp() string {
	if sc.name == ScenarioOverlay {
		return "nginx"
	}
	return "test-app-2"
}
