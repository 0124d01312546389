package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// The overlay scenario is the Calico-overlay guide on the real cluster: the nodes' first CNI
// (eth0 of every pod) is an overlay-style network with per-node pod CIDRs that
// kube-controller-manager allocates, and the guide's Macvlan SpiderMultusConfig adds net1 in the
// underlay subnet 10.6.0.0/16, with `helm install --set coordinator.mode=overlay`.
//
// Calico does not build here, and neither does flannel: its daemon's main package imports the
// Tencent Cloud backend, whose SDK version the module proxy refuses, and its CNI plugin module is
// not served at all. So eth0 comes from the reference bridge and host-local plugins on each node's
// spec.podCIDR, and each node routes the other nodes' pod CIDRs through their addresses (what
// flannel's host-gw backend would install). This is the stated fallback; Up prints it.
const overlayDefaultCNINote = "overlay: Calico and flannel do not build here (flannel's daemon needs a Tencent Cloud SDK version the module proxy refuses); " +
	"eth0 comes from the reference bridge + host-local plugins on each node's spec.podCIDR (allocated by kube-controller-manager), " +
	"with routes between the nodes' pod CIDRs, as flannel's host-gw backend installs them; " +
	"helm gets coordinator.podCIDRType=cluster besides the guide's line, since auto finds no Calico or Cilium here"

// overlayTopology is the Calico-overlay guide's network: one NIC ens192 per node in 10.6.0.0/16,
// gateway 10.6.0.1. Node, control-plane and client addresses stay outside the guide's pool
// (10.6.212.100-200).
func overlayTopology(nodes []string) *topology {
	sub := netsim.Subnet{CIDR: netip.MustParsePrefix("10.6.0.0/16"), Gateway: netip.MustParseAddr("10.6.0.1")}
	t := &topology{
		subnets: []netsim.Subnet{sub},
		cp:      netip.MustParsePrefix("10.6.212.250/16"),
		client:  netip.MustParsePrefix("10.6.100.100/16"),
		// The guide's line, plus podCIDRType cluster: the guide's cluster runs Calico, where the
		// chart's podCIDRType auto finds "k8s-pod-network" in the node's CNI configuration and
		// reads Calico's pools. On a bridge network auto resolves to none (no pod CIDRs to route
		// around the underlay), so a user of such a CNI sets cluster: the kubeadm-config podSubnet.
		helm:       []string{"--set", "coordinator.mode=overlay", "--set", "coordinator.podCIDRType=cluster"},
		manifests:  []byte(kubeadmConfig + "---\n" + overlayGuideManifests),
		workloads:  overlayWorkloads,
		rollouts:   []string{"deployment/nginx", "daemonset/overlay-probe"},
		podCIDR:    netip.MustParsePrefix(podSubnet),
		openSwitch: true,
	}
	for i, n := range nodes {
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 6, 212, byte(21 + i)}), 16)
		t.nodes = append(t.nodes, topoNode{name: n, nics: []topoNIC{{name: "ens192", addr: addr, gateway: sub.Gateway}}})
	}
	return t
}

// overlayGuideManifests are the guide's pool and SpiderMultusConfig as it writes them.
const overlayGuideManifests = `apiVersion: spiderpool.spidernet.io/v2beta1
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
  name: macvlan-ens192
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master:
    - ens192
    ippools:
      ipv4:
      - 10-6-v4
    vlanID: 0
`

// overlayWorkloads: the guide's nginx Deployment (two replicas, net1 from macvlan-ens192), spread
// one per node so that both paths between nodes are checked, a ClusterIP Service for it, and
// overlay-probe, a busybox DaemonSet with the same annotation from which the checks run (nginx's
// image has no shell).
const overlayWorkloads = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      annotations:
        k8s.v1.cni.cncf.io/networks: macvlan-ens192
      labels:
        app: nginx
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels:
                app: nginx
            topologyKey: kubernetes.io/hostname
      containers:
      - name: nginx
        image: nginx
        imagePullPolicy: IfNotPresent
        ports:
        - name: http
          containerPort: 80
          protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: nginx
  namespace: default
spec:
  selector:
    app: nginx
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 80
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: overlay-probe
  namespace: default
spec:
  selector:
    matchLabels:
      app: overlay-probe
  template:
    metadata:
      annotations:
        k8s.v1.cni.cncf.io/networks: macvlan-ens192
      labels:
        app: overlay-probe
    spec:
      containers:
      - name: probe
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
`

// bridgeConflist is a node's first CNI configuration: the reference bridge plugin on the node's
// pod CIDR, masquerading traffic that leaves the cluster's pod range, and portmap.
func bridgeConflist(podCIDR netip.Prefix) string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "cbr0",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "ranges": []any{[]any{map[string]any{"subnet": podCIDR.String()}}}},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return string(b)
}

// setUpDefaultCNI waits for kube-controller-manager to give every node a pod CIDR, then writes
// each node's bridge configuration and its routes to the other nodes' pod CIDRs. The kubelets
// report Ready once the configuration is there.
func (c *Cluster) setUpDefaultCNI(ctx context.Context) error {
	c.progress("%s", overlayDefaultCNINote)
	cidrs := map[string]netip.Prefix{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(cidrs) < len(c.Nodes) {
		out, err := c.Kubectl(ctx, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}`)
		if err == nil {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				if len(f) != 2 {
					continue
				}
				if p, err := netip.ParsePrefix(f[1]); err == nil {
					cidrs[f[0]] = p
				}
			}
		}
		if len(cidrs) == len(c.Nodes) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("overlay: nodes without spec.podCIDR after 2m (have %v, last error %v)", cidrs, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	for i, n := range c.Nodes {
		own := cidrs[n.Name]
		script := "mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-bridge.conflist <<'EOF'\n" + bridgeConflist(own) + "\nEOF\n"
		for j, m := range c.Nodes {
			if j != i {
				script += fmt.Sprintf("ip route replace %s via %s dev %s\n", cidrs[m.Name], c.topo.nodes[j].ip(), c.topo.nodes[i].nics[0].name)
			}
		}
		if _, err := n.Exec(ctx, script); err != nil {
			return fmt.Errorf("overlay: node %s: %w", n.Name, err)
		}
		c.progress("node %s: pod CIDR %s on bridge cni0 (/etc/cni/net.d/10-bridge.conflist), routes to the other nodes' pod CIDRs", n.Name, own)
	}
	return nil
}

// verifyOverlay runs the guide's checks: from each overlay-probe pod, its own node and every
// nginx pod over eth0 (the overlay, across nodes), the nginx Service's ClusterIP (through eth0, as
// the coordinator's overlay routes send Service traffic), each nginx pod's net1 address and the
// underlay gateway over net1; from the switch's client (outside the cluster), each nginx pod's
// net1 address.
func (c *Cluster) verifyOverlay(ctx context.Context) ([]ClusterCheck, error) {
	pods, err := c.guidePods(ctx)
	if err != nil {
		return nil, err
	}
	net1, err := c.net1Addrs(ctx)
	if err != nil {
		return nil, err
	}
	svc, err := c.Kubectl(ctx, "get", "service", "nginx", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return nil, err
	}
	var checks []ClusterCheck
	var nginx []guidePod
	for _, p := range pods {
		if p.App == "nginx" {
			nginx = append(nginx, p)
		}
	}
	for _, src := range pods {
		if src.App != "overlay-probe" {
			continue
		}
		exec := func(to, how string, cmd ...string) {
			checks = append(checks, c.podCheck(ctx, src.Name, to, how, cmd...))
		}
		node := c.topo.nodes[c.nodeIndex(src.Node)]
		exec(fmt.Sprintf("own node %s", src.Node), "ping", "ping", "-c", "2", "-W", "2", node.ip().String())
		gw := node.nics[0].gateway.String()
		exec("gateway "+gw+" (net1)", "ping", "ping", "-c", "2", "-W", "2", gw)
		for _, dst := range nginx {
			exec(fmt.Sprintf("%s eth0 %s:80 (%s)", dst.Name, dst.IP, dst.Node), "http", httpGet(dst.IP.String())...)
			if a, ok := net1[dst.Name]; ok {
				exec(fmt.Sprintf("%s net1 %s:80 (%s)", dst.Name, a, dst.Node), "http", httpGet(a.String())...)
			}
		}
		exec("nginx Service "+svc+":80", "http", httpGet(svc)...)
	}
	from := "client " + c.topo.client.Addr().String()
	for _, dst := range nginx {
		a, ok := net1[dst.Name]
		if !ok {
			checks = append(checks, ClusterCheck{From: "kubectl", To: dst.Name, How: "se", Err: fmt.Errorf("no SpiderEndpoint address for net1")})
			continue
		}
		addr := netip.AddrPortFrom(a, 80)
		checks = append(checks, ClusterCheck{From: from, To: fmt.Sprintf("%s net1 %s (%s)", dst.Name, addr, dst.Node), How: "http", Err: c.clientGet(ctx, addr)})
	}
	if len(nginx) != 2 {
		checks = append(checks, ClusterCheck{From: "kubectl", To: "nginx", How: "pods", Err: fmt.Errorf("%d pods running, want 2", len(nginx))})
	}
	return checks, nil
}

// net1Addrs reads each pod's net1 address from its SpiderEndpoint.
func (c *Cluster) net1Addrs(ctx context.Context) (map[string]netip.Addr, error) {
	out, err := c.Kubectl(ctx, "get", "spiderendpoints", "-n", "default", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list v2beta1.SpiderEndpointList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	addrs := map[string]netip.Addr{}
	for _, ep := range list.Items {
		for _, d := range ep.Status.Current.IPs {
			if d.NIC != "net1" || d.IPv4 == nil {
				continue
			}
			if p, err := netip.ParsePrefix(*d.IPv4); err == nil {
				addrs[ep.Name] = p.Addr()
			}
		}
	}
	return addrs, nil
}
