package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// The seeds' own chain, ipvlan (master eth0, L2 mode) + spiderpool IPAM + coordinator in underlay
// mode, needs ipvlan, which this host's kernel lacks: the node is a user-mode-linux guest. Its eth0
// is a tap into a namespace of the test that plays the underlay's gateway (10.99.0.1), relays the
// guest's API traffic to the test control plane, and is the outside host of the nodePort probe
// (the guest half opens a control port so that the host half can probe while the pods live). Inside
// the guest run a real agent (in the test process), the reference ipvlan plugin and our plugins
// through libcni, and the checks of the macvlan underlay test.

const (
	umlNode    = "uml-node"
	umlNodeIP  = "10.99.0.11"
	umlGateway = "10.99.0.1"
	umlCtlPort = "9999"
	umlPool    = "uml-ipvlan"
)

// umlNodeMAC is the node NIC's address: the only source MAC the "VPC" lets in.
var umlNodeMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x99, 0x00, 0x11}

// Environment of the guest half.
const (
	envUMLKubeconfig = "SPIDERPOOL_UML_KUBECONFIG"
	envUMLPlugins    = "SPIDERPOOL_UML_PLUGINS"
	envUMLTools      = "SPIDERPOOL_UML_TOOLS"
)

func TestIPVlanUnderlayInUMLGuest(t *testing.T) {
	if uml.InGuest() {
		t.Skip("the host half")
	}
	uml.Require(t)
	tools, err := testenv.ToolsBin()
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(filepath.Join(tools, "ipvlan")); err != nil {
		t.Skipf("the reference ipvlan plugin is not built (make tools): %v", err)
	}
	plugins := ourPluginDir(t)

	sw := testutil.NewNS(t)
	apiAddr := strings.TrimPrefix(strings.TrimSuffix(env.Config.Host, "/"), "https://")
	ap := netip.MustParseAddrPort(apiAddr)
	fw, err := netsim.ForwardTCP(sw, netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port()), apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	kubeconfig := guestKubeconfig(t, fmt.Sprintf("https://%s:%d", umlGateway, ap.Port()))

	makeNode(t, umlNode, nil)
	startCoordinatorController(t)
	createWithCleanup(t, guideKubeadmConfig())
	createGuideCoordinator(t, "cluster")
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: umlPool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.99.0.0/16", IPs: []string{"10.99.1.10-10.99.1.19"},
			Gateway: ptr.To(umlGateway), NodeName: []string{umlNode}},
	}
	if err := env.Client.Create(testContext(t), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteIgnoringFinalizers(context.Background(), t, p) })

	g := uml.Boot(t, uml.Options{
		// ipvlan pulls in the ipv6 module; with IPv6 on, the guest's vector NIC stops passing
		// traffic once it loads (measured: RX 0, one TX drop), so it loads with IPv6 off. The guest
		// kernel has no nf_tables for IPv4: the guest half runs iptables-legacy on these modules
		// (veth for the coordinator's pair).
		Memory: "512M", NetNS: sw, Modules: []string{"ipv6 disable_ipv6=1", "ipvlan", "macvlan", "veth",
			"ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle", "ip6_tables", "ip6table_filter",
			"ip6table_nat", "ip6table_mangle", "nf_nat", "xt_conntrack", "xt_mark", "xt_connmark",
			"xt_MASQUERADE", "xt_nat", "xt_tcpudp", "xt_addrtype"},
		// Configured at boot: a vector NIC taken down and up again (renamed, moved to another
		// namespace) stops passing traffic.
		NICs: []uml.NIC{{Tap: "umltap0", Name: "eth0", MAC: umlNodeMAC, Addrs: []netip.Prefix{netip.MustParsePrefix(umlNodeIP + "/16")},
			HostAddrs: []netip.Prefix{netip.MustParsePrefix(umlGateway + "/16")}}},
	})
	t.Logf("guest booted in %s", g.BootTime().Round(time.Millisecond))
	// The "VPC": like a cloud network, the switch drops frames whose source MAC is not the
	// node NIC's own. ipvlan pods share that MAC; macvlan pods have their own.
	vpc := func(op string) {
		testutil.InNS(t, sw, func() error {
			for _, chain := range []string{"INPUT", "FORWARD"} {
				argv := []string{"-w", op, chain, "-i", "umltap0", "-m", "mac", "!", "--mac-source", umlNodeMAC.String(), "-j", "DROP"}
				if out, err := exec.Command("iptables", argv...).CombinedOutput(); err != nil {
					return fmt.Errorf("iptables %s: %v: %s", strings.Join(argv, " "), err, out)
				}
			}
			return nil
		})
	}
	vpc("-A")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("cd /tmp && exec env %s=1 %s=%s %s=%s %s=%s %s -test.run '^TestIPVlanUnderlayGuestHalf$' -test.v -test.count=1 -test.timeout=8m",
		uml.GuestEnv, envUMLKubeconfig, uml.GuestPath(kubeconfig), envUMLPlugins, uml.GuestPath(plugins), envUMLTools, uml.GuestPath(tools), g.Path(exe))
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	type result struct {
		stdout, stderr string
		code           int
		err            error
	}
	ran := make(chan result, 1)
	start := time.Now()
	go func() {
		stdout, stderr, code, err := g.Run(ctx, script)
		ran <- result{stdout, stderr, code, err}
	}()
	// The outside host's part, while the guest half holds its pods: the gateway namespace reaches
	// the pods and the node's nodePort (externalTrafficPolicy Local), whose replies must return
	// through the node: with the coordinator's reply mark they do, without it they do not.
	ctl := func(cmd string) (string, error) { return umlControl(sw, cmd) }
	var r result
	err = testenv.WaitFor(ctx, func(context.Context) (bool, error) {
		select {
		case r = <-ran:
			return false, fmt.Errorf("the guest half ended before it was ready")
		default:
		}
		out, err := ctl("pods")
		return err == nil && out != "", nil
	})
	if err == nil {
		pods, _ := ctl("pods")
		aIP, bIP, _ := strings.Cut(pods, " ")
		expectPing(t, "outside host -> pod-a", sw, netip.MustParseAddr(aIP))
		expectTCP(t, "outside host -> pod-b", sw, bIP+":8080", "pod-b")
		expectTCP(t, "outside host -> node nodePort -> pod-b", sw, umlNodeIP+":30080", "pod-b")
		if out, err := ctl("drop-mark"); err != nil || out != "ok" {
			t.Errorf("drop-mark: %q %v", out, err)
		}
		if got, err := netsim.DialTCP(sw, netip.Addr{}, netip.MustParseAddrPort(umlNodeIP+":30080"), 2*time.Second); err == nil {
			t.Errorf("without the coordinator's reply mark the nodePort still answered %q", got)
		}
		if out, err := ctl("restore-mark"); err != nil || out != "ok" {
			t.Errorf("restore-mark: %q %v", out, err)
		}
		expectTCP(t, "outside host -> nodePort, mark rule back", sw, umlNodeIP+":30080", "pod-b")
		// Why the guides choose ipvlan: everything above crossed the VPC; a macvlan pod on the
		// same node, pool and coordinator does not, until the MAC filter goes.
		if out, err := ctl("macvlan-ping"); err != nil || !strings.HasPrefix(out, "blocked") {
			t.Errorf("a macvlan pod behind the VPC's MAC filter: %q %v; want its ping to the gateway blocked", out, err)
		} else {
			t.Logf("macvlan pod behind the VPC: %s", out)
		}
		vpc("-D")
		if out, err := ctl("macvlan-ping"); err != nil || out != "reached" {
			t.Errorf("the same macvlan pod without the MAC filter: %q %v; want it to reach the gateway", out, err)
		}
		_, _ = ctl("done")
		r = <-ran
	} else if r.stdout == "" {
		t.Errorf("the guest half never opened its control port: %v", err)
		cancel()
		r = <-ran
	}
	t.Logf("guest half ran in %s, exit %d:\n%s%s", time.Since(start).Round(time.Millisecond), r.code, r.stdout, r.stderr)
	if r.err != nil || r.code != 0 || !strings.Contains(r.stdout, "--- PASS: TestIPVlanUnderlayGuestHalf") {
		t.Fatalf("the guest half failed (exit %d, %v)", r.code, r.err)
	}
	// The guest released what it allocated.
	if got := poolRecords(t, umlPool); len(got) != 0 {
		t.Errorf("records left after the guest's DELs: %v", got)
	}
}

// guestKubeconfig is the control plane's kubeconfig with the guest's route to it: the switch's
// forwarder, checked against the apiserver certificate's name localhost.
func guestKubeconfig(t *testing.T, server string) string {
	t.Helper()
	cfg, err := clientcmd.Load(env.KubeConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
		c.TLSServerName = "localhost"
	}
	dir, err := os.MkdirTemp("", "uml-kube-") // under /tmp: the guest sees it read-only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestIPVlanUnderlayGuestHalf is the part of TestIPVlanUnderlayInUMLGuest that runs inside the
// guest; elsewhere it skips.
func TestIPVlanUnderlayGuestHalf(t *testing.T) {
	if !uml.InGuest() || os.Getenv(envUMLKubeconfig) == "" {
		t.Skip("runs inside the user-mode-linux guest of TestIPVlanUnderlayInUMLGuest")
	}
	// iptables (and the coordinator's go-iptables) find the legacy flavour first in PATH.
	legacy := "/tmp/iptables-legacy"
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		if err := os.Symlink("/usr/sbin/xtables-legacy-multi", filepath.Join(legacy, name)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", legacy+":"+os.Getenv("PATH"))
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	// The node's NIC, and an outside host on the same switch (eth1 moved into a namespace).
	run("ip", "route", "add", "default", "via", umlGateway)
	// A node forwards between its pods and its NICs (kubelet and kube-proxy make sure of it).
	run("sysctl", "-w", "net.ipv4.ip_forward=1")
	host, err := ns.GetCurrentNS()
	if err != nil {
		t.Fatal(err)
	}

	restConfig, err := clientcmd.BuildConfigFromFlags("", os.Getenv(envUMLKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(restConfig, client.Options{Scheme: testenv.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig(umlNode)
	cfg.SocketPath = "/run/spidernet/spiderpool.sock"
	cfg.HealthAddr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	// The chart's default families (IPv4 and IPv6) with the guide's IPv4-only pools.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	expectPing(t, "node -> gateway (the switch)", host, netip.MustParseAddr(umlGateway))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg, restConfig) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	}()
	ac := agentclient.New(cfg.SocketPath, agentclient.WithTimeout(2*time.Second))
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	err = testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			return false, fmt.Errorf("agent exited: %w", err)
		default:
		}
		return ac.Healthy(ctx) == nil, nil
	})
	if err != nil {
		t.Fatalf("agent in the guest never became healthy: %v", err)
	}

	// The plugins inherit the test's environment: they log to the guest's /tmp, not to the host's
	// /var/log/spidernet, which the guest sees.
	t.Setenv(cnilog.DirEnv, t.TempDir())
	chain := func(mainType, mode string) []byte {
		b, err := json.Marshal(map[string]any{
			"cniVersion": "1.0.0", "name": mainType + "-eth0",
			"plugins": []any{
				map[string]any{"type": mainType, "master": "eth0", "mode": mode,
					"ipam": map[string]any{"type": "spiderpool", "default_ipv4_ippool": []string{umlPool}}},
				map[string]any{"type": "coordinator", "mode": "underlay"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	conflist, macvlanList := chain("ipvlan", "l2"), chain("macvlan", "bridge")
	var macPod *guestPod
	cni := netsim.NewCNI([]string{os.Getenv(envUMLPlugins), os.Getenv(envUMLTools)}, "/tmp/cni-cache", nil)
	node := &netsim.Node{Name: umlNode, NS: host}
	before, err := netsim.HostState(host)
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*guestPod{}
	for _, name := range []string{"pod-a", "pod-b"} {
		pods[name] = addGuestPod(t, kc, cni, node, conflist, name)
	}
	a, b := pods["pod-a"], pods["pod-b"]
	t.Logf("pod-a %s, pod-b %s", a.ip, b.ip)
	serve(t, b.ns, b.ip.String()+":8080", "pod-b")
	serve(t, host, umlNodeIP+":8080", "node")

	// ipvlan shares the master's MAC: the pods' frames carry the node NIC's address.
	testutil.InNS(t, a.ns, func() error {
		l, err := netlinkx.LinkByName("eth0")
		if err != nil {
			return err
		}
		nodeNIC, err := func() (netlink.Link, error) {
			var l netlink.Link
			err := host.Do(func(ns.NetNS) (err error) { l, err = netlinkx.LinkByName("eth0"); return err })
			return l, err
		}()
		if err != nil {
			return err
		}
		if _, ok := l.(*netlink.IPVlan); !ok || l.Attrs().HardwareAddr.String() != nodeNIC.Attrs().HardwareAddr.String() {
			t.Errorf("pod eth0 is %T with MAC %s, want ipvlan with the node NIC's %s", l, l.Attrs().HardwareAddr, nodeNIC.Attrs().HardwareAddr)
		}
		return nil
	})

	expectPing(t, "pod-a -> its own host", a.ns, netip.MustParseAddr(umlNodeIP))
	expectTCP(t, "pod-a -> its own host", a.ns, umlNodeIP+":8080", "node")
	expectPing(t, "pod-a -> pod-b", a.ns, b.ip)
	expectTCP(t, "pod-a -> pod-b", a.ns, b.ip.String()+":8080", "pod-b")
	expectPing(t, "pod-a -> gateway", a.ns, netip.MustParseAddr(umlGateway))

	// kube-proxy stand-in in the node: a ClusterIP and a nodePort (externalTrafficPolicy Local).
	for _, r := range [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-d", "10.233.0.10", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", b.ip.String() + ":8080"},
		{"-t", "nat", "-A", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst", "10.233.0.10", "-j", "MASQUERADE"},
		{"-t", "nat", "-A", "PREROUTING", "-d", umlNodeIP, "-p", "tcp", "--dport", "30080", "-j", "DNAT", "--to-destination", b.ip.String() + ":8080"},
	} {
		run(append([]string{"iptables", "-w"}, r...)...)
	}
	expectTCP(t, "pod-a -> ClusterIP", a.ns, "10.233.0.10:80", "pod-b")
	ipvlanPods := []*guestPod{a, b}
	delIPVlanPods := func() error {
		for _, p := range ipvlanPods {
			if err := cni.Del(context.Background(), node, conflist, p.pod, "eth0"); err != nil {
				return err
			}
		}
		ipvlanPods = nil
		return nil
	}
	// The host half probes from outside now; it drives the mark rule through the control port.
	markRule := netlinkx.Rule{Family: netlinkx.FamilyV4, Mark: 0x1, Table: 100, Priority: 1000}
	serveControl(t, netip.MustParseAddrPort(umlNodeIP+":"+umlCtlPort), map[string]func() string{
		"pods": func() string { return a.ip.String() + " " + b.ip.String() },
		"drop-mark": func() string {
			return result(b.ns.Do(func(ns.NetNS) error { return netlinkx.DelRule(markRule) }))
		},
		"restore-mark": func() string {
			return result(b.ns.Do(func(ns.NetNS) error { return netlinkx.EnsureRule(markRule) }))
		},
		"macvlan-ping": func() string {
			if macPod == nil {
				// A NIC is the master of ipvlan or of macvlan links, not both: the ipvlan pods go first.
				if err := delIPVlanPods(); err != nil {
					return err.Error()
				}
				macPod = addGuestPod(t, kc, cni, node, macvlanList, "pod-c")
			}
			if err := netsim.Ping(macPod.ns, netip.MustParseAddr(umlGateway), 5*time.Second); err != nil {
				return "blocked: " + err.Error()
			}
			return "reached"
		},
	}, 5*time.Minute)
	if macPod != nil {
		if err := cni.Del(context.Background(), node, macvlanList, macPod.pod, "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range [][]string{
		{"-t", "nat", "-D", "PREROUTING", "-d", "10.233.0.10", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", b.ip.String() + ":8080"},
		{"-t", "nat", "-D", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst", "10.233.0.10", "-j", "MASQUERADE"},
		{"-t", "nat", "-D", "PREROUTING", "-d", umlNodeIP, "-p", "tcp", "--dport", "30080", "-j", "DNAT", "--to-destination", b.ip.String() + ":8080"},
	} {
		run(append([]string{"iptables", "-w"}, r...)...)
	}

	if err := delIPVlanPods(); err != nil {
		t.Fatal(err)
	}
	after, err := netsim.HostState(host)
	if err != nil {
		t.Fatal(err)
	}
	// The kube-proxy stand-in created the nat table, which stays (empty): ignore its header.
	if stripNat(after) != stripNat(before) {
		t.Errorf("node state after DEL differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

func result(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// serveControl answers one-line commands on addr until "done" (or the timeout): the guest half's
// side of the host half's probes.
func serveControl(t *testing.T, addr netip.AddrPort, cmds map[string]func() string, timeout time.Duration) {
	t.Helper()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_ = ln.(*net.TCPListener).SetDeadline(deadline)
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("control port: %v", err)
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		cmd := strings.TrimSpace(line)
		out := "unknown command"
		if f, ok := cmds[cmd]; ok {
			out = f()
		} else if cmd == "done" {
			out = "ok"
		}
		_, _ = fmt.Fprintln(c, out)
		c.Close()
		if cmd == "done" {
			return
		}
	}
	t.Error("the host half never said done")
}

// umlControl sends a command to the guest half's control port from the switch namespace.
func umlControl(sw ns.NetNS, cmd string) (string, error) {
	var c net.Conn
	err := sw.Do(func(ns.NetNS) (err error) {
		c, err = net.DialTimeout("tcp", umlNodeIP+":"+umlCtlPort, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	// A command may set pods up in the guest (CNI DEL and ADD under UML): slow on a loaded machine.
	_ = c.SetDeadline(time.Now().Add(90 * time.Second))
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func stripNat(s string) string {
	var out []string
	inNat := false
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "*nat":
			inNat = true
			continue
		case inNat && l == "COMMIT":
			inNat = false
			continue
		case inNat:
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

type guestPod struct {
	ns  ns.NetNS
	pod netsim.Pod
	ip  netip.Addr
}

func newGuestNS(t *testing.T, name string) ns.NetNS {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		_ = exec.Command("ip", "netns", "delete", name).Run()
	})
	return n
}

func addGuestPod(t *testing.T, kc client.Client, cni *netsim.CNI, node *netsim.Node, conflist []byte, name string) *guestPod {
	t.Helper()
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "uml-" + name},
		Spec:       corev1.PodSpec{NodeName: umlNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := kc.Create(testContext(t), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Delete(context.Background(), obj, client.GracePeriodSeconds(0)) })
	n := newGuestNS(t, name)
	p := netsim.Pod{Namespace: obj.Namespace, Name: obj.Name, UID: string(obj.UID),
		ContainerID: "ctr" + strings.ReplaceAll(string(obj.UID), "-", ""), NetNS: "/run/netns/" + name}
	res, err := cni.Add(testContext(t), node, conflist, p, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	ip, ok := netip.AddrFromSlice(res.IPs[0].Address.IP)
	if !ok {
		t.Fatalf("ADD of %s: %v", name, res)
	}
	return &guestPod{ns: n, pod: p, ip: ip.Unmap()}
}
