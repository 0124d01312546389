package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/multusconf"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// AnnotationNetNS is where the stand-in kubelet records a pod's network namespace path.
const AnnotationNetNS = "sandbox.spiderpool.io/netns"

// Multus annotations the stand-in kubelet honours the way Multus does.
const (
	annotationNetworks       = "k8s.v1.cni.cncf.io/networks"
	annotationDefaultNetwork = "v1.multus-cni.io/default-network"
)

// kubelet plays one node's kubelet plus Multus: for each pod bound to the node it makes a sandbox
// (network namespace), runs CNI ADD for the pod's networks (the default network as eth0, each
// network of the networks annotation as net1, net2, ...) through libcni with the node's view of
// the filesystem, starts the pod's "container" (a TCP server on port 80 answering its name), and
// reports the pod Running with its IPs. A failed setup is torn down (CNI DEL) and retried with a
// new sandbox, as the kubelet does. A pod being deleted is torn down and then removed.
type kubelet struct {
	name   string // the node's
	c      client.Client
	net    *netsim.Node // where the plugins run: the node's namespace
	cni    *netsim.CNI
	log    *slog.Logger
	hostIP string
	newNS  func(name string) (ns.NetNS, string, error)
	delNS  func(name string) error
	// clusterNet is the node's default network (Multus' clusterNetwork).
	clusterNet func(ctx context.Context) (attachment, error)
	// multus is the node's Multus thin-plugin configuration list; nil: the kubelet resolves and
	// delegates the networks itself.
	multus []byte

	mu     sync.Mutex
	pods   map[types.UID]*podSandbox
	errs   map[string]string // pod name → last setup error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// podSandbox is a pod's network namespace and the networks set up in it.
type podSandbox struct {
	pod      *corev1.Pod
	nsName   string
	nsPath   string
	netns    ns.NetNS
	attempt  int
	attached []attachment
	ifIPs    map[string][]netip.Addr // interface → addresses from the ADD results
	server   *netsim.Server
	state    string // setting-up, running, failed, tearing-down
	retryAt  time.Time
}

// attachment is one network of a pod.
type attachment struct {
	ifName    string
	network   string // namespace/name of the NAD, or the cluster network's name
	conflist  []byte
	container netsim.Pod
}

func newKubelet(n *Node) (*kubelet, error) {
	s := n.sb
	tools, _ := testenv.ToolsBin()
	exec := &netsim.NodeExec{Binds: map[string]string{"/run/spidernet": n.RunDir}}
	k := &kubelet{
		name:   n.Name,
		c:      s.Client,
		net:    n.Net,
		cni:    netsim.NewCNI([]string{s.opts.PluginDir, tools}, filepath.Join(s.opts.Dir, "nodes", n.Name, "cni-cache"), exec),
		log:    s.logs.logger("kubelet-" + n.Name),
		hostIP: s.sc.nodeIP(s.nodeIndex(n.Name), 0).String(),
		newNS:  s.lab.NewNS,
		delNS:  s.lab.DeleteNS,
		pods:   map[types.UID]*podSandbox{},
		errs:   map[string]string{},
	}
	k.clusterNet = func(ctx context.Context) (attachment, error) { return s.clusterNetwork(ctx, n) }
	if s.multus != "" {
		conf, err := s.multusConfig(n)
		if err != nil {
			return nil, err
		}
		k.multus = conf
	}
	return k, nil
}

func (k *kubelet) start(ctx context.Context) {
	ctx, k.cancel = context.WithCancel(ctx)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			k.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// stop ends the sync loop and waits for setups in flight; pods stay as they are.
func (k *kubelet) stop() {
	if k.cancel != nil {
		k.cancel()
	}
	k.wg.Wait()
}

// sync compares the pods bound to the node with the sandboxes and acts on the difference.
func (k *kubelet) sync(ctx context.Context) {
	var list corev1.PodList
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := k.c.List(lctx, &list, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.nodeName", k.name)})
	cancel()
	if err != nil {
		return
	}
	seen := map[types.UID]bool{}
	for i := range list.Items {
		p := &list.Items[i]
		seen[p.UID] = true
		k.mu.Lock()
		sb := k.pods[p.UID]
		switch {
		case p.DeletionTimestamp != nil:
			if sb == nil {
				k.mu.Unlock()
				k.launch(ctx, func(ctx context.Context) { k.finishDeletion(ctx, p) })
				continue
			}
			if sb.state == "running" || sb.state == "failed" {
				sb.state = "tearing-down"
				k.mu.Unlock()
				k.launch(ctx, func(ctx context.Context) {
					k.teardown(ctx, sb)
					k.finishDeletion(ctx, p)
				})
				continue
			}
		case sb == nil:
			sb = &podSandbox{pod: p.DeepCopy(), state: "setting-up"}
			k.pods[p.UID] = sb
			k.mu.Unlock()
			k.launch(ctx, func(ctx context.Context) { k.setup(ctx, sb) })
			continue
		case sb.state == "failed" && time.Now().After(sb.retryAt):
			sb.state = "setting-up"
			sb.pod = p.DeepCopy()
			k.mu.Unlock()
			k.launch(ctx, func(ctx context.Context) { k.setup(ctx, sb) })
			continue
		}
		k.mu.Unlock()
	}
	// Pods deleted outright (grace period 0) are gone from the API: tear their sandboxes down.
	k.mu.Lock()
	var gone []*podSandbox
	for uid, sb := range k.pods {
		if !seen[uid] && (sb.state == "running" || sb.state == "failed") {
			sb.state = "tearing-down"
			gone = append(gone, sb)
		}
	}
	k.mu.Unlock()
	for _, sb := range gone {
		k.launch(ctx, func(ctx context.Context) { k.teardown(ctx, sb) })
	}
}

func (k *kubelet) launch(ctx context.Context, f func(context.Context)) {
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		f(ctx)
	}()
}

// setup makes a new sandbox for the pod and runs ADD for each network.
func (k *kubelet) setup(ctx context.Context, sb *podSandbox) {
	p := sb.pod
	sb.attempt++
	err := func() (err error) {
		var nets []attachment
		if k.multus != nil {
			nets = []attachment{{ifName: "eth0", network: "multus-cni-network", conflist: k.multus}}
		} else if nets, err = k.networks(ctx, p); err != nil {
			return err
		}
		sb.nsName = fmt.Sprintf("pod-%s-%d", shortUID(p.UID), sb.attempt)
		sb.netns, sb.nsPath, err = k.newNS(sb.nsName)
		if err != nil {
			return err
		}
		container := netsim.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID),
			ContainerID: fmt.Sprintf("%s%d", strings.ReplaceAll(string(p.UID), "-", ""), sb.attempt), NetNS: sb.nsPath}
		var ips []string
		sb.ifIPs = map[string][]netip.Addr{}
		for _, a := range nets {
			a.container = container
			actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			res, err := k.cni.Add(actx, k.net, a.conflist, container, a.ifName)
			cancel()
			sb.attached = append(sb.attached, a) // DEL even a failed ADD, as the runtime does
			if err != nil {
				return err
			}
			for _, ipc := range res.IPs {
				addr, ok := netip.AddrFromSlice(ipc.Address.IP)
				if !ok {
					continue
				}
				sb.ifIPs[a.ifName] = append(sb.ifIPs[a.ifName], addr.Unmap())
				if a.ifName == "eth0" {
					ips = append(ips, addr.Unmap().String())
				}
			}
		}
		if k.multus != nil {
			// Multus reports every interface it attached in the pod's network-status annotation.
			if err := k.readNetworkStatus(ctx, p, sb.ifIPs); err != nil {
				return err
			}
		}
		if sb.server, err = netsim.ServeTCP(sb.netns, netip.MustParseAddrPort("0.0.0.0:80"), p.Name); err != nil {
			return err
		}
		return k.reportRunning(ctx, p, ips, sb.nsPath)
	}()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		sb.state = "running"
		delete(k.errs, p.Name)
		k.log.Info("pod running", "pod", p.Namespace+"/"+p.Name, "attempt", sb.attempt)
		return
	}
	k.errs[p.Name] = err.Error()
	k.log.Info("pod setup failed; tearing the sandbox down and retrying", "pod", p.Namespace+"/"+p.Name, "attempt", sb.attempt, "error", err)
	k.mu.Unlock()
	k.teardownNetworks(context.WithoutCancel(ctx), sb)
	k.mu.Lock()
	sb.state = "failed"
	sb.retryAt = time.Now().Add(time.Duration(min(sb.attempt, 5)) * 500 * time.Millisecond)
}

func shortUID(uid types.UID) string { return strings.ReplaceAll(string(uid), "-", "")[:8] }

// teardown removes a pod's sandbox: DEL of every network, in reverse order, then the namespace.
func (k *kubelet) teardown(ctx context.Context, sb *podSandbox) {
	k.teardownNetworks(ctx, sb)
	k.mu.Lock()
	delete(k.pods, sb.pod.UID)
	k.mu.Unlock()
}

func (k *kubelet) teardownNetworks(ctx context.Context, sb *podSandbox) {
	if sb.server != nil {
		sb.server.Close()
		sb.server = nil
	}
	for i := len(sb.attached) - 1; i >= 0; i-- {
		a := sb.attached[i]
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := k.cni.Del(dctx, k.net, a.conflist, a.container, a.ifName); err != nil {
			k.log.Info("CNI DEL failed", "pod", sb.pod.Name, "ifName", a.ifName, "error", err)
		}
		cancel()
	}
	sb.attached = nil
	if sb.netns != nil {
		sb.netns.Close()
		sb.netns = nil
	}
	if sb.nsName != "" {
		_ = k.delNS(sb.nsName)
		sb.nsName = ""
	}
}

// teardownAll removes every sandbox of the node (sandbox shutdown).
func (k *kubelet) teardownAll(ctx context.Context) error {
	k.mu.Lock()
	var all []*podSandbox
	for _, sb := range k.pods {
		all = append(all, sb)
	}
	k.mu.Unlock()
	for _, sb := range all {
		k.teardown(ctx, sb)
	}
	return nil
}

// finishDeletion confirms a graceful deletion once the sandbox is gone, as the kubelet does.
func (k *kubelet) finishDeletion(ctx context.Context, p *corev1.Pod) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := k.c.Delete(dctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		k.log.Info("confirm pod deletion failed", "pod", p.Name, "error", err)
	}
}

// reportRunning writes the pod's status as the kubelet would.
func (k *kubelet) reportRunning(ctx context.Context, p *corev1.Pod, ips []string, nsPath string) error {
	if len(ips) == 0 {
		return errors.New("the default network gave the pod no address")
	}
	now := metav1.Now()
	var latest corev1.Pod
	if err := k.c.Get(ctx, client.ObjectKeyFromObject(p), &latest); err != nil {
		return err
	}
	// Where the pod's namespace is, for probes run on the node (user-mode-linux nodes).
	if latest.Annotations == nil {
		latest.Annotations = map[string]string{}
	}
	latest.Annotations[AnnotationNetNS] = nsPath
	if err := k.c.Update(ctx, &latest); err != nil {
		return err
	}
	latest.Status.Phase = corev1.PodRunning
	latest.Status.PodIP = ips[0]
	latest.Status.PodIPs = nil
	for _, ip := range ips {
		latest.Status.PodIPs = append(latest.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	latest.Status.HostIP = k.hostIP
	latest.Status.StartTime = &now
	latest.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	latest.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true, Image: "sandbox/banner",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
	return k.c.Status().Update(ctx, &latest)
}

// networks resolves a pod's networks the way Multus does: the default network (the
// v1.multus-cni.io/default-network annotation, else the cluster network) as eth0, then each entry
// of k8s.v1.cni.cncf.io/networks as net1, net2, ... (or the interface the entry names).
func (k *kubelet) networks(ctx context.Context, p *corev1.Pod) ([]attachment, error) {
	var out []attachment
	if def := p.Annotations[annotationDefaultNetwork]; def != "" {
		a, err := k.nadAttachment(ctx, p.Namespace, def, "eth0")
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	} else {
		a, err := k.clusterNet(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	refs, err := parseNetworks(p.Annotations[annotationNetworks])
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: annotation %s: %w", p.Namespace, p.Name, annotationNetworks, err)
	}
	for i, r := range refs {
		ifName := r.ifName
		if ifName == "" {
			ifName = fmt.Sprintf("net%d", i+1)
		}
		ns := r.namespace
		if ns == "" {
			ns = p.Namespace
		}
		a, err := k.nadAttachment(ctx, ns, ns+"/"+r.name, ifName)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// nadAttachment reads a NetworkAttachmentDefinition ("ns/name" or "name" in defaultNS).
func (k *kubelet) nadAttachment(ctx context.Context, defaultNS, ref, ifName string) (attachment, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = defaultNS, ref
	}
	nad := nadObject()
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, nad); err != nil {
		return attachment{}, fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", ns, name, err)
	}
	config, _, _ := unstructuredString(nad.Object, "spec", "config")
	conflist, err := asConfList([]byte(config))
	if err != nil {
		return attachment{}, fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", ns, name, err)
	}
	return attachment{ifName: ifName, network: ns + "/" + name, conflist: conflist}, nil
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// asConfList turns a network configuration (a list or a single plugin) into a list.
func asConfList(config []byte) ([]byte, error) {
	if len(config) == 0 {
		return nil, errors.New("empty network configuration")
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(config, &probe); err != nil {
		return nil, fmt.Errorf("network configuration: %w", err)
	}
	if _, ok := probe["plugins"]; ok {
		if _, err := libcni.NetworkConfFromBytes(config); err != nil {
			return nil, err
		}
		return config, nil
	}
	// A single plugin's configuration: the list of that one plugin, with its version and name.
	conf, err := libcni.NetworkPluginConfFromBytes(config)
	if err != nil {
		return nil, err
	}
	list, err := json.Marshal(map[string]any{
		"cniVersion": conf.Network.CNIVersion, "name": conf.Network.Name, "plugins": []json.RawMessage{config},
	})
	if err != nil {
		return nil, err
	}
	if _, err := libcni.NetworkConfFromBytes(list); err != nil {
		return nil, err
	}
	return list, nil
}

// networkRef is one entry of the networks annotation.
type networkRef struct{ namespace, name, ifName string }

// parseNetworks reads the networks annotation: a comma-separated list of [namespace/]name[@ifname]
// or a JSON list of {"name", "namespace", "interface"}.
func parseNetworks(s string) ([]networkRef, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var elems []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Interface string `json:"interface"`
		}
		if err := json.Unmarshal([]byte(s), &elems); err != nil {
			return nil, fmt.Errorf("JSON list: %w", err)
		}
		var out []networkRef
		for i, e := range elems {
			if e.Name == "" {
				return nil, fmt.Errorf("element %d has no name", i)
			}
			out = append(out, networkRef{namespace: e.Namespace, name: e.Name, ifName: e.Interface})
		}
		return out, nil
	}
	var out []networkRef
	for i, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		var r networkRef
		e, r.ifName, _ = strings.Cut(e, "@")
		if ns, name, ok := strings.Cut(e, "/"); ok {
			r.namespace, r.name = ns, name
		} else {
			r.name = e
		}
		if r.name == "" || strings.Contains(r.name, "/") {
			return nil, fmt.Errorf("entry %d %q is not [namespace/]name[@interface]", i, e)
		}
		out = append(out, r)
	}
	return out, nil
}

// readNetworkStatus adds the secondary interfaces' addresses from Multus' network-status
// annotation to ifIPs.
func (k *kubelet) readNetworkStatus(ctx context.Context, p *corev1.Pod, ifIPs map[string][]netip.Addr) error {
	var latest corev1.Pod
	if err := k.c.Get(ctx, client.ObjectKeyFromObject(p), &latest); err != nil {
		return err
	}
	return addNetworkStatus(&latest, ifIPs)
}

// addNetworkStatus adds the addresses of Multus' network-status annotation to ifIPs, for the
// interfaces ifIPs has none of yet.
func addNetworkStatus(p *corev1.Pod, ifIPs map[string][]netip.Addr) error {
	raw := p.Annotations["k8s.v1.cni.cncf.io/network-status"]
	if raw == "" {
		return nil
	}
	var status []struct {
		Interface string   `json:"interface"`
		IPs       []string `json:"ips"`
	}
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		return fmt.Errorf("network-status annotation of %s: %w", p.Name, err)
	}
	for _, st := range status {
		if st.Interface == "" || len(ifIPs[st.Interface]) > 0 {
			continue
		}
		for _, ip := range st.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				ifIPs[st.Interface] = append(ifIPs[st.Interface], a)
			}
		}
	}
	return nil
}

// podIPs returns the addresses of a running pod of this node by interface, and its namespace.
func (k *kubelet) podIPs(namespace, name string) (map[string][]netip.Addr, ns.NetNS, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, sb := range k.pods {
		if sb.pod.Namespace == namespace && sb.pod.Name == name && sb.state == "running" {
			return sb.ifIPs, sb.netns, true
		}
	}
	return nil, nil, false
}

// lastErrors returns the last setup errors of the named pods on this node.
func (k *kubelet) lastErrors(names []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, n := range names {
		if e, ok := k.errs[n]; ok {
			out = append(out, n+": "+e)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// multusConfig is the node's Multus thin-plugin configuration: the cluster network is the Helm
// defaultCniCRName NAD, or in the overlay scenario the overlay stand-in's file in the node's
// Multus configuration directory.
func (s *Sandbox) multusConfig(n *Node) ([]byte, error) {
	nodeDir := filepath.Join(s.opts.Dir, "nodes", n.Name)
	o := multusconf.Options{
		Name: "multus-cni-network", CNIVersion: "1.0.0", Kubeconfig: s.Kubeconfig,
		BinDir: s.opts.PluginDir, ConfDir: filepath.Join(nodeDir, "multus.d"),
		CacheDir: filepath.Join(nodeDir, "multus-cache"), LogFile: filepath.Join(s.opts.Dir, "logs", "multus-"+n.Name+".log"),
		LogLevel: "verbose",
	}
	if ref := s.sc.clusterDefaultNAD(s.cniType); ref != "" {
		o.ClusterNetwork = ref
	} else {
		a, err := s.overlayNetwork(n)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(o.ConfDir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(o.ConfDir, "10-k8s-pod-network.conflist"), a.conflist, 0o644); err != nil {
			return nil, err
		}
		o.ClusterNetwork, o.MultusNamespace = "k8s-pod-network", "kube-system"
	}
	return multusconf.ThinConfList(o)
}

// clusterNetwork is the node's default network: the Helm defaultCniCRName NAD in the public-cloud
// scenario; in the overlay scenario the node's own CNI file for the overlay stand-in (ptp with the
// node's pod range), as Multus's clusterNetwork points to Calico's file.
func (s *Sandbox) clusterNetwork(ctx context.Context, n *Node) (attachment, error) {
	if ref := s.sc.clusterDefaultNAD(s.cniType); ref != "" {
		return n.kubelet.nadAttachment(ctx, "kube-system", ref, "eth0")
	}
	return s.overlayNetwork(n)
}

// overlayNetwork is the overlay stand-in's configuration of node n: ptp with the node's range.
func (s *Sandbox) overlayNetwork(n *Node) (attachment, error) {
	i := s.nodeIndex(n.Name)
	cidr := overlayCIDR(i)
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "k8s-pod-network",
		"plugins": []any{map[string]any{"type": "ptp", "mtu": 1480, "ipam": map[string]any{
			"type": "host-local", "ranges": [][]map[string]string{{{"subnet": cidr.String()}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": filepath.Join(s.opts.Dir, "nodes", n.Name, "host-local"),
		}}},
	})
	if err != nil {
		return attachment{}, err
	}
	return attachment{ifName: "eth0", network: "k8s-pod-network", conflist: conf}, nil
}
