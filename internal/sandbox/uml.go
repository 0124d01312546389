package sandbox

import (
	"context"
	"fmt"
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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// Node kernels.
const (
	NodeKernelHost = "host" // nodes are network namespaces of this kernel
	NodeKernelUML  = "uml"  // nodes are user-mode-linux guests (ipvlan, VLAN, bonds)
	NodeKernelAuto = "auto" // uml for the public-cloud scenario where this kernel lacks ipvlan
)

// umlModules are what a node needs from the guest kernel's modules: ipvlan and macvlan, veth for
// the coordinator, iptables-legacy with NAT, mangle, conntrack and marks. ipv6 loads first with
// IPv6 off: with it on, the guest's vector NICs stop passing traffic.
var umlModules = []string{"ipv6 disable_ipv6=1", "ipvlan", "macvlan", "veth",
	"ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle", "ip6_tables", "ip6table_filter",
	"ip6table_nat", "ip6table_mangle", "nf_nat", "xt_conntrack", "xt_mark", "xt_connmark",
	"xt_MASQUERADE", "xt_nat", "xt_tcpudp", "xt_addrtype"}

// umlMemory is each guest's RAM.
const umlMemory = "384M"

// nicMAC is node i's MAC on NIC j: the only source address the "VPC" lets in from that port.
func nicMAC(i, j int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5b, 0x00, 0x00, byte(j), byte(i + 1)}
}

// buildUMLNetwork boots one guest per node, its NICs on taps bridged into the switch, each tap
// allowed only the node NIC's own source MAC, as a cloud VPC does.
func (s *Sandbox) buildUMLNetwork() error {
	_ = netsim.Cleanup(s.opts.Prefix)
	lab, err := netsim.New(netsim.Config{Prefix: s.opts.Prefix, Subnets: s.sc.subnets})
	if err != nil {
		return err
	}
	s.lab = lab
	// The guests boot in parallel; their files live under the state directory, so that down
	// finds them (and any guest process still running from there) after a crash.
	guestDir := filepath.Join(s.opts.Dir, "guests")
	if err := os.MkdirAll(guestDir, 0o755); err != nil {
		return err
	}
	type booted struct {
		g    *uml.Guest
		nics []uml.NIC
		took time.Duration
		err  error
	}
	boots := make([]booted, len(s.opts.Nodes))
	var wg sync.WaitGroup
	for i := range s.opts.Nodes {
		var nics []uml.NIC
		for j, sub := range s.sc.subnets {
			nics = append(nics, uml.NIC{Tap: fmt.Sprintf("%s%d-%d", s.opts.Prefix, i, j), Name: fmt.Sprintf("eth%d", j), MAC: nicMAC(i, j),
				Addrs: []netip.Prefix{nodeAddr(sub, s.sc.nodeIP(i, j))}})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			g, err := uml.Start(uml.Options{Memory: umlMemory, NetNS: lab.Switch, NICs: nics, Modules: umlModules, TempDir: guestDir})
			boots[i] = booted{g: g, nics: nics, took: time.Since(start), err: err}
		}()
	}
	wg.Wait()
	for i, name := range s.opts.Nodes {
		if boots[i].g != nil {
			s.Nodes = append(s.Nodes, &Node{Name: name, sb: s, guest: boots[i].g})
		}
	}
	for i, name := range s.opts.Nodes {
		if boots[i].err != nil {
			return fmt.Errorf("boot node %s: %w", name, boots[i].err)
		}
	}
	for i, name := range s.opts.Nodes {
		g, nics := boots[i].g, boots[i].nics
		err := wireVPC(lab, i, nics)
		if err != nil {
			return fmt.Errorf("wire node %s: %w", name, err)
		}
		if err := s.createNodeObject(name, s.sc.nodeIP(i, 0)); err != nil {
			return err
		}
		s.progress("node %s: user-mode-linux guest (pid %d, %s RAM) booted in %.1fs, eth0 %s, eth1 %s, VPC lets in only its NICs' MACs",
			name, g.PID(), umlMemory, boots[i].took.Seconds(), nics[0].Addrs[0], nics[1].Addrs[0])
	}
	if s.client, err = lab.Attach("client", netsim.NIC{Name: "eth0", Addr: s.sc.clientAddr()}); err != nil {
		return err
	}
	s.progress("network: switch %s-switch with gateways %s, %d guest nodes, client %s", s.opts.Prefix, gateways(s.sc.subnets), len(s.Nodes), s.sc.clientAddr().Addr())
	return nil
}

// wireVPC bridges node i's taps into the switch, each allowed only its NIC's own source MAC, as
// a cloud VPC does.
func wireVPC(lab *netsim.Lab, i int, nics []uml.NIC) error { return wireNICs(lab, i, nics, true) }

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

// guestKubeconfig is the control plane's kubeconfig for the guests: through the forwarder on the
// first subnet's gateway, checked against the apiserver certificate's name.
func (s *Sandbox) guestKubeconfig(port uint16) (string, error) {
	cfg, err := clientcmd.Load(s.env.KubeConfig())
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		c.Server = fmt.Sprintf("https://%s:%d", s.sc.subnets[0].Gateway, port)
		c.TLSServerName = "localhost"
	}
	path := filepath.Join(s.opts.Dir, "guest-kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// startUMLNodes runs in every guest the node's agent (spiderpool-agent, as its DaemonSet would)
// and its stand-in kubelet (spiderpool-sandbox node).
func (s *Sandbox) startUMLNodes(apiPort uint16) error {
	kc, err := s.guestKubeconfig(apiPort)
	if err != nil {
		return err
	}
	s.guestKC = kc
	self := filepath.Join(s.opts.PluginDir, "spiderpool-sandbox")
	tools, err := testenv.ToolsBin()
	if err != nil {
		return err
	}
	for i, n := range s.Nodes {
		n.startGuestAgent()
		script := shellJoin([]string{uml.GuestPath(self), "node",
			"--name", n.Name, "--node-ip", s.sc.nodeIP(i, 0).String(), "--gateway", s.sc.subnets[0].Gateway.String(),
			"--kubeconfig", uml.GuestPath(kc), "--plugin-dir", uml.GuestPath(s.opts.PluginDir), "--tools-dir", uml.GuestPath(tools),
			"--cluster-default-nad", s.sc.clusterDefaultNAD(s.cniType)})
		n.kubeletProc = n.guestProcess("kubelet", "exec "+script)
	}
	s.progress("nodes: spiderpool-agent and the kubelet started in each guest")
	return nil
}

// startGuestAgent runs spiderpool-agent in the node's guest.
func (n *Node) startGuestAgent() {
	s := n.sb
	argv := []string{uml.GuestPath(filepath.Join(s.opts.PluginDir, "spiderpool-agent")),
		"--kubeconfig", uml.GuestPath(s.guestKC), "--node-name", n.Name, "--socket-path", "/run/spidernet/spiderpool.sock",
		"--health-addr", "127.0.0.1:5710", "--metrics-addr", "", "--enable-ipv6=false", "--enable-statefulset=false",
		"--cluster-default-nad", s.sc.clusterDefaultNAD(s.cniType)}
	n.agent = n.guestProcess("agent", "exec "+shellJoin(argv))
}

// guestProcess runs script in the node's guest until the sandbox stops it; its output goes to
// logs/<what>-<node>.log when it ends.
func (n *Node) guestProcess(what, script string) *component {
	ctx, cancel := context.WithCancel(n.sb.ctx)
	c := &component{cancel: cancel, done: make(chan error, 1)}
	logPath := filepath.Join(n.sb.opts.Dir, "logs", what+"-"+n.Name+".log")
	go func() {
		stdout, stderr, code, err := n.guest.Run(ctx, script)
		_ = os.WriteFile(logPath, []byte(stdout+stderr), 0o644)
		if err == nil && code != 0 && ctx.Err() == nil {
			err = fmt.Errorf("%s on %s exited %d (log %s)", what, n.Name, code, logPath)
		}
		c.done <- err
	}()
	return c
}

// guestExec runs commands in a node's guest, one after the other, stopping at the first failure
// (iptables in its legacy flavour).
func (n *Node) guestExec(argvs ...[]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lines []string
	for _, argv := range argvs {
		lines = append(lines, shellJoin(argv))
	}
	script := "export PATH=/tmp/iptables-legacy:$PATH; set -e; " + strings.Join(lines, "; ")
	stdout, stderr, code, err := n.guest.Run(ctx, script)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s: exit %d: %s%s", strings.Join(lines, "; "), code, stdout, stderr)
	}
	return nil
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// podFromAPI reads a running pod's addresses by interface (status for eth0, Multus'
// network-status for the others) and its namespace path on the node.
func (s *Sandbox) podFromAPI(ctx context.Context, name string) (map[string][]netip.Addr, string, error) {
	var p corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &p); err != nil {
		return nil, "", err
	}
	if p.Status.Phase != corev1.PodRunning || p.Annotations[AnnotationNetNS] == "" {
		return nil, "", fmt.Errorf("pod %s is not running", name)
	}
	ips := map[string][]netip.Addr{}
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			ips["eth0"] = append(ips["eth0"], a)
		}
	}
	if err := addNetworkStatus(&p, ips); err != nil {
		return nil, "", err
	}
	return ips, p.Annotations[AnnotationNetNS], nil
}

// guestProbe runs a check from a pod namespace inside the node's guest.
func (n *Node) guestProbe(nsPath string, ch *Check) error {
	argv := []string{uml.GuestPath(filepath.Join(n.sb.opts.PluginDir, "spiderpool-sandbox")), "probe", "--netns", nsPath, "--target", ch.Target, "--banner", ch.Banner}
	if ch.Ping {
		argv = append(argv, "--ping")
	}
	if ch.TCP {
		argv = append(argv, "--tcp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, stderr, code, err := n.guest.Run(ctx, "exec "+shellJoin(argv))
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s", strings.TrimSpace(stdout+stderr))
	}
	return nil
}

// ProbeFrom runs one check from a running pod of the default namespace, wherever its node is.
func (s *Sandbox) ProbeFrom(ctx context.Context, podName string, ch *Check) error {
	var p corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: podName}, &p); err != nil {
		return err
	}
	n := s.Node(p.Spec.NodeName)
	if n == nil {
		return fmt.Errorf("pod %s is on unknown node %q", podName, p.Spec.NodeName)
	}
	if n.guest != nil {
		_, nsPath, err := s.podFromAPI(ctx, podName)
		if err != nil {
			return err
		}
		return n.guestProbe(nsPath, ch)
	}
	_, netns, ok := n.kubelet.podIPs("default", podName)
	if !ok {
		return fmt.Errorf("pod %s is not running", podName)
	}
	return probe(netns, ch)
}
