package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// The topology tests run the seeds' CNI chains the way a node runs them: libcni execs the
// reference macvlan (or ptp) plugin, our spiderpool IPAM plugin and our coordinator from a
// configuration list, inside node namespaces wired to an underlay switch namespace, with one
// real agent per node against the real control plane.

var (
	cniBinOnce sync.Once
	cniBinPath string
	cniBinErr  error
)

// ourPluginDir builds cmd/spiderpool and cmd/coordinator into one directory, once per test binary.
func ourPluginDir(t *testing.T) string {
	t.Helper()
	cniBinOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			cniBinErr = err
			return
		}
		if cniBinPath, err = os.MkdirTemp("", "cni-bin-"); err != nil {
			cniBinErr = err
			return
		}
		for _, p := range []string{"spiderpool", "coordinator"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(cniBinPath, p), "./cmd/"+p)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				cniBinErr = fmt.Errorf("build %s: %v: %s", p, err, out)
				return
			}
		}
	})
	if cniBinErr != nil {
		t.Fatal(cniBinErr)
	}
	return cniBinPath
}

// topo is one lab with a control plane behind it.
type topo struct {
	t      *testing.T
	lab    *netsim.Lab
	cni    *netsim.CNI
	nodes  map[string]*netsim.Node
	agents map[string]*runningAgent
	logDir string
}

var (
	subnet6 = netsim.Subnet{CIDR: netip.MustParsePrefix("10.6.0.0/16"), Gateway: netip.MustParseAddr("10.6.0.1")}
	subnet7 = netsim.Subnet{CIDR: netip.MustParsePrefix("10.7.0.0/16"), Gateway: netip.MustParseAddr("10.7.0.1")}
)

// newTopo builds the lab (nodes master and worker, eth0 in 10.6/16 and eth1 in 10.7/16, a client
// in 10.6/16), the Node objects and one agent per node, and a Synced SpiderCoordinator.
func newTopo(t *testing.T, mutate func(*agent.Config)) *topo {
	t.Helper()
	testutil.RequireRoot(t)
	bin, err := testenv.ToolsBin()
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "macvlan")); err != nil {
		t.Skipf("the reference CNI plugins are not built (run make tools): %v", err)
	}
	for _, tool := range []string{"ip", "iptables-save", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	prefix := fmt.Sprintf("it%d", os.Getpid()%100000)
	_ = netsim.Cleanup(prefix) // a crashed earlier run of this pid
	lab, err := netsim.New(netsim.Config{Prefix: prefix, Subnets: []netsim.Subnet{subnet6, subnet7}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("remove the lab: %v", err)
		}
	})
	tp := &topo{t: t, lab: lab, nodes: map[string]*netsim.Node{}, agents: map[string]*runningAgent{}, logDir: t.TempDir()}
	// The plugins inherit the test's environment: they log to logDir, not to the host's /var/log/spidernet.
	t.Setenv(cnilog.DirEnv, tp.logDir)
	tp.cni = netsim.NewCNI([]string{ourPluginDir(t), bin}, t.TempDir(), nil)
	for i, name := range []string{"master", "worker"} {
		n, err := lab.Attach(name,
			netsim.NIC{Name: "eth0", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 6, 0, byte(11 + i)}), 16)},
			netsim.NIC{Name: "eth1", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 7, 0, byte(11 + i)}), 16)})
		if err != nil {
			t.Fatal(err)
		}
		tp.nodes[name] = n
		makeNode(t, "topo-"+name, nil)
		tp.agents[name] = startAgent(t, "topo-"+name, mutate)
	}
	startCoordinatorController(t)
	createWithCleanup(t, guideKubeadmConfig())
	createGuideCoordinator(t, "cluster")
	ctx := testContext(t)
	err = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		var scc v2beta1.SpiderCoordinator
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "default"}, &scc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return scc.Status.Phase == v2beta1.CoordinatorPhaseSynced, nil
	})
	if err != nil {
		t.Fatalf("SpiderCoordinator default never Synced: %v", err)
	}
	return tp
}

// pool creates an IPv4 SpiderIPPool.
func (tp *topo) pool(name string, s netsim.Subnet, ips string) {
	tp.t.Helper()
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: s.CIDR.String(), IPs: []string{ips},
			Gateway: ptr.To(s.Gateway.String())},
	}
	if err := env.Client.Create(testContext(tp.t), p); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { deleteIgnoringFinalizers(context.Background(), tp.t, p) })
}

// conflist is a NAD-style configuration list: main plugin (macvlan on master) with spiderpool
// IPAM from pool, then the coordinator with extra keys.
func (tp *topo) conflist(node, name, master, pool string, coordinator map[string]any) []byte {
	tp.t.Helper()
	socket := tp.agents[node].socket
	coord := map[string]any{
		"type":                  "coordinator",
		"ipam_unix_socket_path": socket,
		"logOptions":            map[string]any{"logFile": filepath.Join(tp.logDir, node+"-coordinator.log")},
	}
	for k, v := range coordinator {
		coord[k] = v
	}
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type": "macvlan", "master": master, "mode": "bridge",
				"ipam": map[string]any{
					"type": "spiderpool", "ipam_unix_socket_path": socket,
					"default_ipv4_ippool": []string{pool},
					"log_file_path":       filepath.Join(tp.logDir, node+"-spiderpool.log"),
				},
			},
			coord,
		},
	}
	b, err := json.Marshal(list)
	if err != nil {
		tp.t.Fatal(err)
	}
	return b
}

// topoPod is a pod object and its namespace on a node.
type topoPod struct {
	obj  *corev1.Pod
	node *netsim.Node
	ns   ns.NetNS
	cni  netsim.Pod
}

func (tp *topo) newPod(name, node string) *topoPod {
	tp.t.Helper()
	obj := makePod(tp.t, "default", name, "topo-"+node, nil, nil)
	n, path, err := tp.lab.NewNS(name)
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { n.Close() })
	return &topoPod{obj: obj, node: tp.nodes[node], ns: n, cni: netsim.Pod{
		Namespace: obj.Namespace, Name: obj.Name, UID: string(obj.UID),
		ContainerID: "ctr" + strings.ReplaceAll(string(obj.UID), "-", ""), NetNS: path,
	}}
}

// resandbox is what a kubelet does after a failed ADD: a new sandbox for the same pod, with a
// new network namespace and container ID (the failed one's namespace is gone with it).
func (tp *topo) resandbox(p *topoPod, attempt int) *topoPod {
	tp.t.Helper()
	name := fmt.Sprintf("%s-%d", p.obj.Name, attempt)
	n, path, err := tp.lab.NewNS(name)
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { n.Close() })
	if err := tp.lab.DeleteNS(strings.TrimPrefix(filepath.Base(p.cni.NetNS), tp.lab.Prefix()+"-")); err != nil {
		tp.t.Fatal(err)
	}
	q := *p
	q.ns = n
	q.cni.NetNS = path
	q.cni.ContainerID = fmt.Sprintf("%s%d", p.cni.ContainerID, attempt)
	return &q
}

// add runs ADD and returns the interface's IPv4 address.
func (tp *topo) add(p *topoPod, conflist []byte, ifName string) netip.Addr {
	tp.t.Helper()
	res, err := tp.cni.Add(testContext(tp.t), p.node, conflist, p.cni, ifName)
	if err != nil {
		tp.t.Fatal(err)
	}
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok && a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	tp.t.Fatalf("ADD %s of %s: no IPv4 address in %v", ifName, p.obj.Name, res)
	return netip.Addr{}
}

func (tp *topo) del(p *topoPod, conflist []byte, ifName string) {
	tp.t.Helper()
	if err := tp.cni.Del(testContext(tp.t), p.node, conflist, p.cni, ifName); err != nil {
		tp.t.Fatal(err)
	}
}

// iptables runs iptables inside a namespace.
func iptables(t *testing.T, n ns.NetNS, args ...string) {
	t.Helper()
	testutil.InNS(t, n, func() error {
		if out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	})
}

// txPackets returns the transmitted-packet counter of a link in n.
func txPackets(t *testing.T, n ns.NetNS, link string) uint64 {
	t.Helper()
	var tx uint64
	testutil.InNS(t, n, func() error {
		l, err := netlinkx.LinkByName(link)
		if err != nil {
			return err
		}
		tx = l.Attrs().Statistics.TxPackets
		return nil
	})
	return tx
}

func serve(t *testing.T, n ns.NetNS, at string, banner string) {
	t.Helper()
	srv, err := netsim.ServeTCP(n, netip.MustParseAddrPort(at), banner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
}

func expectTCP(t *testing.T, what string, n ns.NetNS, dst, banner string) {
	t.Helper()
	got, err := netsim.DialTCP(n, netip.Addr{}, netip.MustParseAddrPort(dst), 3*time.Second)
	if err != nil || got != banner {
		t.Errorf("%s: tcp %s answered %q (%v), want %q", what, dst, got, err, banner)
	}
}

func expectPing(t *testing.T, what string, n ns.NetNS, dst netip.Addr) {
	t.Helper()
	if err := netsim.Ping(n, dst, 3*time.Second); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// TestUnderlayTopologyThroughLibcni is the public-cloud guides' underlay chain with macvlan:
// eth0 and net1 of pod-a on master, eth0 of pod-b on worker, each macvlan + spiderpool + the
// coordinator, and the connectivity the coordinator exists for.
func TestUnderlayTopologyThroughLibcni(t *testing.T) {
	tp := newTopo(t, nil)
	master, worker := tp.nodes["master"], tp.nodes["worker"]
	client, err := tp.lab.Attach("client", netsim.NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.6.0.100/16")})
	if err != nil {
		t.Fatal(err)
	}
	tp.pool("topo-eth0", subnet6, "10.6.1.10-10.6.1.19")
	tp.pool("topo-eth1", subnet7, "10.7.1.10-10.7.1.19")
	coord := map[string]any{"mode": "underlay", "podMACPrefix": "0a:1b"}
	eth0 := map[string][]byte{}
	for _, n := range []string{"master", "worker"} {
		eth0[n] = tp.conflist(n, "macvlan-eth0", "eth0", "topo-eth0", coord)
	}
	net1 := tp.conflist("master", "macvlan-eth1", "eth1", "topo-eth1", map[string]any{"mode": "underlay"})

	// The nodes as they are before any pod: what the plugins add must be gone after the last DEL.
	// The kube-proxy stand-in's chains exist before the pods, as on a real node; the test fills
	// them once it knows the backends and flushes them before comparing the nodes' state.
	before := map[string]string{}
	for _, n := range []*netsim.Node{master, worker} {
		for _, c := range [][2]string{{"KUBE-SERVICES", "PREROUTING"}, {"KUBE-POSTROUTING", "POSTROUTING"}} {
			iptables(t, n.NS, "-t", "nat", "-N", c[0])
			iptables(t, n.NS, "-t", "nat", "-A", c[1], "-j", c[0])
		}
		s, err := netsim.HostState(n.NS)
		if err != nil {
			t.Fatal(err)
		}
		before[n.Name] = s
	}
	podA, podB := tp.newPod("pod-a", "master"), tp.newPod("pod-b", "worker")
	aIP := tp.add(podA, eth0["master"], "eth0")
	bIP := tp.add(podB, eth0["worker"], "eth0")

	// kube-proxy stand-ins; the test removes them again before comparing the nodes' state.
	const clusterIP, nodePort = "10.233.0.10", "30080"
	var kubeProxy [][]string
	for _, n := range []string{"master", "worker"} {
		kubeProxy = append(kubeProxy,
			[]string{n, "nat", "KUBE-SERVICES", "-d", clusterIP, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", bIP.String() + ":8080"},
			// kube-proxy masquerades service traffic from sources outside the cluster CIDR.
			[]string{n, "nat", "KUBE-POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst", clusterIP, "-j", "MASQUERADE"})
	}
	kubeProxy = append(kubeProxy, []string{"worker", "nat", "KUBE-SERVICES", "-d", "10.6.0.12", "-p", "tcp", "--dport", nodePort, "-j", "DNAT", "--to-destination", bIP.String() + ":8080"})
	for _, r := range kubeProxy {
		iptables(t, tp.nodes[r[0]].NS, append([]string{"-t", r[1], "-A", r[2]}, r[3:]...)...)
	}
	net1IP := tp.add(podA, net1, "net1")
	t.Logf("pod-a eth0 %s net1 %s, pod-b eth0 %s", aIP, net1IP, bIP)

	serve(t, podB.ns, bIP.String()+":8080", "pod-b")
	serve(t, podA.ns, "0.0.0.0:8080", "pod-a")
	serve(t, master.NS, "10.6.0.11:8080", "master")

	// MAC prefix on the interface.
	testutil.InNS(t, podA.ns, func() error {
		l, err := netlinkx.LinkByName("eth0")
		if err != nil {
			return err
		}
		if mac := l.Attrs().HardwareAddr.String(); !strings.HasPrefix(mac, "0a:1b:") {
			t.Errorf("pod-a eth0 MAC %s, want the podMACPrefix 0a:1b", mac)
		}
		return nil
	})

	expectPing(t, "pod-a -> its own host", podA.ns, netip.MustParseAddr("10.6.0.11"))
	expectTCP(t, "pod-a -> its own host", podA.ns, "10.6.0.11:8080", "master")
	expectPing(t, "pod-a -> pod-b on the other node", podA.ns, bIP)
	expectTCP(t, "pod-a -> pod-b on the other node", podA.ns, bIP.String()+":8080", "pod-b")
	expectPing(t, "pod-a -> gateway", podA.ns, subnet6.Gateway)
	expectTCP(t, "pod-a -> ClusterIP (DNAT on master)", podA.ns, clusterIP+":80", "pod-b")
	expectPing(t, "pod-a net1 -> other subnet's gateway", podA.ns, subnet7.Gateway)
	expectPing(t, "client -> pod-a net1", client.NS, net1IP)

	// nodePort with externalTrafficPolicy Local: the client reaches worker:30080, the node DNATs
	// into pod-b through the host veth, and pod-b must answer through veth0 as well.
	expectTCP(t, "client -> worker nodePort -> pod-b", client.NS, "10.6.0.12:"+nodePort, "pod-b")
	markRule := netlinkx.Rule{Family: netlinkx.FamilyV4, Mark: 0x1, Table: 100, Priority: 1000}
	testutil.InNS(t, podB.ns, func() error { return netlinkx.DelRule(markRule) })
	if got, err := netsim.DialTCP(client.NS, netip.Addr{}, netip.MustParseAddrPort("10.6.0.12:"+nodePort), 2*time.Second); err == nil {
		t.Errorf("without the coordinator's reply mark the nodePort still answered %q: the test would not see the marks work", got)
	}
	testutil.InNS(t, podB.ns, func() error { return netlinkx.EnsureRule(markRule) })
	expectTCP(t, "client -> worker nodePort -> pod-b, mark rule back", client.NS, "10.6.0.12:"+nodePort, "pod-b")

	// Replies to traffic that arrived on net1 leave through net1 (policy table 101), not through
	// eth0, which holds the main default route.
	eth0TX, net1TX := txPackets(t, podA.ns, "eth0"), txPackets(t, podA.ns, "net1")
	for range 5 {
		expectPing(t, "client -> pod-a net1", client.NS, net1IP)
	}
	dEth0, dNet1 := txPackets(t, podA.ns, "eth0")-eth0TX, txPackets(t, podA.ns, "net1")-net1TX
	if dNet1 < 5 || dEth0 >= 5 {
		t.Errorf("replies to 5 pings on net1: net1 sent %d packets, eth0 %d; want >= 5 on net1 and fewer than 5 on eth0", dNet1, dEth0)
	}

	tp.del(podA, net1, "net1")
	tp.del(podA, eth0["master"], "eth0")
	tp.del(podB, eth0["worker"], "eth0")
	// DEL twice: idempotent.
	tp.del(podA, eth0["master"], "eth0")
	for _, r := range kubeProxy {
		iptables(t, tp.nodes[r[0]].NS, append([]string{"-t", r[1], "-D", r[2]}, r[3:]...)...)
	}
	for _, n := range []*netsim.Node{master, worker} {
		after, err := netsim.HostState(n.NS)
		if err != nil {
			t.Fatal(err)
		}
		if after != before[n.Name] {
			t.Errorf("%s after DEL differs from before ADD:\n--- before\n%s\n--- after\n%s", n.Name, before[n.Name], after)
		}
	}
	for _, pool := range []string{"topo-eth0", "topo-eth1"} {
		if got := poolRecords(t, pool); len(got) != 0 {
			t.Errorf("%s records after DEL: %v", pool, got)
		}
	}
}

// ipRoutes prints a routing table (or the rules with table < 0) of a namespace one entry per line,
// without the kernel's protocol and metric decorations.
func ipRoutes(t *testing.T, n ns.NetNS, table string) []string {
	t.Helper()
	argv := []string{"-4", "route", "show", "table", table}
	if table == "rules" {
		argv = []string{"-4", "rule"}
	}
	var out []byte
	testutil.InNS(t, n, func() (err error) {
		out, err = exec.Command("ip", argv...).CombinedOutput()
		return err
	})
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l = strings.Join(strings.Fields(l), " ")
		for _, drop := range []string{" proto kernel", " proto static", " proto boot", " metric 0"} {
			l = strings.ReplaceAll(l, drop, "")
		}
		if table == "rules" {
			if _, rest, ok := strings.Cut(l, ":"); ok {
				l = strings.TrimSpace(rest) // priorities are the kernel's (docs/design/behaviour.md#route-tuning)
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// TestOverlayTopologyThroughLibcni is the Calico-overlay guide's pod: eth0 from an overlay CNI
// (the reference ptp plugin stands in for Calico) and net1 from macvlan + spiderpool + the
// coordinator in overlay mode, on a netns node; the pod's rules and tables have docs/guides/calico-overlay.md#5-routes-inside-the-pod's shape.
func TestOverlayTopologyThroughLibcni(t *testing.T) {
	tp := newTopo(t, nil)
	master := tp.nodes["master"]
	client, err := tp.lab.Attach("client", netsim.NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.6.0.100/16")})
	if err != nil {
		t.Fatal(err)
	}
	tp.pool("topo-net1", subnet6, "10.6.1.10-10.6.1.19")
	// The overlay CIDR is the guide kubeadm-config's podSubnet (10.244.64.0/18).
	calico, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "k8s-pod-network",
		"plugins": []any{map[string]any{"type": "ptp", "ipam": map[string]any{
			"type": "host-local", "ranges": [][]map[string]string{{{"subnet": "10.244.73.0/24"}}},
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}}, "dataDir": t.TempDir(),
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	net1 := tp.conflist("master", "macvlan-overlay", "eth0", "topo-net1", map[string]any{"mode": "overlay"})

	before, err := netsim.HostState(master.NS)
	if err != nil {
		t.Fatal(err)
	}
	pod := tp.newPod("pod-overlay", "master")
	eth0IP := tp.add(pod, calico, "eth0")
	net1IP := tp.add(pod, net1, "net1")
	t.Logf("eth0 (ptp) %s, net1 (macvlan) %s", eth0IP, net1IP)
	const gw = "10.244.73.1" // host-local's gateway: the first address of the range, on the host end

	want := map[string][]string{
		"rules": {
			"from all lookup local",
			"from " + net1IP.String() + " lookup 101",
			"from " + eth0IP.String() + " lookup 100",
			"from all lookup main",
			"from all lookup default",
		},
		// docs/guides/calico-overlay.md#5-routes-inside-the-pod's listing plus what differs from the guide's cluster: the node's second
		// NIC address (10.7.0.11), the guide coordinator's hijackCIDR (169.254.0.0/16), and
		// ptp's routes instead of Calico's.
		"main": {
			"default via " + gw + " dev eth0",
			"10.6.0.0/16 dev net1 scope link src " + net1IP.String(),
			"10.6.0.11 dev eth0 scope link",
			"10.7.0.11 dev eth0 scope link",
			"10.233.0.0/18 via 10.6.0.11 dev eth0",
			"10.244.64.0/18 via 10.6.0.11 dev eth0",
			"10.244.73.0/24 via " + gw + " dev eth0 src " + eth0IP.String(),
			gw + " dev eth0 scope link src " + eth0IP.String(),
			"169.254.0.0/16 via 10.6.0.11 dev eth0",
		},
		"101": {
			"default via 10.6.0.1 dev net1",
			"10.6.0.0/16 dev net1 scope link src " + net1IP.String(),
			"10.6.0.11 dev eth0 scope link",
			"10.7.0.11 dev eth0 scope link",
			"10.233.0.0/18 via 10.6.0.11 dev eth0",
			"10.244.64.0/18 via 10.6.0.11 dev eth0",
			"169.254.0.0/16 via 10.6.0.11 dev eth0",
		},
		"100": {"default via " + gw + " dev eth0"},
	}
	for _, table := range []string{"rules", "main", "101", "100"} {
		got := ipRoutes(t, pod.ns, table)
		if strings.Join(got, "\n") != strings.Join(want[table], "\n") {
			t.Errorf("pod %s:\n%s\nwant:\n%s", table, strings.Join(got, "\n"), strings.Join(want[table], "\n"))
		}
	}

	serve(t, pod.ns, "0.0.0.0:8080", "pod-overlay")
	serve(t, master.NS, "10.6.0.11:8080", "master")
	expectTCP(t, "pod -> its node through the overlay NIC", pod.ns, "10.6.0.11:8080", "master")
	expectTCP(t, "node -> pod's overlay address", master.NS, eth0IP.String()+":8080", "pod-overlay")
	expectTCP(t, "client -> pod net1", client.NS, net1IP.String()+":8080", "pod-overlay")
	expectPing(t, "pod -> underlay gateway", pod.ns, subnet6.Gateway)

	// Replies to traffic that arrived on net1 leave through net1, although main's default route
	// is eth0's.
	eth0TX, net1TX := txPackets(t, pod.ns, "eth0"), txPackets(t, pod.ns, "net1")
	for range 5 {
		expectPing(t, "client -> pod net1", client.NS, net1IP)
	}
	dEth0, dNet1 := txPackets(t, pod.ns, "eth0")-eth0TX, txPackets(t, pod.ns, "net1")-net1TX
	if dNet1 < 5 || dEth0 >= 5 {
		t.Errorf("replies to 5 pings on net1: net1 sent %d packets, eth0 %d; want >= 5 on net1 and fewer than 5 on eth0", dNet1, dEth0)
	}

	tp.del(pod, net1, "net1")
	tp.del(pod, calico, "eth0")
	after, err := netsim.HostState(master.NS)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("master after DEL differs from before ADD:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if got := poolRecords(t, "topo-net1"); len(got) != 0 {
		t.Errorf("records after DEL: %v", got)
	}
}

// TestIPConflictAndGatewayDetection runs the macvlan chain with the agents' conflict and gateway
// detection on: an address another host answers for fails the ADD with that host's MAC and is
// held back from the next allocation; a gateway nobody answers for fails the ADD; in both cases
// the pool keeps no record of the failed pod.
func TestIPConflictAndGatewayDetection(t *testing.T) {
	tp := newTopo(t, func(c *agent.Config) {
		c.EnableIPConflictDetection = true
		c.EnableGatewayDetection = true
	})
	intruder, err := tp.lab.Attach("intruder", netsim.NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.6.2.200/16")})
	if err != nil {
		t.Fatal(err)
	}
	var intruderMAC string
	testutil.InNS(t, intruder.NS, func() error {
		l, err := netlinkx.LinkByName("eth0")
		intruderMAC = l.Attrs().HardwareAddr.String()
		return err
	})
	tp.pool("topo-conflict", subnet6, "10.6.2.200")
	tp.pool("topo-nogw", netsim.Subnet{CIDR: subnet6.CIDR, Gateway: netip.MustParseAddr("10.6.0.254")}, "10.6.3.10-10.6.3.11")
	tp.pool("topo-healthy", subnet6, "10.6.4.10-10.6.4.11")
	ctx := testContext(t)

	conflict := tp.conflist("master", "macvlan-conflict", "eth0", "topo-conflict", map[string]any{"mode": "underlay"})
	pod := tp.newPod("pod-conflict", "master")
	_, err = tp.cni.Add(ctx, pod.node, conflict, pod.cni, "eth0")
	if err == nil || !strings.Contains(err.Error(), "ip conflict") || !strings.Contains(err.Error(), "10.6.2.200") || !strings.Contains(err.Error(), intruderMAC) {
		t.Fatalf("ADD of an address the intruder holds: %v; want an ip conflict naming 10.6.2.200 and %s", err, intruderMAC)
	}
	if got := poolRecords(t, "topo-conflict"); len(got) != 0 {
		t.Errorf("records after the conflict: %v", got)
	}
	// The runtime retries: the agent holds the address back instead of failing the same way.
	pod = tp.resandbox(pod, 1)
	_, err = tp.cni.Add(ctx, pod.node, conflict, pod.cni, "eth0")
	if err == nil || strings.Contains(err.Error(), "ip conflict") {
		t.Fatalf("retry with the only address held back: %v; want a failure other than the conflict", err)
	}
	// Grow the pool: the retry gets the new address.
	p := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "topo-conflict"}, p); err != nil {
		t.Fatal(err)
	}
	p.Spec.IPs = []string{"10.6.2.200-10.6.2.201"}
	if err := env.Client.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	attempt := 1
	err = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		attempt++
		pod = tp.resandbox(pod, attempt)
		res, err := tp.cni.Add(ctx, pod.node, conflict, pod.cni, "eth0")
		if err != nil {
			lastErr = err
			return false, nil // the agent's cache may not have the grown pool yet
		}
		if got := res.IPs[0].Address.IP.String(); got != "10.6.2.201" {
			return false, fmt.Errorf("retry got %s, want 10.6.2.201", got)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("ADD after growing the pool: %v (last ADD: %v)", err, lastErr)
	}
	tp.del(pod, conflict, "eth0")

	nogw := tp.conflist("master", "macvlan-nogw", "eth0", "topo-nogw", map[string]any{"mode": "underlay"})
	pod2 := tp.newPod("pod-nogw", "master")
	_, err = tp.cni.Add(ctx, pod2.node, nogw, pod2.cni, "eth0")
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "10.6.0.254") {
		t.Fatalf("ADD with a gateway nobody answers for: %v; want unreachable naming 10.6.0.254", err)
	}
	if got := poolRecords(t, "topo-nogw"); len(got) != 0 {
		t.Errorf("records after the unreachable gateway: %v", got)
	}

	// A healthy pool passes both checks and the pod works.
	healthy := tp.conflist("master", "macvlan-healthy", "eth0", "topo-healthy", map[string]any{"mode": "underlay"})
	pod3 := tp.newPod("pod-healthy", "master")
	ip3 := tp.add(pod3, healthy, "eth0")
	expectPing(t, "healthy pod -> gateway", pod3.ns, subnet6.Gateway)
	tp.del(pod3, healthy, "eth0")
	t.Logf("healthy pod got %s", ip3)
}
