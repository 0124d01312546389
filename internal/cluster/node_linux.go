package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// NodeModules are the guest kernel modules a node loads at boot: overlayfs for containerd's
// snapshots, the links CNI plugins make (veth, ipvlan, macvlan, bridge, vxlan for overlay CNIs),
// and iptables-legacy with what kube-proxy's and the coordinator's rules match on. ipv6 comes
// first with IPv6 off on the NICs' defaults: with it on, the guest's vector NICs stop passing
// traffic; pods still get IPv6 in their own namespaces when asked for.
var NodeModules = []string{"ipv6 disable_ipv6=1", "overlay", "veth", "ipvlan", "macvlan", "bridge", "br_netfilter", "vxlan", "tun",
	"nf_conntrack", "nf_nat", "ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle", "iptable_raw",
	"ip6_tables", "ip6table_filter", "ip6table_nat", "ip6table_mangle", "ip6table_raw",
	"xt_conntrack", "xt_mark", "xt_connmark", "xt_MASQUERADE", "xt_nat", "xt_tcpudp", "xt_addrtype", "xt_comment",
	"xt_multiport", "xt_statistic", "xt_recent", "xt_set", "xt_physdev", "xt_NFLOG", "xt_limit", "xt_CT", "xt_REDIRECT", "ipt_REJECT", "ip6t_REJECT",
	"nfnetlink", "nf_conntrack_netlink", "ip_set", "ip_set_hash_ip", "ip_set_hash_net"}

// NodeOptions describe one node.
type NodeOptions struct {
	// Name is the node's name (and hostname).
	Name string
	// Dir holds the node's files on the host: the configuration handed to the guest (etc/),
	// the components' logs (logs/) and the guest's exchange directory.
	Dir string
	// NetNS is where linux.uml runs, hence where the NICs' taps appear (the switch's namespace).
	NetNS ns.NetNS
	// NICs are the node's interfaces; NICs[0] carries NodeIP.
	NICs []uml.NIC
	// NodeIP is the address the kubelet registers and kube-proxy binds health checks to.
	NodeIP netip.Addr
	// Gateway is the default route, through NICs[0].
	Gateway netip.Addr
	// Memory is the guest's RAM (linux.uml mem=); default 1200M.
	Memory string
	// ToolsBin holds kubelet, kube-proxy, containerd, containerd-shim-runc-v2 and the
	// reference CNI plugins; the guest runs them from the host's file system.
	ToolsBin string
	// CNIPlugins are the reference plugins of ToolsBin that the node's image carries in
	// /opt/cni/bin, as distributions' and kind's node images do.
	CNIPlugins []string
	// CACertPEM is the cluster CA; KubeletKubeconfig and KubeProxyKubeconfig the components'
	// credentials (contents, pointing at the apiserver's in-network address).
	CACertPEM, KubeletKubeconfig, KubeProxyKubeconfig []byte
	// Registry is the sandbox registry (plain HTTP); Mirrors are the registries containerd
	// resolves through it (docker.io, registry.k8s.io, ...).
	Registry netip.AddrPort
	Mirrors  []string
	// SandboxImage is containerd's pinned pause image.
	SandboxImage string
	// ClusterCIDR is kube-proxy's cluster CIDR (empty: none, as in the underlay guides).
	ClusterCIDR string
	// Progress receives one line per step.
	Progress func(format string, args ...any)
	// Wire, when set, runs once the guest is up and its taps exist (to plug them into the
	// switch) and before anything in the guest needs the network.
	Wire func() error
}

// Node is a running node.
type Node struct {
	Name  string
	opts  NodeOptions
	guest *uml.Guest

	mu    sync.Mutex
	procs map[string]*guestProc
}

type guestProc struct {
	cancel context.CancelFunc
	done   chan error
}

// guest paths
const (
	guestEtc  = "/run/sandbox/etc" // the node's configuration from the host (read-write hostfs)
	guestLogs = "/var/log/sandbox" // the components' logs, on the host
)

// StartNode boots the node's guest, lays out its files and starts containerd, the kubelet and
// kube-proxy. It returns once the kubelet runs; the Node object appears in the API shortly after
// and turns Ready once a CNI configuration is installed (Multus, by the chart).
func StartNode(ctx context.Context, o NodeOptions) (n *Node, err error) {
	if o.Memory == "" {
		o.Memory = "1200M"
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	for _, b := range []string{"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(o.ToolsBin, b)); err != nil {
			return nil, fmt.Errorf("node %s: %s is not built in %s (make tools)", o.Name, b, o.ToolsBin)
		}
	}
	etc := filepath.Join(o.Dir, "etc")
	logs := filepath.Join(o.Dir, "logs")
	for _, d := range []string{etc, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("node %s: %w", o.Name, err)
		}
	}
	if err := writeNodeFiles(etc, o); err != nil {
		return nil, fmt.Errorf("node %s: %w", o.Name, err)
	}
	start := time.Now()
	g, err := uml.Start(uml.Options{
		Memory: o.Memory, NetNS: o.NetNS, NICs: o.NICs, Modules: NodeModules, TempDir: o.Dir,
		OverlayRoot: true, RootSize: "60%", BootTimeout: 3 * time.Minute,
		Mounts: []uml.Mount{{HostPath: etc, GuestPath: guestEtc}, {HostPath: logs, GuestPath: guestLogs}},
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: boot: %w", o.Name, err)
	}
	n = &Node{Name: o.Name, opts: o, guest: g, procs: map[string]*guestProc{}}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if o.Wire != nil {
		if err := o.Wire(); err != nil {
			return nil, fmt.Errorf("node %s: wire: %w", o.Name, err)
		}
	}
	o.Progress("node %s: user-mode-linux guest booted in %.1fs (pid %d, %s RAM)", o.Name, time.Since(start).Seconds(), g.PID(), o.Memory)

	if err := n.exec(ctx, 2*time.Minute, setupScript(o)); err != nil {
		return nil, fmt.Errorf("node %s: set up: %w", o.Name, err)
	}
	path := "PATH=" + o.ToolsBin + ":/usr/sbin:/usr/bin:/sbin:/bin"
	n.run("containerd", path+" exec containerd --config /etc/containerd/config.toml")
	if err := n.exec(ctx, time.Minute, "for i in $(seq 1 120); do [ -S /run/containerd/containerd.sock ] && exit 0; sleep 0.5; done; echo containerd socket missing; exit 1"); err != nil {
		return nil, fmt.Errorf("node %s: containerd did not start (log %s): %w", o.Name, filepath.Join(logs, "containerd.log"), err)
	}
	n.run("kubelet", path+" exec kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.conf"+
		" --hostname-override="+o.Name+" --node-ip="+o.NodeIP.String()+" --v=1")
	n.run("kube-proxy", path+" exec kube-proxy --config=/etc/kubernetes/kube-proxy.yaml --hostname-override="+o.Name+" --v=1")
	o.Progress("node %s: containerd, kubelet and kube-proxy started (logs in %s)", o.Name, logs)
	return n, nil
}

// exec runs script in the guest within timeout and fails on a non-zero exit, with its output.
func (n *Node) exec(ctx context.Context, timeout time.Duration, script string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := n.Exec(ctx, script)
	return err
}

// Exec runs script in the node's guest (outside any pod) and returns its stdout.
func (n *Node) Exec(ctx context.Context, script string) (string, error) {
	stdout, stderr, code, err := n.guest.Run(ctx, script)
	if err != nil {
		return stdout, err
	}
	if code != 0 {
		return stdout, fmt.Errorf("exit %d: %s", code, strings.TrimSpace(stdout+stderr))
	}
	return stdout, nil
}

// run starts a long-running component in the guest, its output in logs/<what>.log.
func (n *Node) run(what, script string) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &guestProc{cancel: cancel, done: make(chan error, 1)}
	n.mu.Lock()
	n.procs[what] = p
	n.mu.Unlock()
	go func() {
		_, _, code, err := n.guest.Run(ctx, script+" >>"+guestLogs+"/"+what+".log 2>&1")
		if err == nil && code != 0 && ctx.Err() == nil {
			err = fmt.Errorf("%s on %s exited %d (log %s)", what, n.Name, code, filepath.Join(n.opts.Dir, "logs", what+".log"))
		}
		p.done <- err
	}()
}

// Guest returns the node's user-mode-linux guest.
func (n *Node) Guest() *uml.Guest { return n.guest }

// PeakMiB is the guest's peak resident memory on the host.
func (n *Node) PeakMiB() int { return n.guest.PeakMiB() }

// Close stops the node's guest, and with it every process of the node.
func (n *Node) Close() error {
	n.mu.Lock()
	for _, p := range n.procs {
		p.cancel()
	}
	n.mu.Unlock()
	return n.guest.Close()
}

// writeNodeFiles writes the node's configuration into etc (the guest copies it into place).
func writeNodeFiles(etc string, o NodeOptions) error {
	files := map[string]string{
		"ca.crt":            string(o.CACertPEM),
		"kubelet.conf":      string(o.KubeletKubeconfig),
		"kube-proxy.conf":   string(o.KubeProxyKubeconfig),
		"kubelet.yaml":      kubeletConfig,
		"kube-proxy.yaml":   kubeProxyConfig(o.ClusterCIDR),
		"containerd.toml":   containerdConfig(o.SandboxImage),
		"registry-hosts.sh": registryHostsScript(o.Registry, o.Mirrors),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// machineID is the node's own /etc/machine-id (the kubelet reports it; two nodes must differ).
func machineID(name string) string {
	sum := sha256.Sum256([]byte("spiderpool-sandbox-node/" + name))
	return hex.EncodeToString(sum[:16])
}

// setupScript turns the guest's overlay of the host into the node's root: identity, routes,
// iptables-legacy (the guest kernel has no nf_tables for IPv4), cgroup v2, a /proc/cpuinfo with
// the clock line cadvisor needs, tmpfs for containerd's and the kubelet's state, the node image's
// CNI plugins, and the configuration from the host.
func setupScript(o NodeOptions) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("set -e")
	w("export PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	w("echo %s >/etc/machine-id", machineID(o.Name))
	w("echo %s >/etc/hostname && hostname %s", o.Name, o.Name)
	w("printf '127.0.0.1 localhost\\n%s %s\\n' >/etc/hosts", o.NodeIP, o.Name)
	w("ip route replace default via %s dev %s", o.Gateway, nicName(o.NICs, 0))
	w("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
	w("for t in iptables ip6tables; do for s in '' -save -restore; do ln -sf /usr/sbin/$t-legacy$s /usr/sbin/$t$s; done; done")
	w("mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup")
	w("echo '+cpu +io +memory +pids' >/sys/fs/cgroup/cgroup.subtree_control")
	w("{ cat /proc/cpuinfo; echo 'cpu MHz		: 2000.000'; } >/run/cpuinfo && mount --bind /run/cpuinfo /proc/cpuinfo")
	w("mount --make-rshared /")
	for _, d := range []string{"/var/lib/containerd", "/var/lib/kubelet", "/var/lib/cni", "/etc/cni/net.d", "/opt/cni/bin", "/var/log/pods", "/var/log/containers"} {
		w("mkdir -p %s && mount -t tmpfs -o mode=0755 tmpfs %s", d, d)
	}
	for _, p := range o.CNIPlugins {
		w("cp %s /opt/cni/bin/", filepath.Join(o.ToolsBin, p))
	}
	w("mkdir -p /etc/kubernetes/pki /etc/containerd /var/lib/kube-proxy")
	w("cp %s/ca.crt /etc/kubernetes/pki/ca.crt", guestEtc)
	w("cp %s/kubelet.conf /etc/kubernetes/kubelet.conf", guestEtc)
	w("cp %s/kube-proxy.conf /etc/kubernetes/kube-proxy.conf", guestEtc)
	w("cp %s/kubelet.yaml /etc/kubernetes/kubelet.yaml", guestEtc)
	w("cp %s/kube-proxy.yaml /etc/kubernetes/kube-proxy.yaml", guestEtc)
	w("cp %s/containerd.toml /etc/containerd/config.toml", guestEtc)
	w("sh %s/registry-hosts.sh", guestEtc)
	return b.String()
}

func nicName(nics []uml.NIC, i int) string {
	if nics[i].Name != "" {
		return nics[i].Name
	}
	return fmt.Sprintf("eth%d", i)
}

// kubeletConfig: cgroupfs (no systemd in the guest), webhook authentication and authorisation
// (the apiserver's exec, logs and port-forward calls), eviction thresholds sized for tmpfs file
// systems of a few hundred MiB, and no swap check (UML has no swap, but the check reads
// /proc/swaps semantics the guest does not match).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
evictionHard:
  memory.available: "20Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
rotateCertificates: false
serverTLSBootstrap: false
`

// kubeProxyConfig: iptables mode (the guest has iptables-legacy, not nftables) without touching
// conntrack sysctls the guest does not have.
func kubeProxyConfig(clusterCIDR string) string {
	s := `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: /etc/kubernetes/kube-proxy.conf
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`
	if clusterCIDR != "" {
		s += "clusterCIDR: " + clusterCIDR + "\n"
	}
	return s
}

// containerdConfig is containerd 2's configuration (version 3): overlayfs snapshots on the
// node's tmpfs, runc from Debian with cgroupfs, the pinned pause image, registry hosts from
// /etc/containerd/certs.d, and the CNI configuration where Multus writes it.
func containerdConfig(sandboxImage string) string {
	return `version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '` + sandboxImage + `'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_unprivileged_ports = true
    enable_unprivileged_icmp = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '/usr/sbin/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/opt/cni/bin']
      conf_dir = '/etc/cni/net.d'
`
}

// registryHostsScript writes containerd's hosts.toml files: the sandbox registry over plain
// HTTP under its own name, and as the mirror of each upstream registry.
func registryHostsScript(reg netip.AddrPort, mirrors []string) string {
	var b strings.Builder
	host := fmt.Sprintf(`[host."http://%s"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`, reg)
	for _, r := range append([]string{reg.String()}, mirrors...) {
		dir := "/etc/containerd/certs.d/" + r
		server := "https://" + r
		if r == reg.String() {
			server = "http://" + r
		}
		fmt.Fprintf(&b, "mkdir -p %s\ncat >%s/hosts.toml <<'EOF'\nserver = %q\n\n%sEOF\n", dir, dir, server, host)
	}
	return b.String()
}
