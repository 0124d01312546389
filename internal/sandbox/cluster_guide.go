package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// HelmArgs are the guide's `helm install` flags for the scenario, plus the sandbox registry as
// global.imageRegistryOverride (the guides' optional override line).
func (c *Cluster) HelmArgs() []string {
	args := slices.Clone(c.topo.helm)
	return append(args, "--set", "global.imageRegistryOverride="+c.registry().String())
}

// Install runs the guide's `helm install ... --wait`.
func (c *Cluster) Install(ctx context.Context) error {
	t0 := time.Now()
	args := append([]string{"install", "spiderpool", c.opts.ChartDir, "--namespace", "kube-system", "--wait", "--timeout", "10m"}, c.HelmArgs()...)
	c.progress("helm %s", strings.Join(args, " "))
	out, err := c.Helm(ctx, args...)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.podDiagnostics(ctx))
	}
	c.progress("helm: %s", firstLine(out))
	// helm's --wait counts a DaemonSet ready with maxUnavailable (1) of its pods missing: the
	// guide's next steps need every node's agent and Multus, and every node Ready.
	for _, args := range [][]string{
		{"wait", "--for=condition=Ready", "nodes", "--all", "--timeout=5m"},
		{"rollout", "status", "-n", "kube-system", "daemonset/spiderpool-agent", "--timeout=5m"},
		{"rollout", "status", "-n", "kube-system", "daemonset/spiderpool-multus", "--timeout=5m"},
	} {
		if _, err := c.Kubectl(ctx, args...); err != nil {
			return fmt.Errorf("%w\n%s", err, c.podDiagnostics(ctx))
		}
	}
	c.phase("helm install --wait, every node's pods Ready", t0)
	return nil
}

// podDiagnostics lists the pods and recent events: what a failed install leaves to look at.
func (c *Cluster) podDiagnostics(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	pods, _ := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	events, _ := c.Kubectl(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp")
	lines := strings.Split(strings.TrimSpace(events), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return "pods:\n" + pods + "\nlast events:\n" + strings.Join(lines, "\n")
}

// guideWorkloads are the Alibaba guide's workloads: DaemonSets test-app-1 (busybox) and
// test-app-2 (nginx) with their default-network annotations, Service test-svc and the
// LoadBalancer tcp-service with externalTrafficPolicy Local.
const guideWorkloads = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: test-app-1
  namespace: default
spec:
  selector:
    matchLabels:
      app: test-app-1
  template:
    metadata:
      labels:
        app: test-app-1
      annotations:
        v1.multus-cni.io/default-network: kube-system/ipvlan-eth0
    spec:
      containers:
      - name: test-app-1
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: test-app-2
  namespace: default
spec:
  selector:
    matchLabels:
      app: test-app-2
  template:
    metadata:
      labels:
        app: test-app-2
      annotations:
        v1.multus-cni.io/default-network: kube-system/ipvlan-eth1
    spec:
      containers:
      - name: test-app-2
        image: nginx
        imagePullPolicy: IfNotPresent
        ports:
        - name: http
          containerPort: 80
          protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: test-svc
  namespace: default
spec:
  selector:
    app: test-app-2
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: tcp-service
  namespace: default
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: test-app-2
  ports:
  - name: tcp
    port: 999
    protocol: TCP
    targetPort: 80
`

// ApplyGuide applies the guide's SpiderMultusConfigs and pools as written, then its workloads,
// and waits for every workload pod to run.
func (c *Cluster) ApplyGuide(ctx context.Context) error {
	t0 := time.Now()
	m := c.topo.manifests
	dir := filepath.Join(c.opts.Dir, "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	guide := filepath.Join(dir, "guide.yaml")
	work := filepath.Join(dir, "workloads.yaml")
	if err := os.WriteFile(guide, m, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(work, []byte(c.topo.workloads), 0o644); err != nil {
		return err
	}
	// The webhooks may refuse the first objects while the controller's certificate settles.
	if err := c.retry(ctx, time.Minute, func() error { _, err := c.Kubectl(ctx, "apply", "-f", guide); return err }); err != nil {
		return err
	}
	c.progress("guide: SpiderMultusConfigs and pools applied (%s)", guide)
	if _, err := c.Kubectl(ctx, "apply", "-f", work); err != nil {
		return err
	}
	for _, w := range c.topo.rollouts {
		if _, err := c.Kubectl(ctx, "rollout", "status", w, "--timeout=5m"); err != nil {
			return fmt.Errorf("%w\n%s", err, c.podDiagnostics(ctx))
		}
	}
	c.progress("guide: %s Running", strings.Join(c.topo.rollouts, ", "))
	c.phase("guide objects and pods Running", t0)
	return nil
}

func (c *Cluster) retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
}

// guidePod is a workload pod as the checks see it.
type guidePod struct {
	Name, App, Node string
	IP              netip.Addr
}

func (c *Cluster) guidePods(ctx context.Context) ([]guidePod, error) {
	out, err := c.Kubectl(ctx, "get", "pods", "-n", "default", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string
				Labels map[string]string
			}
			Spec   struct{ NodeName string }
			Status struct {
				Phase string
				PodIP string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var pods []guidePod
	for _, it := range list.Items {
		ip, err := netip.ParseAddr(it.Status.PodIP)
		if err != nil || it.Status.Phase != "Running" {
			continue
		}
		pods = append(pods, guidePod{Name: it.Metadata.Name, App: it.Metadata.Labels["app"], Node: it.Spec.NodeName, IP: ip})
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].App+pods[i].Node < pods[j].App+pods[j].Node })
	return pods, nil
}

// ClusterCheck is one cell of the matrix.
type ClusterCheck struct {
	From, To, How string
	Err           error
}

// Verify runs the guide's checks from the real pods with kubectl exec (ping, HTTP to pods, to
// test-svc's ClusterIP) and from the switch's client to the LoadBalancer's NodePorts
// (externalTrafficPolicy Local: only nodes with a test-app-2 pod answer, which is each node).
func (c *Cluster) Verify(ctx context.Context) ([]ClusterCheck, error) {
	switch c.opts.Scenario {
	case ScenarioAWS:
		return c.verifyAWS(ctx)
	case ScenarioOverlay:
		return c.verifyOverlay(ctx)
	}
	pods, err := c.guidePods(ctx)
	if err != nil {
		return nil, err
	}
	svc, err := c.Kubectl(ctx, "get", "service", "test-svc", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return nil, err
	}
	nodePort, err := c.Kubectl(ctx, "get", "service", "tcp-service", "-o", "jsonpath={.spec.ports[0].nodePort}")
	if err != nil {
		return nil, err
	}
	var checks []ClusterCheck
	for _, src := range pods {
		if src.App != "test-app-1" {
			continue
		}
		exec := func(to, how string, cmd ...string) {
			checks = append(checks, c.podCheck(ctx, src.Name, to, how, cmd...))
		}
		node := c.topo.nodes[c.nodeIndex(src.Node)]
		gw := node.nics[0].gateway.String()
		exec(fmt.Sprintf("own node %s", src.Node), "ping", "ping", "-c", "2", "-W", "2", node.ip().String())
		exec("gateway "+gw, "ping", "ping", "-c", "2", "-W", "2", gw)
		for _, dst := range pods {
			if dst.Name == src.Name {
				continue
			}
			exec(fmt.Sprintf("%s %s (%s)", dst.Name, dst.IP, dst.Node), "ping", "ping", "-c", "2", "-W", "2", dst.IP.String())
			if dst.App == "test-app-2" {
				exec(fmt.Sprintf("%s %s:80", dst.Name, dst.IP), "http", httpGet(dst.IP.String())...)
			}
		}
		exec("test-svc "+svc+":80", "http", httpGet(svc)...)
	}
	for _, n := range c.topo.nodes {
		node := n.name
		addr := netip.AddrPortFrom(n.ip(), mustPort(nodePort))
		err := c.clientGet(ctx, addr)
		checks = append(checks, ClusterCheck{From: "client " + c.topo.client.Addr().String(), To: fmt.Sprintf("tcp-service NodePort %s (%s, Local)", addr, node), How: "http", Err: err})
	}
	return checks, nil
}

// verifyAWS checks the AWS guide's nginx-lb-1 from the client on the switch: each pod directly
// (through the VPC's gateways, pods and client being in different subnets) and the
// LoadBalancer's NodePort on each node (externalTrafficPolicy Local: each node has one pod).
func (c *Cluster) verifyAWS(ctx context.Context) ([]ClusterCheck, error) {
	pods, err := c.guidePods(ctx)
	if err != nil {
		return nil, err
	}
	nodePort, err := c.Kubectl(ctx, "get", "service", "nginx-svc-lb-1", "-o", "jsonpath={.spec.ports[0].nodePort}")
	if err != nil {
		return nil, err
	}
	from := "client " + c.topo.client.Addr().String()
	var checks []ClusterCheck
	for _, p := range pods {
		addr := netip.AddrPortFrom(p.IP, 80)
		checks = append(checks, ClusterCheck{From: from, To: fmt.Sprintf("%s %s (%s)", p.Name, addr, p.Node), How: "http", Err: c.clientGet(ctx, addr)})
	}
	for _, n := range c.topo.nodes {
		addr := netip.AddrPortFrom(n.ip(), mustPort(nodePort))
		checks = append(checks, ClusterCheck{From: from, To: fmt.Sprintf("nginx-svc-lb-1 NodePort %s (%s, Local)", addr, n.name), How: "http", Err: c.clientGet(ctx, addr)})
	}
	if len(pods) != 2 {
		checks = append(checks, ClusterCheck{From: "kubectl", To: "nginx-lb-1", How: "pods", Err: fmt.Errorf("%d pods running, want 2", len(pods))})
	}
	return checks, nil
}

// podCheck runs cmd in pod (namespace default) with kubectl exec, as a guide's check.
func (c *Cluster) podCheck(ctx context.Context, pod, to, how string, cmd ...string) ClusterCheck {
	args := append([]string{"exec", "-n", "default", pod, "--"}, cmd...)
	err := c.settle(ctx, func() error { _, err := c.Kubectl(ctx, args...); return err })
	return ClusterCheck{From: pod, To: to, How: how, Err: err}
}

// clientGet is an HTTP check from the client on the switch (outside the cluster).
func (c *Cluster) clientGet(ctx context.Context, addr netip.AddrPort) error {
	return c.settle(ctx, func() error { return httpGetIn(c.client.NS, addr) })
}

// settleTime is how long a check is retried before it counts as failed. The guides' pods have
// no readiness probe, so "Running" can come a few seconds before nginx listens (on these nodes up
// to ~10 s); a person following a guide would look a moment later.
const settleTime = 30 * time.Second

// settle runs check until it succeeds or settleTime has passed, and returns its last error.
func (c *Cluster) settle(ctx context.Context, check func() error) error {
	deadline := time.Now().Add(settleTime)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

// httpGet is the command that fetches / from host port 80 in a busybox pod and fails unless the
// answer is HTTP 200. Busybox's wget resolves the "http" service name through glibc's NSS, which
// a static busybox cannot load (it crashes), so the request goes through nc with numbers only.
func httpGet(host string) []string {
	return []string{"sh", "-c", "printf 'GET / HTTP/1.0\\r\\nHost: " + host + "\\r\\n\\r\\n' | nc -w 5 " + host + " 80 | head -1 | grep -q ' 200 '"}
}

func mustPort(s string) uint16 {
	var p uint16
	_, _ = fmt.Sscan(strings.TrimSpace(s), &p)
	return p
}

func (c *Cluster) nodeIndex(name string) int {
	for i, n := range c.opts.Nodes {
		if n == name {
			return i
		}
	}
	return 0
}

// httpGetIn sends GET / to addr from inside n and wants a 200.
func httpGetIn(n ns.NetNS, addr netip.AddrPort) error {
	var conn net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		conn, err = net.DialTimeout("tcp", addr.String(), 5*time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// PrintChecks prints the matrix; it returns the number of failed cells.
func PrintChecks(w io.Writer, checks []ClusterCheck) int {
	failed := 0
	fmt.Fprintf(w, "%-28s %-5s %-52s %s\n", "FROM", "HOW", "TO", "RESULT")
	for _, ch := range checks {
		res := "ok"
		if ch.Err != nil {
			failed++
			res = "FAIL: " + firstLine(ch.Err.Error())
		}
		fmt.Fprintf(w, "%-28s %-5s %-52s %s\n", ch.From, ch.How, ch.To, res)
	}
	return failed
}

// AgentLog returns the log of the spiderpool-agent pod on node.
func (c *Cluster) AgentLog(ctx context.Context, node string) (string, error) {
	name, err := c.Kubectl(ctx, "get", "pods", "-n", "kube-system", "-l", "app.kubernetes.io/component=spiderpool-agent",
		"--field-selector", "spec.nodeName="+node, "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return "", err
	}
	return c.Kubectl(ctx, "logs", "-n", "kube-system", strings.TrimSpace(name))
}
