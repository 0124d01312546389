package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// kernelHasIPVlan tries an ipvlan link in a throwaway namespace.
func kernelHasIPVlan() bool {
	name := fmt.Sprintf("sbx-probe-%d", os.Getpid())
	if exec.Command("ip", "netns", "add", name).Run() != nil {
		return false
	}
	defer exec.Command("ip", "netns", "delete", name).Run() //nolint:errcheck // best effort
	if exec.Command("ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1").Run() != nil {
		return false
	}
	return exec.Command("ip", "-n", name, "link", "add", "iv0", "link", "p0", "type", "ipvlan", "mode", "l2").Run() == nil
}

// clientAddr is the outside host's address on the first subnet (LoadBalancer clients).
func (sc *scenario) clientAddr() netip.Prefix {
	if sc.name == ScenarioOverlay {
		return netip.MustParsePrefix("10.6.100.100/16")
	}
	return netip.MustParsePrefix("172.31.206.100/20")
}

// buildNetwork makes the switch, the nodes (with their Node objects) and the outside client.
func (s *Sandbox) buildNetwork() error {
	if !s.sc.kernelHasIPVlan && s.opts.Scenario == ScenarioPublicCloud {
		s.note("this kernel has no ipvlan: the NICs use macvlan (SpiderMultusConfigs macvlan-eth0/eth1) " +
			"instead of the guides' ipvlan; the IPAM, pools and coordinator are the same")
	}
	_ = netsim.Cleanup(s.opts.Prefix) // leftovers of a crashed run
	lab, err := netsim.New(netsim.Config{Prefix: s.opts.Prefix, Subnets: s.sc.subnets})
	if err != nil {
		return err
	}
	s.lab = lab
	for i, name := range s.opts.Nodes {
		var nics []netsim.NIC
		for j, sub := range s.sc.subnets {
			nics = append(nics, netsim.NIC{Name: fmt.Sprintf("eth%d", j), Addr: nodeAddr(sub, s.sc.nodeIP(i, j))})
		}
		nn, err := lab.Attach(name, nics...)
		if err != nil {
			return err
		}
		n := &Node{Name: name, Net: nn, RunDir: filepath.Join(s.opts.Dir, "nodes", name, "run"), sb: s}
		if err := os.MkdirAll(n.RunDir, 0o755); err != nil {
			return err
		}
		s.Nodes = append(s.Nodes, n)
		if err := s.createNodeObject(name, nics[0].Addr.Addr()); err != nil {
			return err
		}
		s.progress("node %s: eth0 %s%s", name, nics[0].Addr, func() string {
			if len(nics) > 1 {
				return ", eth1 " + nics[1].Addr.String()
			}
			return ""
		}())
	}
	if s.client, err = lab.Attach("client", netsim.NIC{Name: "eth0", Addr: s.sc.clientAddr()}); err != nil {
		return err
	}
	if s.opts.Scenario == ScenarioOverlay {
		// The overlay stand-in routes each node's pod range to that node, as Calico's BGP would.
		for i, n := range s.Nodes {
			for j, m := range s.Nodes {
				if i == j {
					continue
				}
				err := n.Net.Do(func() error {
					l, err := netlinkx.LinkByName("eth0")
					if err != nil {
						return err
					}
					return netlinkx.ReplaceRoute(netlinkx.Route{Dst: overlayCIDR(j), GW: s.sc.nodeIP(j, 0), Link: l})
				})
				if err != nil {
					return fmt.Errorf("overlay route on %s to %s: %w", n.Name, m.Name, err)
				}
			}
		}
	}
	s.progress("network: switch %s-switch with gateways %s, %d nodes, client %s", s.opts.Prefix, gateways(s.sc.subnets), len(s.Nodes), s.sc.clientAddr().Addr())
	return nil
}

func gateways(subs []netsim.Subnet) string {
	var out []string
	for _, s := range subs {
		out = append(out, s.Gateway.String()+" ("+s.CIDR.String()+")")
	}
	return strings.Join(out, ", ")
}

func (s *Sandbox) createNodeObject(name string, ip netip.Addr) error {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}
	if err := s.Client.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Node %s: %w", name, err)
	}
	n.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip.String()}, {Type: corev1.NodeHostName, Address: name}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}},
	}
	if err := s.Client.Status().Update(ctx, n); err != nil {
		return fmt.Errorf("Node %s status: %w", name, err)
	}
	return nil
}

// waitWebhooks waits until the apiserver reaches the controller's webhooks: a dry-run create of
// an invalid pool is refused by the webhook itself, not by a failed call.
func (s *Sandbox) waitWebhooks(ctx context.Context) error {
	bad := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox-webhook-probe"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []string{"10.1.0.1"}},
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		select {
		case err := <-s.ctrl.done:
			return false, fmt.Errorf("controller exited: %w", err)
		default:
		}
		last = s.Client.Create(ctx, bad.DeepCopy(), client.DryRunAll)
		return last != nil && strings.Contains(last.Error(), "denied the request"), nil
	})
	if err != nil {
		return fmt.Errorf("webhooks never answered (last: %v): %w", last, err)
	}
	s.progress("controller: webhooks serving (an invalid pool is refused: %s)", firstLine(last.Error()))
	return nil
}

func firstLine(s string) string {
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strings.SplitN(s, "\n", 2)[0]
}

// applyScenario applies the guide's manifests through the webhooks, as kubectl apply would.
func (s *Sandbox) applyScenario(ctx context.Context) error {
	manifests, err := s.sc.manifests(s.cniType, s.opts.Nodes)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.opts.Dir, "manifests.yaml"), manifests, 0o644); err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("decode manifests: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		// Applied, not created: the controller may have made the default SpiderCoordinator
		// already, and the guide's kubectl apply sets its spec all the same.
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.Client.Apply(actx, client.ApplyConfigurationFromUnstructured(&obj), client.FieldOwner("spiderpool-sandbox"), client.ForceOwnership)
		cancel()
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		s.progress("applied %s %s", obj.GetKind(), nsName(obj.GetNamespace(), obj.GetName()))
	}
	return nil
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// waitReady waits for the SpiderCoordinator to be Synced and every SpiderMultusConfig to have
// its NetworkAttachmentDefinition.
func (s *Sandbox) waitReady(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var scc v2beta1.SpiderCoordinator
	err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		err := s.Client.Get(ctx, client.ObjectKey{Name: "default"}, &scc)
		return err == nil && scc.Status.Phase == v2beta1.CoordinatorPhaseSynced, client.IgnoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("SpiderCoordinator default not Synced (phase %q, reason %q): %w", scc.Status.Phase, scc.Status.Reason, err)
	}
	s.progress("SpiderCoordinator default: %s, serviceCIDR %v, overlayPodCIDR %v", scc.Status.Phase, scc.Status.ServiceCIDR, scc.Status.OverlayPodCIDR)
	var smcs v2beta1.SpiderMultusConfigList
	if err := s.Client.List(ctx, &smcs); err != nil {
		return err
	}
	for _, smc := range smcs.Items {
		nad := nadObject()
		err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
			err := s.Client.Get(ctx, client.ObjectKey{Namespace: smc.Namespace, Name: smc.Name}, nad)
			return err == nil, client.IgnoreNotFound(err)
		})
		if err != nil {
			return fmt.Errorf("NetworkAttachmentDefinition %s/%s never generated: %w", smc.Namespace, smc.Name, err)
		}
		s.progress("NetworkAttachmentDefinition %s/%s generated from its SpiderMultusConfig", smc.Namespace, smc.Name)
	}
	return nil
}

func nadObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("k8s.cni.cncf.io/v1")
	u.SetKind("NetworkAttachmentDefinition")
	return u
}

// PodName is the name of the sandbox's pod of app on node.
func PodName(app, node string) string { return app + "-" + node }

// createWorkloads creates the scenario's pods, one per app per node (as the guides' DaemonSets
// make them), and waits until the kubelets report them Running.
func (s *Sandbox) createWorkloads(ctx context.Context) error {
	var names []string
	for _, w := range s.sc.workloads(s.cniType) {
		for _, n := range s.Nodes {
			name := PodName(w.app, n.Name)
			if _, err := s.CreatePod(ctx, "default", name, n.Name, map[string]string{"app": w.app}, w.annotations); err != nil {
				return err
			}
			names = append(names, name)
		}
	}
	s.progress("pods: created %s", strings.Join(names, ", "))
	return s.WaitPodsRunning(ctx, "default", names, 2*time.Minute)
}

// CreatePod creates a pod bound to node; its kubelet sets it up.
func (s *Sandbox) CreatePod(ctx context.Context, namespace, name, node string, labels, annotations map[string]string) (*corev1.Pod, error) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{Name: "web", Image: "sandbox/banner",
				Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}}},
		},
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Client.Create(cctx, p); err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", namespace, name, err)
	}
	return p, nil
}

// WaitPodsRunning waits until the named pods are Running with an IP, printing progress.
func (s *Sandbox) WaitPodsRunning(ctx context.Context, namespace string, names []string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastReport := -1
	var pending []string
	err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		pending = pending[:0]
		for _, name := range names {
			var p corev1.Pod
			if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				pending = append(pending, name)
			}
		}
		if running := len(names) - len(pending); running != lastReport {
			lastReport = running
			s.progress("pods: %d/%d running", running, len(names))
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		var reasons []string
		for _, n := range s.Nodes {
			if n.kubelet != nil {
				reasons = append(reasons, n.kubelet.lastErrors(pending)...)
			}
		}
		return fmt.Errorf("pods not running: %s (%s): %w", strings.Join(pending, ", "), strings.Join(reasons, "; "), err)
	}
	return nil
}

// Service and LoadBalancer of the scenario.
const (
	ServiceName = "test-svc"
	NodePort    = 30080
)

// programServices creates test-svc (ClusterIP) and plays kube-proxy on every node: DNAT from the
// ClusterIP to a backend, masquerade for sources outside the cluster CIDR, and a NodePort with
// externalTrafficPolicy Local to the node's own backend.
func (s *Sandbox) programServices(ctx context.Context) error {
	app := s.sc.serviceApp()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: ServiceName},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			Selector:              map[string]string{"app": app},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports:                 []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80), NodePort: NodePort, Protocol: corev1.ProtocolTCP}},
		},
	}
	if err := s.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Service %s: %w", ServiceName, err)
	}
	if err := s.Client.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
		return err
	}
	backends := map[string]string{} // node → its backend pod IP
	var first string
	for _, n := range s.Nodes {
		var p corev1.Pod
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: PodName(app, n.Name)}, &p); err != nil {
			return err
		}
		backends[n.Name] = p.Status.PodIP
		if first == "" {
			first = p.Status.PodIP
		}
	}
	for _, n := range s.Nodes {
		rules := [][]string{
			{"-t", "nat", "-N", "KUBE-SERVICES"},
			{"-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"},
			{"-t", "nat", "-A", "OUTPUT", "-j", "KUBE-SERVICES"},
			// Hairpin: a backend reaching itself through the ClusterIP is masqueraded, or its
			// reply would short-cut the node's conntrack inside the pod.
			{"-t", "nat", "-A", "KUBE-SERVICES", "-d", svc.Spec.ClusterIP, "-s", first, "-p", "tcp", "--dport", "80", "-j", "MARK", "--set-xmark", "0x4000/0x4000"},
			{"-t", "nat", "-A", "POSTROUTING", "-m", "mark", "--mark", "0x4000/0x4000", "-j", "MASQUERADE"},
			{"-t", "nat", "-A", "KUBE-SERVICES", "-d", svc.Spec.ClusterIP, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", first + ":80"},
			{"-t", "nat", "-A", "KUBE-SERVICES", "-d", s.sc.nodeIP(s.nodeIndex(n.Name), 0).String(), "-p", "tcp", "--dport", fmt.Sprint(NodePort), "-j", "DNAT", "--to-destination", backends[n.Name] + ":80"},
			{"-t", "nat", "-A", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst", svc.Spec.ClusterIP, "!", "-s", podSubnet, "-j", "MASQUERADE"},
		}
		var argvs [][]string
		for _, r := range rules {
			argvs = append(argvs, append([]string{"iptables", "-w"}, r...))
		}
		if err := n.run(argvs...); err != nil {
			return fmt.Errorf("kube-proxy rules on %s: %w", n.Name, err)
		}
	}
	s.progress("service %s: ClusterIP %s -> %s:80; NodePort %d (externalTrafficPolicy Local) on every node", ServiceName, svc.Spec.ClusterIP, first, NodePort)
	return nil
}

func (s *Sandbox) nodeIndex(name string) int {
	for i, n := range s.opts.Nodes {
		if n == name {
			return i
		}
	}
	return -1
}

// logFiles gives each component its own log file.
type logFiles struct {
	dir   string
	level slog.Level
	mu    sync.Mutex
	files []*os.File
}

func newLogFiles(dir string, level slog.Level) *logFiles { return &logFiles{dir: dir, level: level} }

func (l *logFiles) logger(name string) *slog.Logger {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l.files = append(l.files, f)
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: l.level}))
}

func (l *logFiles) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		_ = f.Close()
	}
	l.files = nil
}

// run runs commands on the node, in order, stopping at the first failure: in its namespace, or
// in its guest.
func (n *Node) run(argvs ...[]string) error {
	if n.guest != nil {
		return n.guestExec(argvs...)
	}
	return n.Net.Do(func() error {
		for _, argv := range argvs {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
			}
		}
		return nil
	})
}
