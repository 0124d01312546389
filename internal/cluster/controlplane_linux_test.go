package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// The test's underlay: the control plane and a client namespace on one switch subnet.
var (
	testSubnet      = netip.MustParsePrefix("10.6.0.0/16")
	testGateway     = netip.MustParseAddr("10.6.0.1")
	testAdvertise   = netip.MustParsePrefix("10.6.0.2/16")
	testClient      = netip.MustParsePrefix("10.6.0.3/16")
	testServiceCIDR = netip.MustParsePrefix("10.233.0.0/18")
	testPodCIDR     = netip.MustParsePrefix("10.244.64.0/18")
)

const labPrefix = "cpt"

// requireTools skips the test unless it runs as root and every binary it runs has been built.
func requireTools(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	bin, err := testenv.ToolsBin()
	if err != nil {
		t.Skipf("control plane binaries not built: %v", err)
	}
	if err := checkTools(bin); err != nil {
		t.Skipf("control plane binaries not built: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bin, "kubectl")); err != nil {
		t.Skipf("kubectl missing in %s: run `make tools` to build it", bin)
	}
	return bin
}

func TestPrivilegedControlPlane(t *testing.T) {
	bin := requireTools(t)
	routesBefore := hostRoutes(t)

	if err := netsim.Cleanup(labPrefix); err != nil {
		t.Fatalf("remove a crashed run's namespaces: %v", err)
	}
	lab, err := netsim.New(netsim.Config{Prefix: labPrefix, Subnets: []netsim.Subnet{{CIDR: testSubnet, Gateway: testGateway}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	cpNode, err := lab.Attach("cp", netsim.NIC{Name: "eth0", Addr: testAdvertise})
	if err != nil {
		t.Fatal(err)
	}
	clientNode, err := lab.Attach("client", netsim.NIC{Name: "eth0", Addr: testClient})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	cp, err := StartControlPlane(ctx, ControlPlaneOptions{
		Dir:           dir,
		ToolsBin:      bin,
		NetNS:         cpNode.NS,
		NetNSPath:     cpNode.NSPath,
		AdvertiseAddr: testAdvertise.Addr(),
		ServiceCIDR:   testServiceCIDR,
		PodCIDR:       testPodCIDR,
		Progress:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cp.Stop()
		}
	})
	t.Logf("control plane started in %s", round(time.Since(begin)))
	for _, c := range cp.Components() {
		t.Logf("%-24s pid %-7d ready after %-6s RSS %s", c.Name, c.PID, round(c.Ready), rss(c.PID))
	}
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ReadyzThroughHostForward", func(t *testing.T) {
		if !strings.HasPrefix(cp.HostURL(), "https://127.0.0.1:") {
			t.Errorf("host URL %s is not on the host's loopback", cp.HostURL())
		}
		body, err := admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Errorf("/readyz: %q, %v", body, err)
		}
	})

	// Defect 4: every Kubernetes component reports its real version.
	t.Run("KubectlVersionIsV1.37.2", func(t *testing.T) {
		out := kubectl(t, ctx, bin, cp.AdminKubeconfig(), "version", "-o", "json")
		var v struct {
			ClientVersion struct{ GitVersion string } `json:"clientVersion"`
			ServerVersion struct{ GitVersion string } `json:"serverVersion"`
		}
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("kubectl version output %q: %v", out, err)
		}
		if v.ClientVersion.GitVersion != KubernetesVersion || v.ServerVersion.GitVersion != KubernetesVersion {
			t.Errorf("client %q, server %q; want %s for both", v.ClientVersion.GitVersion, v.ServerVersion.GitVersion, KubernetesVersion)
		}
	})

	t.Run("KubectlGetRawVersion", func(t *testing.T) {
		out := kubectl(t, ctx, bin, cp.AdminKubeconfig(), "get", "--raw", "/version")
		var v struct{ GitVersion string }
		if err := json.Unmarshal(out, &v); err != nil || v.GitVersion != KubernetesVersion {
			t.Errorf("/version: %s (%v)", out, err)
		}
	})

	t.Run("DefaultServiceAccount", func(t *testing.T) {
		if _, err := admin.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
	})

	t.Run("NodeCredentialsOnlyTheirOwnNode", func(t *testing.T) {
		creds, err := cp.PKI().NodeCredentials("worker-a")
		if err != nil {
			t.Fatal(err)
		}
		kubelet, err := kubernetes.NewForConfig(cp.HostConfig(creds))
		if err != nil {
			t.Fatal(err)
		}
		node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
		if _, err := kubelet.CoreV1().Nodes().Create(ctx, node("worker-a"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create own Node: %v", err)
		}
		_, err = kubelet.CoreV1().Nodes().Create(ctx, node("worker-b"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create another node's Node: %v, want Forbidden", err)
		}

		// With PodCIDR set, kube-controller-manager gives the node a range of it.
		var podCIDR string
		for deadline := time.Now().Add(30 * time.Second); podCIDR == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			n, err := admin.CoreV1().Nodes().Get(ctx, "worker-a", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			podCIDR = n.Spec.PodCIDR
		}
		p, err := netip.ParsePrefix(podCIDR)
		if err != nil || p.Bits() != 24 || !testPodCIDR.Contains(p.Addr()) {
			t.Errorf("node podCIDR %q, want a /24 of %s", podCIDR, testPodCIDR)
		}
	})

	// A client on the switch (a node) reaches the apiserver with its in-network kubeconfig: the
	// URL is the advertise address and the serving certificate names it.
	t.Run("InClusterKubeconfigFromTheSwitch", func(t *testing.T) {
		for _, path := range []string{cp.KubeProxyKubeconfig(), mustNodeKubeconfig(t, cp, "worker-a")} {
			cfg, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != "https://10.6.0.2:6443" {
				t.Errorf("%s: server %s", path, cfg.Host)
			}
			cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialInNS(ctx, clientNode.NS, network, addr)
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := cs.Discovery().ServerVersion(); err != nil || v.GitVersion != KubernetesVersion {
				t.Errorf("%s from %s: %v, %v", path, testClient.Addr(), v, err)
			}
		}
	})

	t.Run("NoHostRoute", func(t *testing.T) {
		for _, l := range newLines(routesBefore, hostRoutes(t)) {
			dst, ok := routeDst(l)
			switch {
			case ok && (dst.Overlaps(testSubnet) || dst.Overlaps(testServiceCIDR) || dst.Overlaps(testPodCIDR)):
				t.Errorf("the host gained a route into the sandbox: %s", l)
			default:
				t.Logf("new host route, not the sandbox's: %s", l)
			}
		}
	})

	comps := cp.Components()
	stopBegin := time.Now()
	if err := cp.Stop(); err != nil {
		t.Error(err)
	}
	stopped = true
	t.Logf("stopped in %s", round(time.Since(stopBegin)))
	for _, c := range comps {
		if alive(c.PID) {
			t.Errorf("%s (pid %d) survives Stop", c.Name, c.PID)
		}
	}
	if left := processesNaming(cp.Dir()); len(left) > 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, pidsDir, "*")); len(files) != 0 {
		t.Errorf("pid files left after Stop: %v", files)
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(cp.HostURL(), "https://"), time.Second)
	if err == nil {
		conn.Close()
		t.Error("the host forward still accepts after Stop")
	}
}

// TestPrivilegedControlPlaneReportsADyingComponent starts a control plane whose kube-apiserver
// exits at once: the start fails with the component's name and the tail of its log, and leaves no
// process behind.
func TestPrivilegedControlPlaneReportsADyingComponent(t *testing.T) {
	real := requireTools(t)
	bin := t.TempDir()
	for _, name := range []string{Etcd, ControllerManager, Scheduler} {
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	fake := "#!/bin/sh\necho 'E0101 bad configuration: the test says no' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, APIServer), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	n := testutil.NewNS(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	cp, err := StartControlPlane(ctx, ControlPlaneOptions{
		Dir: dir, ToolsBin: bin, NetNS: n,
		AdvertiseAddr: netip.MustParseAddr("127.0.0.1"), ServiceCIDR: testServiceCIDR, Progress: t.Logf,
	})
	t.Logf("failed after %s", round(time.Since(begin)))
	if err == nil {
		_ = cp.Stop()
		t.Fatal("the control plane started without an apiserver")
	}
	t.Log(err)
	for _, want := range []string{"kube-apiserver", "exit status 3", "the test says no", filepath.Join(dir, logsDir, "kube-apiserver.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q", want)
		}
	}
	if left := processesNaming(dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, pidsDir, "*")); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

// processesNaming lists the running processes whose command line names dir.
func processesNaming(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if argv := cmdline(pid); alive(pid) && namesDir(argv, dir) {
			out = append(out, strconv.Itoa(pid)+" "+strings.Join(argv, " "))
		}
	}
	return out
}

// TestKubernetesVersionIsTheToolsPin keeps KubernetesVersion in step with what hack/tools builds.
func TestKubernetesVersionIsTheToolsPin(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "hack", "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "k8s.io/kubernetes" {
			if f[1] != KubernetesVersion {
				t.Errorf("hack/tools pins k8s.io/kubernetes %s, KubernetesVersion is %s", f[1], KubernetesVersion)
			}
			return
		}
	}
	t.Error("hack/tools/go.mod does not require k8s.io/kubernetes")
}

func mustNodeKubeconfig(t *testing.T, cp *ControlPlane, node string) string {
	t.Helper()
	path, err := cp.NodeKubeconfig(node)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func kubectl(t *testing.T, ctx context.Context, bin, kubeconfig string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	// kubectl keeps a discovery cache under $HOME.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// hostRoutes lists every route of the test process's namespace, both families, all tables.
func hostRoutes(t *testing.T) []string {
	t.Helper()
	var lines []string
	for _, family := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", family, "route", "show", "table", "all").Output()
		if err != nil {
			t.Fatalf("ip %s route show table all: %v", family, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func newLines(before, after []string) []string {
	var out []string
	for _, l := range after {
		if !slices.Contains(before, l) {
			out = append(out, l)
		}
	}
	return out
}

// routeDst parses the destination of an `ip route` line; false for default routes and lines it
// cannot read.
func routeDst(line string) (netip.Prefix, bool) {
	f := strings.Fields(line)
	if len(f) > 1 && slices.Contains([]string{"unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat"}, f[0]) {
		f = f[1:]
	}
	if len(f) == 0 || f[0] == "default" {
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(f[0]); err == nil {
		return p, true
	}
	if a, err := netip.ParseAddr(f[0]); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// rss returns the resident set size of pid as /proc reports it.
func rss(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func TestRouteDst(t *testing.T) {
	for line, want := range map[string]string{
		"10.6.0.0/16 dev eth0 proto kernel scope link src 10.6.0.2":   "10.6.0.0/16",
		"local 10.6.0.2 dev eth0 table local proto kernel scope host": "10.6.0.2/32",
		"broadcast 10.6.255.255 dev eth0 table local scope link":      "10.6.255.255/32",
		"fe80::/64 dev eth0 proto kernel metric 256 pref medium":      "fe80::/64",
		"default via 10.6.0.1 dev eth0":                               "",
		"unreachable default dev lo table 100":                        "",
	} {
		got, ok := routeDst(line)
		if (want == "") == ok || (ok && got.String() != want) {
			t.Errorf("%q: %v %v, want %q", line, got, ok, want)
		}
	}
}
