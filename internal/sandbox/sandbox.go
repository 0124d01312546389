// Package sandbox runs the whole system on one Linux machine: a real control plane (etcd and
// kube-apiserver), the controller with its webhooks, one agent per simulated node, an underlay of
// network namespaces (a switch with the subnets' gateways, nodes with two NICs), and pods set up
// through the real CNI chain by a stand-in kubelet. It is what `make demo` shows and what the e2e
// suites run against.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// Scenarios.
const (
	// ScenarioPublicCloud is the Alibaba Cloud / AWS guides' topology: two NICs per node, a few
	// addresses per NIC in node-topology pools, one SpiderMultusConfig per NIC, coordinator in
	// underlay mode.
	ScenarioPublicCloud = "public-cloud"
	// ScenarioOverlay is the Calico-overlay guide: eth0 from an overlay CNI (ptp stands in for
	// Calico), net1 from macvlan with the coordinator in overlay mode.
	ScenarioOverlay = "overlay"
)

// Options configure a sandbox.
type Options struct {
	// Dir holds the sandbox's state: control plane data, kubeconfig, logs, the nodes' files.
	Dir string
	// Prefix names its network namespaces (default "sbx").
	Prefix string
	// Scenario is ScenarioPublicCloud (default) or ScenarioOverlay.
	Scenario string
	// Nodes names the nodes (default master and worker).
	Nodes []string
	// PluginDir holds our CNI plugins (spiderpool, coordinator); the reference plugins come from
	// the tools directory.
	PluginDir string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// LogLevel of the components' log files in Dir/logs.
	LogLevel slog.Level
	// NodeKernel is NodeKernelHost (nodes are network namespaces), NodeKernelUML, or
	// NodeKernelAuto (default): UML for the public-cloud scenario when this kernel has no ipvlan
	// and a guest can boot.
	NodeKernel string
}

func (o *Options) complete() error {
	if o.Dir == "" {
		return errors.New("sandbox: Dir is required")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if o.Prefix == "" {
		o.Prefix = "sbx"
	}
	if o.Scenario == "" {
		o.Scenario = ScenarioPublicCloud
	}
	if o.Scenario != ScenarioPublicCloud && o.Scenario != ScenarioOverlay {
		return fmt.Errorf("sandbox: unknown scenario %q (want %s or %s)", o.Scenario, ScenarioPublicCloud, ScenarioOverlay)
	}
	if len(o.Nodes) == 0 {
		o.Nodes = []string{"master", "worker"}
	}
	if len(o.Nodes) > 20 {
		return fmt.Errorf("sandbox: %d nodes, at most 20", len(o.Nodes))
	}
	if o.PluginDir == "" {
		return errors.New("sandbox: PluginDir is required")
	}
	for _, p := range []string{"spiderpool", "coordinator"} {
		if _, err := os.Stat(filepath.Join(o.PluginDir, p)); err != nil {
			return fmt.Errorf("sandbox: plugin %s not in %s (make build): %w", p, o.PluginDir, err)
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.NodeKernel == "" || o.NodeKernel == NodeKernelAuto {
		// The guides' ipvlan where this kernel lacks it: user-mode-linux nodes, if they boot.
		o.NodeKernel = NodeKernelHost
		if o.Scenario == ScenarioPublicCloud && !kernelHasIPVlan() && uml.Available() == nil {
			o.NodeKernel = NodeKernelUML
		}
	}
	switch o.NodeKernel {
	case NodeKernelHost:
	case NodeKernelUML:
		if o.Scenario != ScenarioPublicCloud {
			return fmt.Errorf("sandbox: --node-kernel uml runs the %s scenario only", ScenarioPublicCloud)
		}
		if err := uml.Available(); err != nil {
			return fmt.Errorf("sandbox: user-mode-linux nodes: %w", err)
		}
		for _, b := range []string{"spiderpool-agent", "spiderpool-sandbox"} {
			if _, err := os.Stat(filepath.Join(o.PluginDir, b)); err != nil {
				return fmt.Errorf("sandbox: user-mode-linux nodes run %s from %s (make build): %w", b, o.PluginDir, err)
			}
		}
	default:
		return fmt.Errorf("sandbox: unknown node kernel %q (want %s or %s)", o.NodeKernel, NodeKernelHost, NodeKernelUML)
	}
	return nil
}

// Sandbox is a running sandbox.
type Sandbox struct {
	opts       Options
	env        *testenv.Env
	Client     client.Client
	Config     *rest.Config
	Kubeconfig string
	// ControllerAddr is the controller's HTTP API (spiderpoolctl gc --address).
	ControllerAddr string

	sc         *scenario
	lab        *netsim.Lab
	client     *netsim.Node // outside host on the first subnet (LoadBalancer clients)
	Nodes      []*Node
	cniType    string
	multus     string // the Multus thin plugin, "" when not built
	forwarders []*netsim.Forwarder
	guestKC    string // the guests' kubeconfig
	notes      []string
	logs       *logFiles

	ctx    context.Context
	cancel context.CancelFunc
	ctrl   *component
	start  time.Time
	mu     sync.Mutex
	closed bool
}

// Node is a simulated node.
type Node struct {
	Name string
	Net  *netsim.Node
	// RunDir appears at /run/spidernet for this node's CNI plugins (NodeExec): the agent's socket
	// and the coordinator's lock are the node's own.
	RunDir  string
	agent   *component // the in-process agent, or the agent process in the guest
	kubelet *kubelet   // nil on user-mode-linux nodes (their kubelet runs in the guest)
	// kubeletProc is the guest's kubelet process (spiderpool-sandbox node).
	kubeletProc *component
	guest       *uml.Guest
	sb          *Sandbox
}

// component is an in-process component (controller, agent) running until stopped.
type component struct {
	cancel context.CancelFunc
	done   chan error
}

func (c *component) stop(timeout time.Duration) error {
	c.cancel()
	select {
	case err := <-c.done:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(timeout):
		return errors.New("did not stop in time")
	}
}

func (s *Sandbox) progress(format string, args ...any) {
	fmt.Fprintf(s.opts.Progress, "[%5.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// Up builds the sandbox; Close tears it down. On failure Up tears down what it built.
func Up(ctx context.Context, opts Options) (sb *Sandbox, err error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	s := &Sandbox{opts: opts, start: time.Now()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	s.logs = newLogFiles(filepath.Join(opts.Dir, "logs"), opts.LogLevel)
	s.sc = newScenario(opts.Scenario)
	s.cniType = s.sc.cniType()
	if opts.NodeKernel == NodeKernelUML {
		s.cniType = "ipvlan" // the guests' kernel has it
	}

	// Every up is a new cluster: the data of an earlier one would hold its pods and addresses.
	cpDir := filepath.Join(opts.Dir, "controlplane")
	for _, d := range []string{cpDir, filepath.Join(opts.Dir, "nodes")} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	s.progress("control plane: starting etcd and kube-apiserver (state in %s)", cpDir)
	s.env, err = testenv.Start(testenv.Options{Dir: cpDir})
	if err != nil {
		return nil, err
	}
	s.Client, s.Config = s.env.Client, s.env.Config
	s.Kubeconfig = filepath.Join(opts.Dir, "kubeconfig")
	if err := s.env.WriteKubeConfig(s.Kubeconfig); err != nil {
		return nil, err
	}
	s.progress("control plane: ready at %s", s.Config.Host)

	apiAddr := strings.TrimPrefix(strings.TrimSuffix(s.Config.Host, "/"), "https://")
	ap, err := netip.ParseAddrPort(apiAddr)
	if err != nil {
		return nil, fmt.Errorf("apiserver address %q: %w", s.Config.Host, err)
	}
	useUML := opts.NodeKernel == NodeKernelUML
	if useUML {
		s.progress("nodes: user-mode-linux guests with %s RAM each, for the guides' ipvlan (--node-kernel host: network namespaces with macvlan)", umlMemory)
		if err := s.buildUMLNetwork(); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		// The guests reach the control plane over the switch: a forwarder on its gateway.
		fw, err := netsim.ForwardTCP(s.lab.Switch, netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port()), apiAddr)
		if err != nil {
			return nil, err
		}
		s.forwarders = append(s.forwarders, fw)
	} else {
		if err := s.buildNetwork(); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		// Nodes reach the control plane at the host's loopback address through a forwarder in
		// each node namespace, so that the one kubeconfig works everywhere (Multus reads it on
		// the nodes).
		for _, n := range s.Nodes {
			fw, err := netsim.ForwardTCP(n.Net.NS, ap, apiAddr)
			if err != nil {
				return nil, err
			}
			s.forwarders = append(s.forwarders, fw)
		}
	}
	if err := s.startController(ctx); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := s.applyScenario(ctx); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", opts.Scenario, err)
	}
	if !useUML {
		for _, n := range s.Nodes {
			if err := n.startAgent(ctx); err != nil {
				return nil, fmt.Errorf("agent on %s: %w", n.Name, err)
			}
		}
		s.progress("agents: %d running", len(s.Nodes))
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	if tools, err := testenv.ToolsBin(); err == nil {
		if _, err := os.Stat(filepath.Join(tools, "multus")); err == nil {
			s.multus = filepath.Join(tools, "multus")
		}
	}
	if s.multus != "" {
		s.progress("pods: the Multus thin plugin (%s) delegates to the NADs, as on a node", s.multus)
	} else {
		s.note("the Multus thin plugin is not built (hack/build-tools.sh multus): the sandbox's kubelet resolves the Multus annotations and delegates to the NADs itself with libcni")
	}
	if useUML {
		if err := s.startUMLNodes(ap.Port()); err != nil {
			return nil, err
		}
	} else {
		for _, n := range s.Nodes {
			if n.kubelet, err = newKubelet(n); err != nil {
				return nil, err
			}
			n.kubelet.start(s.ctx)
		}
	}
	if err := s.createWorkloads(ctx); err != nil {
		return nil, fmt.Errorf("workloads: %w", err)
	}
	if err := s.programServices(ctx); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	s.progress("sandbox up in %.1fs", time.Since(s.start).Seconds())
	return s, nil
}

// Notes are the notices the sandbox printed about how it differs from a real cluster.
func (s *Sandbox) Notes() []string { return slices.Clone(s.notes) }

func (s *Sandbox) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.notes = append(s.notes, msg)
	s.progress("note: %s", msg)
}

// Scenario returns the scenario's name.
func (s *Sandbox) Scenario() string { return s.opts.Scenario }

// CNIType is the main plugin of the underlay NICs: ipvlan, or macvlan where the kernel has no ipvlan.
func (s *Sandbox) CNIType() string { return s.cniType }

// Node returns the named node.
func (s *Sandbox) Node(name string) *Node {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// startController runs the controller with its webhooks registered by URL on loopback.
func (s *Sandbox) startController(ctx context.Context) error {
	webhookPort, err := freePort()
	if err != nil {
		return err
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	s.ControllerAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	cfg := controller.DefaultConfig()
	cfg.HealthAddr = s.ControllerAddr
	cfg.MetricsAddr = "0"
	cfg.LeaderElection = false
	cfg.WebhookPort = webhookPort
	cfg.WebhookHost = "127.0.0.1"
	cfg.WebhookURLHost = "127.0.0.1"
	cfg.WebhookCertDir = filepath.Join(s.opts.Dir, "webhook-certs")
	cfg.EnableIPv6 = false
	cfg.EnableStatefulSet = false // the guides' --set ipam.enableStatefulSet=false
	cfg.CNIConfigDir = filepath.Join(s.opts.Dir, "cni-conf")
	cfg.SkipNameValidation = true
	cfg.Logger = s.logs.logger("controller")
	if err := os.MkdirAll(cfg.CNIConfigDir, 0o755); err != nil {
		return err
	}
	// The node's CNI configuration directory as Multus leaves it: the controller reads it to
	// resolve podCIDRType auto.
	if def := s.sc.clusterDefaultNAD(s.cniType); def != "" {
		multus := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","clusterNetwork":%q}`, def)
		if err := os.WriteFile(filepath.Join(cfg.CNIConfigDir, "00-multus.conf"), []byte(multus), 0o644); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithCancel(s.ctx)
	s.ctrl = &component{cancel: cancel, done: make(chan error, 1)}
	go func() { s.ctrl.done <- controller.Run(cctx, cfg, s.Config) }()
	s.progress("controller: started (webhooks on 127.0.0.1:%d, HTTP API on %s)", webhookPort, s.ControllerAddr)
	return s.waitWebhooks(ctx)
}

// startAgent runs the node's agent with its socket in the node's RunDir.
func (n *Node) startAgent(_ context.Context) error {
	s := n.sb
	cfg := agent.DefaultConfig(n.Name)
	cfg.SocketPath = filepath.Join(n.RunDir, "spiderpool.sock")
	cfg.HealthAddr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	cfg.EnableIPv6 = false
	cfg.EnableStatefulSet = false
	cfg.ClusterDefaultNAD = s.sc.clusterDefaultNAD(s.cniType)
	cfg.Logger = s.logs.logger("agent-" + n.Name)
	actx, cancel := context.WithCancel(s.ctx)
	n.agent = &component{cancel: cancel, done: make(chan error, 1)}
	go func() { n.agent.done <- agent.Run(actx, cfg, s.Config) }()
	return nil
}

// RestartAgent stops the node's agent and starts it again, as a DaemonSet rollout would.
func (s *Sandbox) RestartAgent(ctx context.Context, node string) error {
	n := s.Node(node)
	if n == nil {
		return fmt.Errorf("no node %q", node)
	}
	if err := n.agent.stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop agent on %s: %w", node, err)
	}
	if n.guest != nil {
		n.startGuestAgent()
		return nil
	}
	return n.startAgent(ctx)
}

// Close tears everything down: pods (CNI DEL), kubelets, agents, controller, namespaces,
// control plane. It is safe to call twice.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, n := range s.Nodes {
		if n.kubelet != nil {
			n.kubelet.stop()
		}
	}
	// Pods first, through the plugins, while the agents still answer: the host side of each pod
	// (routes, rules) goes the way it would on a node.
	for _, n := range s.Nodes {
		if n.kubelet != nil {
			errs = append(errs, n.kubelet.teardownAll(context.Background()))
		}
	}
	s.cancel()
	for _, n := range s.Nodes {
		if n.kubeletProc != nil {
			if err := n.kubeletProc.stop(30 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("kubelet %s: %w", n.Name, err))
			}
		}
		if n.agent != nil {
			if err := n.agent.stop(30 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("agent %s: %w", n.Name, err))
			}
		}
	}
	if s.ctrl != nil {
		if err := s.ctrl.stop(30 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("controller: %w", err))
		}
	}
	for _, n := range s.Nodes {
		if n.guest != nil {
			fmt.Fprintf(s.opts.Progress, "node %s: guest peak memory %d MiB\n", n.Name, n.guest.PeakMiB())
			if err := n.guest.Close(); err != nil {
				errs = append(errs, fmt.Errorf("node %s guest: %w", n.Name, err))
			}
		}
	}
	for _, f := range s.forwarders {
		f.Close()
	}
	if s.lab != nil {
		errs = append(errs, s.lab.Close())
	}
	if s.env != nil {
		errs = append(errs, s.env.Stop())
	}
	if s.logs != nil {
		s.logs.close()
	}
	return errors.Join(errs...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// nodeAddr is the address of a node NIC: the subnet's base plus 10 + the node's index (the
// guides' own addresses where a scenario gives them).
func nodeAddr(sub netsim.Subnet, host netip.Addr) netip.Prefix {
	return netip.PrefixFrom(host, sub.CIDR.Bits())
}
