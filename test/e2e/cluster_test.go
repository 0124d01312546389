package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/nodesysctl"
	"github.com/spiderpool-go/spiderpool/internal/sandbox"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// upCluster builds the real cluster (control plane, registry, user-mode-linux nodes with
// containerd, kubelet and kube-proxy) from `make tools` and `make images`, and tears it down at
// the end of the test.
func upCluster(t *testing.T, ctx context.Context, prefix string) *sandbox.Cluster {
	t.Helper()
	return upClusterScenario(t, ctx, prefix, sandbox.ScenarioPublicCloud)
}

// upClusterScenario is upCluster for a scenario.
func upClusterScenario(t *testing.T, ctx context.Context, prefix, scenario string) *sandbox.Cluster {
	t.Helper()
	requireEnv(t)
	uml.Require(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools, err := testenv.ToolsBin()
	if err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(root, "_output", "images")
	if _, err := os.Stat(filepath.Join(images, "spiderpool-agent.tar")); err != nil {
		t.Fatalf("no images in %s: make test-e2e builds them (make images)", images)
	}
	dir := filepath.Join(root, "_output", "e2e-"+prefix)
	_ = os.RemoveAll(dir)
	c, err := sandbox.UpCluster(ctx, sandbox.ClusterOptions{
		Dir: dir, Prefix: prefix, Scenario: scenario, ToolsBin: tools, ImagesDir: images,
		ChartDir: filepath.Join(root, "charts", "spiderpool"), Progress: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if names, _ := netsim.Namespaces(prefix); len(names) > 0 {
			t.Errorf("namespaces left after teardown: %v", names)
		}
		if pids := sandbox.ProcessesUsing(dir); len(pids) > 0 {
			t.Errorf("processes left after teardown: %v", pids)
		}
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	return c
}

func kubectlJSON(t *testing.T, ctx context.Context, c *sandbox.Cluster, into any, args ...string) {
	t.Helper()
	out, err := c.Kubectl(ctx, append(args, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name, Namespace, UID string
			Labels               map[string]string
		}
		Spec struct {
			NodeName   string
			Containers []struct{ Image string }
		}
		Status struct {
			Phase, PodIP string
		}
	}
}

// TestRealClusterPublicCloud installs the chart with the Alibaba guide's helm line on a real
// cluster and runs the guide: the nodes' kubelets start the pods through containerd, Multus,
// ipvlan, spiderpool and the coordinator.
func TestRealClusterPublicCloud(t *testing.T) {
	// The scale-up with an agent deleted alone may take its 25-minute rollout budget on a slow
	// machine; the helm upgrade and uninstall still follow it.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	c := upCluster(t, ctx, "e2ec")
	if err := c.Install(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("nodes are real kubelets on containerd", func(t *testing.T) {
		var nodes struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct {
					NodeInfo   struct{ KubeletVersion, ContainerRuntimeVersion string }
					Conditions []struct{ Type, Status string }
				}
			}
		}
		kubectlJSON(t, ctx, c, &nodes, "get", "nodes")
		if len(nodes.Items) != 2 {
			t.Fatalf("%d nodes, want 2", len(nodes.Items))
		}
		for _, n := range nodes.Items {
			if v := n.Status.NodeInfo.KubeletVersion; v != "v1.37.2" {
				t.Errorf("node %s: kubelet %s, want v1.37.2", n.Metadata.Name, v)
			}
			if v := n.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(v, "containerd://2.") {
				t.Errorf("node %s: runtime %s, want containerd://2.x", n.Metadata.Name, v)
			}
			ready := false
			for _, cond := range n.Status.Conditions {
				ready = ready || (cond.Type == "Ready" && cond.Status == "True")
			}
			if !ready {
				t.Errorf("node %s is not Ready", n.Metadata.Name)
			}
		}
	})

	t.Run("spiderpoolAgent.tuneSysctlConfig set the nodes' sysctls", func(t *testing.T) {
		for _, n := range c.Nodes {
			for _, s := range nodesysctl.Settings {
				path := "/proc/sys/" + strings.ReplaceAll(s.Name, ".", "/")
				out, err := n.Exec(ctx, "cat "+path)
				if err != nil {
					t.Errorf("node %s: %v", n.Name, err)
					continue
				}
				if got := strings.TrimSpace(out); got != s.Value {
					t.Errorf("node %s: %s = %s, want %s", n.Name, s.Name, got, s.Value)
				}
			}
		}
	})

	t.Run("the chart's pods run from the sandbox registry", func(t *testing.T) {
		var pods podList
		kubectlJSON(t, ctx, c, &pods, "get", "pods", "-n", "kube-system")
		seen := map[string]int{}
		reg := strings.TrimPrefix(c.HelmArgs()[len(c.HelmArgs())-1], "global.imageRegistryOverride=")
		for _, p := range pods.Items {
			app := p.Metadata.Labels["app.kubernetes.io/component"]
			seen[app]++
			want := "Running"
			if app == "spiderpool-init" {
				want = "Succeeded"
			}
			if p.Status.Phase != want {
				t.Errorf("pod %s is %s, want %s", p.Metadata.Name, p.Status.Phase, want)
			}
			for _, ct := range p.Spec.Containers {
				if !strings.HasPrefix(ct.Image, reg+"/") {
					t.Errorf("pod %s runs %s, not from %s", p.Metadata.Name, ct.Image, reg)
				}
			}
		}
		for app, want := range map[string]int{"spiderpool-agent": 2, "spiderpool-multus": 2, "spiderpool-controller": 1, "spiderpool-init": 1} {
			if seen[app] != want {
				t.Errorf("%d %s pods, want %d (seen %v)", seen[app], app, want, seen)
			}
		}
	})

	if err := c.ApplyGuide(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("the guide's checks", func(t *testing.T) {
		checks, err := c.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(checks) < 10 {
			t.Fatalf("only %d checks", len(checks))
		}
		for _, ch := range checks {
			if ch.Err != nil {
				t.Errorf("%s -%s-> %s: %v", ch.From, ch.How, ch.To, ch.Err)
			}
		}
	})

	t.Run("deleting a pod frees its address through the kubelet's CNI DEL", func(t *testing.T) {
		var pods podList
		// nginx stops at once on SIGTERM, so the kubelet tears the sandbox down (CNI DEL) long
		// before the grace period the controller's GC waits for.
		kubectlJSON(t, ctx, c, &pods, "get", "pods", "-n", "default", "-l", "app=test-app-2", "--field-selector", "spec.nodeName=worker")
		if len(pods.Items) != 1 {
			t.Fatalf("%d test-app-2 pods on worker, want 1", len(pods.Items))
		}
		old := pods.Items[0]
		if _, err := c.Kubectl(ctx, "delete", "pod", "-n", "default", old.Metadata.Name, "--wait=true", "--timeout=2m"); err != nil {
			t.Fatal(err)
		}
		// The kubelet's DEL releases the address before the pod object goes; the endpoint goes
		// with the release.
		if out, err := c.Kubectl(ctx, "get", "spiderendpoint", "-n", "default", old.Metadata.Name, "--ignore-not-found"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("SpiderEndpoint of the deleted pod %s is still there (%v): %s", old.Metadata.Name, err, out)
		}
		agentLog, err := c.AgentLog(ctx, "worker")
		if err != nil {
			t.Fatal(err)
		}
		released := false
		for _, line := range strings.Split(agentLog, "\n") {
			released = released || (strings.Contains(line, old.Metadata.UID) && strings.Contains(line, `"msg":"released"`) && strings.Contains(line, `"outcome":"released"`))
		}
		if !released {
			t.Errorf("the worker's agent logged no release for pod UID %s:\n%s", old.Metadata.UID, agentLog)
		}
		if _, err := c.Kubectl(ctx, "rollout", "status", "daemonset/test-app-2", "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
		var pool struct {
			Status struct{ AllocatedIPCount *int64 }
		}
		// The pool's status mirrors its blocks within seconds (ipam.enableIPBlocks).
		waitFor(t, ctx, 30*time.Second, "worker-192 allocates 1 address after the replacement pod started", func() (bool, string) {
			kubectlJSON(t, ctx, c, &pool, "get", "spiderippool", "worker-192")
			n := pool.Status.AllocatedIPCount
			return n != nil && *n == 1, fmt.Sprintf("allocatedIPCount %v", n)
		})
	})

	t.Run("an agent deleted during a scale-up of 20 pods: every pod Running, no address twice, none leaked", func(t *testing.T) {
		scaleUpWithAgentRestart(t, ctx, c)
	})

	t.Run("helm upgrade with a changed value keeps the pods' addresses", func(t *testing.T) {
		before := podIPs(t, ctx, c)
		args := append([]string{"upgrade", "spiderpool", filepath.Join(mustRoot(t), "charts", "spiderpool"), "--namespace", "kube-system", "--wait", "--timeout", "10m"}, c.HelmArgs()...)
		// plugins.installCNI puts the plugins image's shell-free installer into every agent pod:
		// the guides' optional line, run here on the real nodes.
		args = append(args, "--set", "spiderpoolAgent.debug.logLevel=debug", "--set", "plugins.installCNI=true")
		if _, err := c.Helm(ctx, args...); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Kubectl(ctx, "rollout", "status", "-n", "kube-system", "daemonset/spiderpool-agent", "--timeout=5m"); err != nil {
			t.Fatal(err)
		}
		var agents struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct {
					InitContainerStatuses []struct {
						Name  string
						State struct {
							Terminated *struct{ ExitCode int }
						}
					}
				}
			}
		}
		kubectlJSON(t, ctx, c, &agents, "get", "pods", "-n", "kube-system", "-l", "app.kubernetes.io/component=spiderpool-agent")
		for _, a := range agents.Items {
			ran := false
			for _, ic := range a.Status.InitContainerStatuses {
				if ic.Name == "install-plugins" && ic.State.Terminated != nil && ic.State.Terminated.ExitCode == 0 {
					ran = true
				}
			}
			if !ran {
				t.Errorf("agent pod %s: init container install-plugins did not complete: %+v", a.Metadata.Name, a.Status.InitContainerStatuses)
			}
		}
		after := podIPs(t, ctx, c)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("addresses changed across the upgrade:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("helm uninstall removes what the chart made, on the nodes too", func(t *testing.T) {
		chart := filepath.Join(mustRoot(t), "charts", "spiderpool")
		args := append([]string{"upgrade", "spiderpool", chart, "--namespace", "kube-system", "--wait", "--timeout", "10m"}, c.HelmArgs()...)
		if _, err := c.Helm(ctx, append(args, "--set", "multus.multusCNI.uninstall=true")...); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Kubectl(ctx, "rollout", "status", "-n", "kube-system", "daemonset/spiderpool-multus", "--timeout=5m"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Helm(ctx, "uninstall", "spiderpool", "--namespace", "kube-system", "--wait", "--timeout", "5m"); err != nil {
			t.Fatal(err)
		}
		// helm waits for its objects; the DaemonSets' pods go after them, in the background.
		if _, err := c.Kubectl(ctx, "wait", "--for=delete", "pod", "-n", "kube-system", "-l", "app.kubernetes.io/instance=spiderpool", "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
		left, err := c.Kubectl(ctx, "get", "daemonsets,deployments,jobs,pods,serviceaccounts,secrets,configmaps", "-n", "kube-system",
			"-l", "app.kubernetes.io/instance=spiderpool", "-o", "name")
		if err != nil || strings.TrimSpace(left) != "" {
			t.Errorf("objects of the release left in kube-system (%v):\n%s", err, left)
		}
		for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
			if out, err := c.Kubectl(ctx, "get", kind, "spiderpool-controller", "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("%s spiderpool-controller left after uninstall (%v): %s", kind, err, out)
			}
		}
		if out, err := c.Kubectl(ctx, "get", "secret", "-n", "kube-system", "spiderpool-controller-server-certs", "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("the webhook certificate Secret is left after uninstall (%v): %s", err, out)
		}
		for _, n := range c.Nodes {
			// The pods are gone once helm returns; their last act removed the files.
			if out, err := n.Exec(ctx, "ls /etc/cni/net.d /etc/cni/net.d/multus.d 2>&1; test ! -e /etc/cni/net.d/00-multus.conf && test ! -e /etc/cni/net.d/multus.d/multus.kubeconfig"); err != nil {
				t.Errorf("node %s keeps Multus's configuration after uninstall with multus.multusCNI.uninstall=true: %v\n%s", n.Name, err, out)
			}
		}
	})
}

func mustRoot(t *testing.T) string {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// podIPs maps the default namespace's pods to their addresses.
func podIPs(t *testing.T, ctx context.Context, c *sandbox.Cluster) map[string]netip.Addr {
	var pods podList
	kubectlJSON(t, ctx, c, &pods, "get", "pods", "-n", "default")
	m := map[string]netip.Addr{}
	for _, p := range pods.Items {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			m[p.Metadata.Name] = a
		}
	}
	if len(m) == 0 {
		t.Fatal("no pod with an address in default")
	}
	return m
}

// TestRealClusterAWS installs the chart with the AWS guide's helm line (Multus's cluster network
// "default/ipvlan-ens5", a NAD outside the release namespace) on nodes whose NICs ens5 and ens6 sit
// in subnets of their own, and reaches the guide's nginx-lb-1 from outside.
func TestRealClusterAWS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := upClusterScenario(t, ctx, "e2ea", sandbox.ScenarioAWS)
	if err := c.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyGuide(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("Multus's configuration names the NAD and its namespace apart", func(t *testing.T) {
		for _, n := range c.Nodes {
			conf, err := n.Exec(ctx, "cat /etc/cni/net.d/00-multus.conf")
			if err != nil {
				t.Fatalf("node %s: %v", n.Name, err)
			}
			var m struct{ ClusterNetwork, MultusNamespace string }
			if err := json.Unmarshal([]byte(conf), &m); err != nil {
				t.Fatalf("node %s: 00-multus.conf: %v\n%s", n.Name, err, conf)
			}
			if m.ClusterNetwork != "ipvlan-ens5" || m.MultusNamespace != "default" {
				t.Errorf("node %s: clusterNetwork %q multusNamespace %q, want ipvlan-ens5 in default", n.Name, m.ClusterNetwork, m.MultusNamespace)
			}
		}
	})
	t.Run("the guide's pods get the node's ens5 pool and answer from outside", func(t *testing.T) {
		var pods podList
		kubectlJSON(t, ctx, c, &pods, "get", "pods", "-n", "default", "-l", "app=nginx-lb-1")
		for _, p := range pods.Items {
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil {
				t.Errorf("pod %s has no address", p.Metadata.Name)
				continue
			}
			pool := map[string][2]netip.Addr{
				"master":  {netip.MustParseAddr("172.31.16.4"), netip.MustParseAddr("172.31.16.8")},
				"worker1": {netip.MustParseAddr("10.17.16.11"), netip.MustParseAddr("10.17.16.15")},
			}[p.Spec.NodeName]
			if ip.Less(pool[0]) || pool[1].Less(ip) {
				t.Errorf("pod %s on %s got %s, outside its node's ens5 pool %s-%s", p.Metadata.Name, p.Spec.NodeName, ip, pool[0], pool[1])
			}
		}
		checks, err := c.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(checks) < 4 {
			t.Fatalf("only %d checks", len(checks))
		}
		for _, ch := range checks {
			if ch.Err != nil {
				t.Errorf("%s -%s-> %s: %v", ch.From, ch.How, ch.To, ch.Err)
			}
		}
	})
}

// TestRealClusterOverlay installs the chart with the Calico-overlay guide's helm line
// (coordinator.mode=overlay) on nodes whose first CNI gives eth0 from per-node pod CIDRs, applies
// the guide's pool and Macvlan SpiderMultusConfig, and checks its pods on both networks.
func TestRealClusterOverlay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := upClusterScenario(t, ctx, "e2eo", sandbox.ScenarioOverlay)
	if err := c.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyGuide(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("the SpiderCoordinator finds the cluster's CIDRs", func(t *testing.T) {
		var scc struct {
			Spec   struct{ Mode string }
			Status struct {
				Phase          string
				OverlayPodCIDR []string
				ServiceCIDR    []string
			}
		}
		kubectlJSON(t, ctx, c, &scc, "get", "spidercoordinator", "default")
		if scc.Spec.Mode != "overlay" || scc.Status.Phase != "Synced" ||
			!slices.Equal(scc.Status.OverlayPodCIDR, []string{"10.244.64.0/18"}) || !slices.Equal(scc.Status.ServiceCIDR, []string{"10.233.0.0/18"}) {
			t.Errorf("SpiderCoordinator default: mode %q, status %+v; want overlay, Synced, 10.244.64.0/18 and 10.233.0.0/18", scc.Spec.Mode, scc.Status)
		}
	})
	t.Run("only net1 is Spiderpool's", func(t *testing.T) {
		var eps v2beta1.SpiderEndpointList
		kubectlJSON(t, ctx, c, &eps, "get", "spiderendpoints", "-n", "default")
		if len(eps.Items) != 4 {
			t.Errorf("%d SpiderEndpoints, want one per nginx and overlay-probe pod (4)", len(eps.Items))
		}
		pool := netip.MustParsePrefix("10.6.0.0/16")
		for _, ep := range eps.Items {
			ips := ep.Status.Current.IPs
			if len(ips) != 1 || ips[0].NIC != "net1" {
				t.Errorf("%s: %+v, want net1 only (eth0 is the node CNI's)", ep.Name, ips)
				continue
			}
			if p, err := netip.ParsePrefix(ptr.Deref(ips[0].IPv4, "")); err != nil || !pool.Contains(p.Addr()) {
				t.Errorf("%s: net1 %q is not in the 10-6-v4 pool's subnet", ep.Name, ptr.Deref(ips[0].IPv4, ""))
			}
		}
	})
	t.Run("the guide's checks", func(t *testing.T) {
		checks, err := c.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Per probe pod (2): own node, gateway, Service, and eth0 + net1 of each nginx pod (4);
		// from the client: net1 of each nginx pod.
		if len(checks) != 2*(3+4)+2 {
			t.Errorf("%d checks, want 16", len(checks))
		}
		for _, ch := range checks {
			if ch.Err != nil {
				t.Errorf("%s -%s-> %s: %v", ch.From, ch.How, ch.To, ch.Err)
			}
		}
	})
}

// scaleManifests: a pool for both nodes' eth0 (the guide's per-node pools hold five addresses)
// and 20 busybox pods on the guide's ipvlan-eth0 that take their address from it.
const scaleManifests = `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: scale-172
spec:
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  ips:
  - 172.31.198.10-172.31.198.39
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: scale
  namespace: default
spec:
  replicas: 20
  selector:
    matchLabels:
      app: scale
  template:
    metadata:
      labels:
        app: scale
      annotations:
        v1.multus-cni.io/default-network: kube-system/ipvlan-eth0
        ipam.spidernet.io/ippool: '{"ipv4":["scale-172"]}'
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: scale
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
`

// scaleUpWithAgentRestart creates 20 pods and deletes the worker's spiderpool-agent pod while
// their ADDs are in flight. The kubelet retries the sandboxes whose ADD failed against the
// vanished agent; in the end every pod runs with an address of its own, the pool records exactly
// those, and deleting the pods returns every address.
func scaleUpWithAgentRestart(t *testing.T, ctx context.Context, c *sandbox.Cluster) {
	file := filepath.Join(t.TempDir(), "scale.yaml")
	if err := os.WriteFile(file, []byte(scaleManifests), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "apply", "-f", file); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := c.Kubectl(context.WithoutCancel(ctx), "delete", "-f", file, "--ignore-not-found", "--wait=true", "--timeout=3m"); err != nil {
			t.Errorf("clean up: %v", err)
		}
	}()
	// Delete the agent once the first pods are being set up on the worker.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := c.Kubectl(ctx, "get", "pods", "-n", "default", "-l", "app=scale", "--field-selector", "spec.nodeName=worker", "-o", "name")
		if len(strings.Fields(out)) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	out, err := c.Kubectl(ctx, "delete", "pod", "-n", "kube-system", "-l", "app.kubernetes.io/component=spiderpool-agent",
		"--field-selector", "spec.nodeName=worker", "--wait=false")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("during the scale-up: %s", strings.TrimSpace(out))
	t0 := time.Now()
	// The budget is the guests' speed, not the product's: on a 2-core machine whose user-mode-linux
	// nodes start a container in about a minute under this load, the replacement agent's pod took
	// 7 and 11 minutes to start (3 init containers, then the agent), and the rollout 13m46s.
	if _, err := c.Kubectl(ctx, "rollout", "status", "deployment/scale", "--timeout=25m"); err != nil {
		pods, _ := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
		t.Fatalf("%v\n%s", err, pods)
	}
	t.Logf("20 pods Running %s after the agent was deleted", time.Since(t0).Round(time.Second))

	var pods podList
	kubectlJSON(t, ctx, c, &pods, "get", "pods", "-n", "default", "-l", "app=scale")
	owner := map[string]string{}
	perNode := map[string]int{}
	for _, p := range pods.Items {
		if p.Status.Phase != "Running" {
			t.Errorf("pod %s is %s", p.Metadata.Name, p.Status.Phase)
		}
		if prev, dup := owner[p.Status.PodIP]; dup {
			t.Errorf("address %s given to %s and %s", p.Status.PodIP, prev, p.Metadata.Name)
		}
		owner[p.Status.PodIP] = p.Metadata.Name
		perNode[p.Spec.NodeName]++
	}
	t.Logf("pods per node: %v", perNode)
	if len(owner) != 20 {
		t.Errorf("%d distinct addresses among %d pods, want 20", len(owner), len(pods.Items))
	}
	var pool struct {
		Status struct {
			AllocatedIPCount *int64
			// A JSON string, as upstream stores it.
			AllocatedIPs string
		}
	}
	// The pool's status mirrors its blocks within seconds (ipam.enableIPBlocks).
	waitFor(t, ctx, 30*time.Second, "scale-172 lists 20 records", func() (bool, string) {
		kubectlJSON(t, ctx, c, &pool, "get", "spiderippool", "scale-172")
		n := pool.Status.AllocatedIPCount
		return n != nil && *n == 20, fmt.Sprintf("allocatedIPCount %v", n)
	})
	var records v2beta1.PoolIPAllocations
	if err := json.Unmarshal([]byte(pool.Status.AllocatedIPs), &records); err != nil {
		t.Fatalf("scale-172 allocatedIPs: %v", err)
	}
	if len(records) != 20 {
		t.Errorf("scale-172 holds %d records, want 20", len(records))
	}
	for ip, rec := range records {
		if "default/"+owner[ip] != rec.NamespacedName {
			t.Errorf("scale-172 records %s for %s, but that address is %q's", ip, rec.NamespacedName, owner[ip])
		}
	}

	if _, err := c.Kubectl(ctx, "delete", "deployment", "-n", "default", "scale", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	// The deployment goes at once; its pods terminate after it (the later steps look at the
	// guide's pods only).
	if _, err := c.Kubectl(ctx, "wait", "--for=delete", "pod", "-n", "default", "-l", "app=scale", "--timeout=5m"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 3*time.Minute, "scale-172 empty after the pods were deleted", func() (bool, string) {
		kubectlJSON(t, ctx, c, &pool, "get", "spiderippool", "scale-172")
		n := pool.Status.AllocatedIPCount
		return n != nil && *n == 0, fmt.Sprintf("allocatedIPCount %v, records %v", n, pool.Status.AllocatedIPs)
	})
}

// waitFor polls cond every two seconds until it holds or timeout passes; it then fails with
// cond's last description.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v; last: %s", what, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}
