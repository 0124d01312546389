// Package sandbox builds the guides' scenarios as a real Kubernetes cluster on one machine: a
// control plane in a network namespace on a simulated underlay switch, user-mode-linux nodes
// running containerd, the kubelet and kube-proxy, a registry serving the project's images, and
// the Helm chart installed the way the guides install it. It is what `make demo` runs
// (cmd/spiderpool-sandbox) and what test/e2e tests; nothing in it stands in for a Kubernetes
// component.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/cluster"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// ClusterOptions configure a real cluster: a control plane in a namespace on the underlay
// switch, user-mode-linux nodes running containerd, the kubelet and kube-proxy, a registry with
// the project's images, and the chart installed by helm the way the guides do.
type ClusterOptions struct {
	// Dir holds the cluster's state (control plane, nodes, logs, kubeconfig).
	Dir string
	// Prefix names the network namespaces (default "sbx").
	Prefix string
	// Scenario is ScenarioPublicCloud (default), ScenarioAWS or ScenarioOverlay.
	Scenario string
	// Nodes names the nodes (default master and worker).
	Nodes []string
	// ToolsBin holds the Kubernetes components, containerd, helm, kubectl and the reference CNI
	// plugins (make tools).
	ToolsBin string
	// ImagesDir holds the image tarballs (make images).
	ImagesDir string
	// ChartDir is the Helm chart (charts/spiderpool).
	ChartDir string
	// NodeMemory is each guest's RAM (default 1200M).
	NodeMemory string
	// Progress receives one line per step.
	Progress io.Writer
}

// Cluster is a running real cluster.
type Cluster struct {
	opts     ClusterOptions
	topo     *topology
	lab      *netsim.Lab
	CP       *cluster.ControlPlane
	Registry *cluster.Registry
	Nodes    []*cluster.Node
	client   *netsim.Node
	// Kubeconfig is the admin kubeconfig for kubectl and helm on the host.
	Kubeconfig string
	// Phases are the times of the steps, in order.
	Phases []Phase
	start  time.Time
}

// Phase is one timed step of Up.
type Phase struct {
	Name string
	Took time.Duration
}

const registryPort = 5000

// sandboxImage is containerd's pause image, resolved through the sandbox registry.
const sandboxImage = "registry.k8s.io/pause:3.10.2"

// nodeCNIPlugins are the reference plugins a node image carries in /opt/cni/bin.
var nodeCNIPlugins = []string{"loopback", "bridge", "host-local", "ipvlan", "macvlan", "portmap", "ptp", "tuning", "vlan", "static"}

func (o *ClusterOptions) complete() error {
	if o.Dir == "" || o.ToolsBin == "" || o.ImagesDir == "" || o.ChartDir == "" {
		return errors.New("cluster: Dir, ToolsBin, ImagesDir and ChartDir are required")
	}
	if o.Prefix == "" {
		o.Prefix = "sbx"
	}
	if o.Scenario == "" {
		o.Scenario = ScenarioPublicCloud
	}
	if len(o.Nodes) == 0 {
		o.Nodes = []string{"master", "worker"}
		if o.Scenario == ScenarioAWS {
			o.Nodes = []string{"master", "worker1"}
		}
	}
	if _, err := topologyFor(o.Scenario, o.Nodes); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	for _, b := range []string{"helm", "kubectl", "kubelet", "kube-proxy", "containerd", "kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(o.ToolsBin, b)); err != nil {
			return fmt.Errorf("cluster: %s is not in %s (make tools)", b, o.ToolsBin)
		}
	}
	return uml.Available()
}

func (c *Cluster) progress(format string, args ...any) {
	fmt.Fprintf(c.opts.Progress, "[%5.1fs] %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *Cluster) phase(name string, t0 time.Time) {
	c.Phases = append(c.Phases, Phase{Name: name, Took: time.Since(t0)})
}

// UpCluster builds the cluster up to nodes registered with the control plane; Install then puts
// the chart on it. On failure it tears down what it built.
func UpCluster(ctx context.Context, o ClusterOptions) (c *Cluster, err error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	c = &Cluster{opts: o, start: time.Now()}
	if c.topo, err = topologyFor(o.Scenario, o.Nodes); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	_ = cluster.KillLeftovers(filepath.Join(o.Dir, "control-plane"))
	_ = netsim.Cleanup(o.Prefix)

	t0 := time.Now()
	c.lab, err = netsim.New(netsim.Config{Prefix: o.Prefix, Subnets: c.topo.subnets})
	if err != nil {
		return nil, err
	}
	cpNode, err := c.lab.Attach("cp", netsim.NIC{Name: "eth0", Addr: c.topo.cp})
	if err != nil {
		return nil, err
	}
	if c.client, err = c.lab.Attach("client", netsim.NIC{Name: "eth0", Addr: c.topo.client}); err != nil {
		return nil, err
	}
	c.progress("network: switch %s-switch (gateways %s), control plane %s, client %s", o.Prefix, gateways(c.topo.subnets), c.topo.cp.Addr(), c.topo.client.Addr())

	reg := c.registry()
	if c.Registry, err = cluster.StartRegistry(cpNode.NS, reg, filepath.Join(o.Dir, "logs", "registry.log")); err != nil {
		return nil, err
	}
	if err := c.Registry.PushTarballs(ctx, o.ImagesDir); err != nil {
		return nil, err
	}
	c.progress("registry: %s serves %d images from %s", reg, len(c.Registry.Images), o.ImagesDir)

	c.CP, err = cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{
		Dir: filepath.Join(o.Dir, "control-plane"), ToolsBin: o.ToolsBin, NetNS: cpNode.NS,
		AdvertiseAddr: c.topo.cp.Addr(), ServiceCIDR: netip.MustParsePrefix(serviceCIDR), PodCIDR: c.topo.podCIDR, Progress: c.progress,
	})
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = c.CP.AdminKubeconfig()
	c.phase("control plane and registry", t0)

	t0 = time.Now()
	if err := c.startNodes(ctx); err != nil {
		return nil, err
	}
	if err := c.waitNodesRegistered(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	if c.topo.podCIDR.IsValid() {
		if err := c.setUpDefaultCNI(ctx); err != nil {
			return nil, err
		}
	}
	c.phase("nodes booted and registered", t0)
	return c, nil
}

// startNodes boots the nodes in parallel, each NIC a tap bridged into the switch behind the
// "VPC" filter that drops frames from MACs it did not hand out.
func (c *Cluster) startNodes(ctx context.Context) error {
	nodeKC := func(name string) ([]byte, error) {
		p, err := c.CP.NodeKubeconfig(name)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(p)
	}
	proxyKC, err := os.ReadFile(c.CP.KubeProxyKubeconfig())
	if err != nil {
		return err
	}
	reg := c.registry()
	nodes := make([]*cluster.Node, len(c.opts.Nodes))
	errs := make([]error, len(c.opts.Nodes))
	var wg sync.WaitGroup
	for i, name := range c.opts.Nodes {
		kc, err := nodeKC(name)
		if err != nil {
			return err
		}
		tn := c.topo.nodes[i]
		var nics []uml.NIC
		for j, nic := range tn.nics {
			nics = append(nics, uml.NIC{Tap: fmt.Sprintf("%s%d-%d", c.opts.Prefix, i, j), Name: nic.name, MAC: nicMAC(i, j),
				Addrs: []netip.Prefix{nic.addr}})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = cluster.StartNode(ctx, cluster.NodeOptions{
				Name: name, Dir: filepath.Join(c.opts.Dir, "nodes", name), NetNS: c.lab.Switch, NICs: nics,
				NodeIP: tn.ip(), Gateway: tn.nics[0].gateway, Memory: c.opts.NodeMemory,
				ToolsBin: c.opts.ToolsBin, CNIPlugins: nodeCNIPlugins,
				CACertPEM: c.CP.CACertPEM(), KubeletKubeconfig: kc, KubeProxyKubeconfig: proxyKC,
				Registry: reg, Mirrors: []string{"docker.io", "registry.k8s.io", "ghcr.io"}, SandboxImage: sandboxImage,
				// As kubeadm configures it: the podSubnet of kubeadm-config. Underlay pod addresses
				// lie outside it, so kube-proxy masquerades their Service traffic and the replies
				// come back through the node that translated them.
				ClusterCIDR: podSubnet,
				Progress:    c.progress,
				Wire:        func() error { return wireNICs(c.lab, i, nics, !c.topo.openSwitch) },
			})
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			c.Nodes = append(c.Nodes, n)
		}
	}
	return errors.Join(errs...)
}

// registry is where the nodes pull from: beside the control plane.
func (c *Cluster) registry() netip.AddrPort {
	return netip.AddrPortFrom(c.topo.cp.Addr(), registryPort)
}

// Kubectl runs the pinned kubectl against the cluster and returns its output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.tool(ctx, "kubectl", args...)
}

// Helm runs the pinned helm against the cluster.
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	return c.tool(ctx, "helm", args...)
}

func (c *Cluster) tool(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.ToolsBin, name), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HELM_CACHE_HOME="+filepath.Join(c.opts.Dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.opts.Dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(c.opts.Dir, "helm", "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (c *Cluster) waitNodesRegistered(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.Kubectl(ctx, "get", "nodes", "-o", "name")
		if err == nil && len(strings.Fields(out)) == len(c.opts.Nodes) {
			c.progress("nodes: %s registered", strings.Join(strings.Fields(out), ", "))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes not registered after %s: %q %v (kubelet logs under %s)", timeout, out, err, filepath.Join(c.opts.Dir, "nodes"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Close tears the cluster down: nodes, control plane, registry, namespaces.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Close())
	}
	if c.CP != nil {
		errs = append(errs, c.CP.Stop())
	}
	if c.Registry != nil {
		errs = append(errs, c.Registry.Close())
	}
	if c.lab != nil {
		errs = append(errs, c.lab.Close())
	}
	return errors.Join(errs...)
}

// nicMAC is node i's MAC on NIC j: the only source address the "VPC" lets in from that port.
func nicMAC(i, j int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5b, 0x00, 0x00, byte(j), byte(i + 1)}
}

// wireNICs bridges node i's taps into the switch; with vpc, each tap may only send from its NIC's
// own MAC.
func wireNICs(lab *netsim.Lab, i int, nics []uml.NIC, vpc bool) error {
	return lab.Switch.Do(func(ns.NetNS) error {
		br, err := netlinkx.LinkByName("br0")
		if err != nil {
			return err
		}
		for j, nic := range nics {
			l, err := netlinkx.LinkByName(nic.Tap)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return fmt.Errorf("bridge %s: %w", nic.Tap, err)
			}
			if !vpc {
				continue
			}
			for _, chain := range []string{"FORWARD", "INPUT"} {
				argv := []string{"-A", chain, "-i", nic.Tap, "-s", "!", nicMAC(i, j).String(), "-j", "DROP"}
				if out, err := exec.Command("ebtables", argv...).CombinedOutput(); err != nil {
					return fmt.Errorf("ebtables %s: %v: %s", strings.Join(argv, " "), err, out)
				}
			}
		}
		return nil
	})
}

func gateways(subs []netsim.Subnet) string {
	var out []string
	for _, s := range subs {
		out = append(out, s.Gateway.String()+" ("+s.CIDR.String()+")")
	}
	return strings.Join(out, ", ")
}

func firstLine(s string) string {
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strings.SplitN(s, "\n", 2)[0]
}
