package multusconf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

const (
	networksAnnot      = "k8s.v1.cni.cncf.io/networks"
	networkStatusAnnot = "k8s.v1.cni.cncf.io/network-status"
	clusterSubnet      = "10.251.0.0/24"
	macvlanSubnet      = "10.252.0.0/24"
)

// networkStatus is one entry of the network-status annotation, the fields this test checks.
type networkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	IPs       []string `json:"ips"`
	Mac       string   `json:"mac"`
	Default   bool     `json:"default"`
}

// TestMultusThinDelegates runs the real Multus thin plugin the way a container runtime does
// (libcni, a configuration from ThinConfList on stdin, K8S_POD_* in CNI_ARGS) against a real
// apiserver: the cluster network comes from a NetworkAttachmentDefinition in kube-system (ptp +
// host-local), the pod's k8s.v1.cni.cncf.io/networks annotation adds a macvlan network twice
// (once with the default name, once with "@data0"), and DEL must take it all down again.
func TestMultusThinDelegates(t *testing.T) {
	b := newBed(t)
	pod := b.createPod(t, "multus-thin", map[string]string{networksAnnot: "macvlan-net, macvlan-net@data0"})
	list, err := ThinConfList(b.options("kube-system/cluster-net"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("configuration: %s", list)
	netconf, err := libcni.NetworkConfFromBytes(list)
	if err != nil {
		t.Fatal(err)
	}

	// Three pod lifecycles: the first ADD pays for cold binaries and a cold apiserver.
	var adds []time.Duration
	for round := range 3 {
		podNS := testutil.NewNS(t)
		rt := b.runtimeConf(pod, fmt.Sprintf("%s-%d", pod.Name, round), podNS)
		start := time.Now()
		res, err := b.cni.AddNetworkList(b.ctx, netconf, rt)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("round %d: ADD through multus: %v", round, err)
		}
		adds = append(adds, took)
		t.Logf("round %d: ADD through multus (3 delegates, NAD and pod reads, a status write) took %v", round, took)
		deleted := false
		t.Cleanup(func() {
			if !deleted {
				_ = b.cni.DelNetworkList(context.Background(), netconf, rt)
			}
		})

		// Multus prints the cluster network's result: eth0 with a host-local address.
		result, err := types100.NewResultFromResult(res)
		if err != nil {
			t.Fatal(err)
		}
		if len(result.IPs) != 1 || !inSubnet(result.IPs[0].Address.IP, clusterSubnet) {
			t.Fatalf("result IPs %v, want one address in %s", result.IPs, clusterSubnet)
		}

		// In the pod: eth0 from the cluster network, net1 and data0 from the annotation.
		addrs := podAddrs(t, podNS)
		want := map[string]string{"eth0": clusterSubnet, "net1": macvlanSubnet, "data0": macvlanSubnet}
		if len(addrs) != len(want) {
			t.Errorf("pod interfaces %v, want %v", addrs, want)
		}
		for ifname, subnet := range want {
			ips := addrs[ifname]
			if len(ips) != 1 || !inSubnet(net.ParseIP(ips[0]), subnet) {
				t.Errorf("%s has %v, want one address in %s", ifname, ips, subnet)
			}
		}
		if ip := result.IPs[0].Address.IP.String(); !slices.Contains(addrs["eth0"], ip) {
			t.Errorf("eth0 has %v, the result said %s", addrs["eth0"], ip)
		}
		for _, ifname := range []string{"net1", "data0"} {
			if l := podLink(t, podNS, ifname); l.Type() != "macvlan" {
				t.Errorf("%s is a %s, want macvlan", ifname, l.Type())
			}
		}
		if got := defaultRouteDev(t, podNS); got != "eth0" {
			t.Errorf("default route via %q, want eth0 (the cluster network's)", got)
		}

		// Multus wrote the network-status annotation, one entry per pod interface, in order.
		statuses := b.networkStatus(t, pod)
		wantStatus := []networkStatus{
			{Name: "kube-system/cluster-net", Interface: "eth0", IPs: addrs["eth0"], Default: true},
			{Name: "default/macvlan-net", Interface: "net1", IPs: addrs["net1"]},
			{Name: "default/macvlan-net", Interface: "data0", IPs: addrs["data0"]},
		}
		if len(statuses) != len(wantStatus) {
			t.Fatalf("network-status has %d entries, want %d: %+v", len(statuses), len(wantStatus), statuses)
		}
		for i, w := range wantStatus {
			g := statuses[i]
			if g.Name != w.Name || g.Interface != w.Interface || g.Default != w.Default || !slices.Equal(g.IPs, w.IPs) || g.Mac == "" {
				t.Errorf("network-status[%d] = %+v, want %+v and a MAC", i, g, w)
			}
		}
		if round == 0 {
			t.Logf("network-status: %+v", statuses)
		}
		if _, err := os.Stat(filepath.Join(b.multusCache, rt.ContainerID)); err != nil {
			t.Errorf("multus saved no delegate cache: %v", err)
		}

		// DEL through multus removes every interface and releases every address.
		start = time.Now()
		if err := b.cni.DelNetworkList(b.ctx, netconf, rt); err != nil {
			t.Fatalf("round %d: DEL through multus: %v", round, err)
		}
		deleted = true
		t.Logf("round %d: DEL through multus took %v", round, time.Since(start))
		if after := podAddrs(t, podNS); len(after) != 0 {
			t.Errorf("interfaces left in the pod after DEL: %v", after)
		}
		if _, err := os.Stat(filepath.Join(b.multusCache, rt.ContainerID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("multus delegate cache still there after DEL: %v", err)
		}
		if held := heldIPs(t, b.ipamDir); len(held) > 0 {
			t.Errorf("host-local still holds %v after DEL", held)
		}
		// A second DEL succeeds, as the CNI specification requires (without its cache Multus
		// resolves the delegates again from the pod and the NADs, and DELs them again).
		if err := b.cni.DelNetworkList(b.ctx, netconf, rt); err != nil {
			t.Errorf("round %d: second DEL: %v", round, err)
		}
	}
	slices.Sort(adds)
	t.Logf("ADD through multus: min %v, median %v, max %v", adds[0], adds[len(adds)/2], adds[len(adds)-1])

	events := &corev1.EventList{}
	if err := b.env.Client.List(b.ctx, events, client.InNamespace(pod.Namespace)); err == nil {
		n := 0
		for _, e := range events.Items {
			if e.Reason == "AddedInterface" && e.InvolvedObject.Name == pod.Name {
				n++
			}
		}
		// Not asserted: the thin plugin records events asynchronously and may exit first.
		t.Logf("AddedInterface events recorded: %d of %d", n, 3*len(adds))
	}
}

// TestMultusThinEdgeCases checks what the package documentation says about pods Multus cannot
// match and about a "namespace/name" clusterNetwork written as is.
func TestMultusThinEdgeCases(t *testing.T) {
	b := newBed(t)
	pod := b.createPod(t, "multus-edge", nil)
	list, err := ThinConfList(b.options("kube-system/cluster-net"))
	if err != nil {
		t.Fatal(err)
	}
	netconf, err := libcni.NetworkConfFromBytes(list)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("pod not found: ADD succeeds and does nothing", func(t *testing.T) {
		podNS := testutil.NewNS(t)
		ghost := pod.DeepCopy()
		ghost.Name, ghost.UID = "no-such-pod", ""
		rt := b.runtimeConf(ghost, "ghost", podNS)
		res, err := b.cni.AddNetworkList(b.ctx, netconf, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		t.Cleanup(func() { _ = b.cni.DelNetworkList(context.Background(), netconf, rt) })
		result, err := types100.NewResultFromResult(res)
		if err != nil {
			t.Fatal(err)
		}
		if len(result.IPs) != 1 || !result.IPs[0].Address.IP.Equal(net.IPv4zero) {
			t.Errorf("result IPs %v, want the placeholder 0.0.0.0", result.IPs)
		}
		if got := podAddrs(t, podNS); len(got) != 0 {
			t.Errorf("interfaces created for a missing pod: %v", got)
		}
	})

	t.Run("pod UID mismatch: ADD fails", func(t *testing.T) {
		podNS := testutil.NewNS(t)
		other := pod.DeepCopy()
		other.UID = "00000000-0000-0000-0000-000000000000"
		rt := b.runtimeConf(other, "uid-mismatch", podNS)
		_, err := b.cni.AddNetworkList(b.ctx, netconf, rt)
		t.Cleanup(func() { _ = b.cni.DelNetworkList(context.Background(), netconf, rt) })
		if err == nil || !strings.Contains(err.Error(), "expected pod UID") {
			t.Errorf("ADD with a wrong UID: %v, want a UID mismatch error", err)
		}
		if got := podAddrs(t, podNS); len(got) != 0 {
			t.Errorf("interfaces created despite the UID mismatch: %v", got)
		}
	})

	t.Run("clusterNetwork namespace/name written as is is read as a path", func(t *testing.T) {
		var raw map[string]any
		if err := json.Unmarshal(list, &raw); err != nil {
			t.Fatal(err)
		}
		plugin := raw["plugins"].([]any)[0].(map[string]any)
		plugin["clusterNetwork"] = "kube-system/cluster-net"
		delete(plugin, "multusNamespace")
		rawList, _ := json.Marshal(raw)
		bad, err := libcni.NetworkConfFromBytes(rawList)
		if err != nil {
			t.Fatal(err)
		}
		podNS := testutil.NewNS(t)
		rt := b.runtimeConf(pod, "as-path", podNS)
		_, err = b.cni.AddNetworkList(b.ctx, bad, rt)
		t.Cleanup(func() { _ = b.cni.DelNetworkList(context.Background(), bad, rt) })
		if err == nil || !strings.Contains(err.Error(), "failed to get clusterNetwork kube-system/cluster-net") {
			t.Errorf("ADD with clusterNetwork %q: %v, want Multus to fail to find it", "kube-system/cluster-net", err)
		}
	})
}

// TestMultusThinNodeConf runs the real thin plugin with the configuration the chart's Multus
// DaemonSet gets from `spiderpool-agent multus-config` (NodeConf) for the guides' two forms of
// defaultCniCRName: a bare name, which lives in the release namespace, and "namespace/name". It
// also runs the configuration the chart's template used to write, clusterNetwork
// "kube-system/cluster-net": Multus takes that for a file path and fails every ADD.
func TestMultusThinNodeConf(t *testing.T) {
	b := newBed(t)
	pod := b.createPod(t, "multus-node-conf", nil)
	conf := func(raw string) NodeConf {
		return NodeConf{
			ClusterNetwork: raw, Namespace: "kube-system",
			Kubeconfig: b.kubeconfig, ConfDir: filepath.Join(b.dir, "net.d"), BinDir: b.bin,
			LogFile: filepath.Join(b.dir, "multus.log"), LogLevel: "verbose",
		}
	}
	add := func(t *testing.T, o Options, name string) (ns.NetNS, error) {
		t.Helper()
		o.CacheDir = b.multusCache // the host's /var/lib/cni/multus stays untouched
		list, err := ThinConfList(o)
		if err != nil {
			t.Fatal(err)
		}
		netconf, err := libcni.NetworkConfFromBytes(list)
		if err != nil {
			t.Fatal(err)
		}
		podNS := testutil.NewNS(t)
		rt := b.runtimeConf(pod, name, podNS)
		_, err = b.cni.AddNetworkList(b.ctx, netconf, rt)
		t.Cleanup(func() { _ = b.cni.DelNetworkList(context.Background(), netconf, rt) })
		return podNS, err
	}

	for _, tc := range []struct {
		name, raw, wantNS, wantSubnet, wantType string
	}{
		{"bare name in the release namespace", "cluster-net", "kube-system", clusterSubnet, "veth"},
		{"namespace/name", "default/macvlan-net", "default", macvlanSubnet, "macvlan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := conf(tc.raw).Options()
			if err != nil {
				t.Fatal(err)
			}
			if o.MultusNamespace != tc.wantNS || strings.Contains(o.ClusterNetwork, "/") {
				t.Fatalf("clusterNetwork %q in multusNamespace %q, want the name alone in %s", o.ClusterNetwork, o.MultusNamespace, tc.wantNS)
			}
			podNS, err := add(t, o, "node-conf-"+tc.wantType)
			if err != nil {
				t.Fatalf("ADD through multus with defaultCniCRName %q: %v", tc.raw, err)
			}
			addrs := podAddrs(t, podNS)
			if ips := addrs["eth0"]; len(ips) != 1 || !inSubnet(net.ParseIP(ips[0]), tc.wantSubnet) {
				t.Errorf("eth0 has %v, want one address of %s in %s", ips, tc.raw, tc.wantSubnet)
			}
			if l := podLink(t, podNS, "eth0"); l.Type() != tc.wantType {
				t.Errorf("eth0 is a %s, want %s from %s", l.Type(), tc.wantType, tc.raw)
			}
		})
	}

	t.Run("the old template's namespace/name clusterNetwork fails", func(t *testing.T) {
		o, err := conf("cluster-net").Options()
		if err != nil {
			t.Fatal(err)
		}
		// What the template rendered for defaultCniCRName=cluster-net: multusNamespace was the
		// release namespace and clusterNetwork was qualified with it once more. build refuses a
		// relative path, so the JSON is edited after the fact.
		list, err := ThinConfList(o)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(list, &raw); err != nil {
			t.Fatal(err)
		}
		plugin := raw["plugins"].([]any)[0].(map[string]any)
		plugin["clusterNetwork"], plugin["cniDir"] = "kube-system/cluster-net", b.multusCache
		oldList, _ := json.Marshal(raw)
		netconf, err := libcni.NetworkConfFromBytes(oldList)
		if err != nil {
			t.Fatal(err)
		}
		podNS := testutil.NewNS(t)
		rt := b.runtimeConf(pod, "old-template", podNS)
		_, err = b.cni.AddNetworkList(b.ctx, netconf, rt)
		t.Cleanup(func() { _ = b.cni.DelNetworkList(context.Background(), netconf, rt) })
		if err == nil || !strings.Contains(err.Error(), "failed to get clusterNetwork kube-system/cluster-net") {
			t.Errorf("ADD with the old template's configuration: %v, want Multus to fail to find the path", err)
		}
		if got := podAddrs(t, podNS); len(got) != 0 {
			t.Errorf("interfaces created by a failed ADD: %v", got)
		}
	})
}

// bed is a control plane with the test networks, and libcni set up like a runtime.
type bed struct {
	env         *testenv.Env
	ctx         context.Context
	bin         string
	dir         string
	kubeconfig  string
	multusCache string
	ipamDir     string
	cni         *libcni.CNIConfig
	stderr      *bytes.Buffer // the plugins' stderr, shown when the test fails
}

func newBed(t *testing.T) *bed {
	t.Helper()
	testutil.RequireRoot(t)
	bin, err := testenv.ToolsBin()
	if err != nil {
		t.Skipf("control plane tools missing: %v", err)
	}
	for _, p := range []string{"multus", "ptp", "macvlan", "host-local"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			t.Skipf("%s missing in %s: run hack/build-tools.sh %s", p, bin, p)
		}
	}
	// ptp turns on IPv4 forwarding in the namespace it runs in, here the host's; put it back.
	const forward = "/proc/sys/net/ipv4/ip_forward"
	if was, err := os.ReadFile(forward); err == nil {
		t.Cleanup(func() { _ = os.WriteFile(forward, was, 0o644) })
	}

	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)

	dir := t.TempDir()
	b := &bed{env: env, ctx: ctx, bin: bin, dir: dir,
		kubeconfig:  filepath.Join(dir, "multus.kubeconfig"),
		multusCache: filepath.Join(dir, "multus-cache"),
		ipamDir:     filepath.Join(dir, "host-local"),
		stderr:      &bytes.Buffer{},
	}
	if err := env.WriteKubeConfig(b.kubeconfig); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.cni = libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(dir, "runtime-cache"),
		&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: b.stderr}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugins' stderr:\n%s", b.stderr)
			if log, err := os.ReadFile(filepath.Join(dir, "multus.log")); err == nil {
				t.Logf("multus log:\n%s", log)
			}
		}
	})

	// The macvlan master: one end of a veth pair whose other end lives in a throwaway
	// namespace, so that removing that namespace removes both ends even if the test dies.
	suffix := fmt.Sprintf("%x", os.Getpid()&0xffffff)
	master := "mvm" + suffix
	peerNS := testutil.NewNS(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: master}, PeerName: "mvp" + suffix}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth %s: %v", master, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(master); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	peer, err := netlink.LinkByName(veth.PeerName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peer, int(peerNS.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}

	// The networks, as NetworkAttachmentDefinitions: a configuration list for the cluster
	// network and a single configuration for the secondary one (Multus runs them through
	// different libcni calls).
	b.createNAD(t, "kube-system", "cluster-net", fmt.Sprintf(`{
		"cniVersion": "1.0.0", "name": "cluster-net",
		"plugins": [{"type": "ptp", "ipam": {"type": "host-local", "dataDir": %q,
			"ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}`, b.ipamDir, clusterSubnet))
	b.createNAD(t, "default", "macvlan-net", fmt.Sprintf(`{
		"cniVersion": "1.0.0", "name": "macvlan-net", "type": "macvlan", "master": %q, "mode": "bridge",
		"ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]]}}`, master, b.ipamDir, macvlanSubnet))
	return b
}

func (b *bed) options(clusterNetwork string) Options {
	return Options{
		Name:           "multus-cni-network",
		CNIVersion:     "1.0.0",
		Kubeconfig:     b.kubeconfig,
		ClusterNetwork: clusterNetwork,
		BinDir:         b.bin,
		ConfDir:        filepath.Join(b.dir, "net.d"),
		CacheDir:       b.multusCache,
		LogFile:        filepath.Join(b.dir, "multus.log"),
		LogLevel:       "verbose",
	}
}

func (b *bed) createPod(t *testing.T, name string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := b.env.Client.Create(b.ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	return pod
}

// runtimeConf is what a runtime passes for the pod's sandbox containerID in podNS.
func (b *bed) runtimeConf(pod *corev1.Pod, containerID string, podNS ns.NetNS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       podNS.Path(),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", containerID},
			{"K8S_POD_UID", string(pod.UID)},
		},
	}
}

func (b *bed) networkStatus(t *testing.T, pod *corev1.Pod) []networkStatus {
	t.Helper()
	cur := &corev1.Pod{}
	if err := b.env.Client.Get(b.ctx, client.ObjectKeyFromObject(pod), cur); err != nil {
		t.Fatal(err)
	}
	raw, ok := cur.Annotations[networkStatusAnnot]
	if !ok {
		t.Fatalf("no %s annotation; annotations: %v", networkStatusAnnot, cur.Annotations)
	}
	var statuses []networkStatus
	if err := json.Unmarshal([]byte(raw), &statuses); err != nil {
		t.Fatalf("network-status %q: %v", raw, err)
	}
	return statuses
}

func (b *bed) createNAD(t *testing.T, namespace, name, config string) {
	t.Helper()
	var compact map[string]any
	if err := json.Unmarshal([]byte(config), &compact); err != nil {
		t.Fatalf("NAD %s config: %v", name, err)
	}
	cfg, _ := json.Marshal(compact)
	nad := &unstructured.Unstructured{}
	nad.SetAPIVersion("k8s.cni.cncf.io/v1")
	nad.SetKind("NetworkAttachmentDefinition")
	nad.SetNamespace(namespace)
	nad.SetName(name)
	if err := unstructured.SetNestedField(nad.Object, string(cfg), "spec", "config"); err != nil {
		t.Fatal(err)
	}
	if err := b.env.Client.Create(b.ctx, nad); err != nil {
		t.Fatalf("create NAD %s/%s: %v", namespace, name, err)
	}
}

// podAddrs lists the global IPv4 addresses of every interface in the pod but lo.
func podAddrs(t *testing.T, podNS ns.NetNS) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	testutil.InNS(t, podNS, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Attrs().Name == "lo" {
				continue
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			out[l.Attrs().Name] = []string{}
			for _, a := range addrs {
				out[l.Attrs().Name] = append(out[l.Attrs().Name], a.IP.String())
			}
		}
		return nil
	})
	return out
}

func podLink(t *testing.T, podNS ns.NetNS, name string) netlink.Link {
	t.Helper()
	var link netlink.Link
	testutil.InNS(t, podNS, func() error {
		l, err := netlink.LinkByName(name)
		link = l
		return err
	})
	return link
}

func defaultRouteDev(t *testing.T, podNS ns.NetNS) string {
	t.Helper()
	dev := ""
	testutil.InNS(t, podNS, func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				l, err := netlink.LinkByIndex(r.LinkIndex)
				if err != nil {
					return err
				}
				dev = l.Attrs().Name
			}
		}
		return nil
	})
	return dev
}

// heldIPs lists the addresses host-local still has on record (one file per address).
func heldIPs(t *testing.T, dataDir string) []string {
	t.Helper()
	var held []string
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && net.ParseIP(d.Name()) != nil {
			held = append(held, d.Name())
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return held
}

func inSubnet(ip net.IP, cidr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	return err == nil && ip != nil && n.Contains(ip)
}
