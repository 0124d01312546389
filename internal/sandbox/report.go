package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// PrintTable prints a resource list the way `kubectl get` does, from the apiserver's Table API
// (the CRDs' printer columns). path is the list's API path.
func PrintTable(ctx context.Context, cfg *rest.Config, w io.Writer, path string, allNamespaces bool) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	var t metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return fmt.Errorf("GET %s: decode table: %w", path, err)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var cols []int
	var head []string
	if allNamespaces {
		head = append(head, "NAMESPACE")
	}
	for i, c := range t.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, i)
			head = append(head, strings.ToUpper(c.Name))
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	if len(t.Rows) == 0 {
		tw.Flush()
		fmt.Fprintln(w, "(none)")
		return nil
	}
	for _, r := range t.Rows {
		var cells []string
		if allNamespaces {
			var meta struct {
				Metadata struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			_ = json.Unmarshal(r.Object.Raw, &meta)
			cells = append(cells, meta.Metadata.Namespace)
		}
		for _, i := range cols {
			cells = append(cells, cell(t.ColumnDefinitions[i], r.Cells[i]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell formats a table cell as kubectl does: dates as ages, nothing as <none> or empty.
func cell(c metav1.TableColumnDefinition, v any) string {
	if v == nil {
		return ""
	}
	if c.Type == "date" {
		if s, ok := v.(string); ok {
			if ts, err := time.Parse(time.RFC3339, s); err == nil {
				return duration.HumanDuration(time.Since(ts))
			}
		}
	}
	return fmt.Sprint(v)
}

// PrintTables prints the tables the guides show: pools, SpiderMultusConfigs, endpoints, pods.
func (s *Sandbox) PrintTables(ctx context.Context, w io.Writer) error {
	for _, t := range []struct {
		cmd, path string
		all       bool
	}{
		{"kubectl get spiderippool", "/apis/spiderpool.spidernet.io/v2beta1/spiderippools", false},
		{"kubectl get spidermultusconfig -A", "/apis/spiderpool.spidernet.io/v2beta1/spidermultusconfigs", true},
		{"kubectl get network-attachment-definitions -A", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions", true},
		{"kubectl get se", "/apis/spiderpool.spidernet.io/v2beta1/namespaces/default/spiderendpoints", false},
	} {
		fmt.Fprintf(w, "\n$ %s\n", t.cmd)
		if err := PrintTable(ctx, s.Config, w, t.path, t.all); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\n$ kubectl get pod -o wide\n")
	return s.printPods(ctx, w)
}

// printPods is `kubectl get pod -o wide` for the columns that matter here.
func (s *Sandbox) printPods(ctx context.Context, w io.Writer) error {
	var pods corev1.PodList
	if err := s.Client.List(ctx, &pods, client.InNamespace("default")); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tIP\tNODE\tNETWORKS")
	for _, p := range pods.Items {
		nets := p.Annotations[annotationDefaultNetwork]
		if nets == "" {
			nets = "(cluster network)"
		}
		if extra := p.Annotations[annotationNetworks]; extra != "" {
			nets += " + " + extra
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Status.Phase, p.Status.PodIP, p.Spec.NodeName, nets)
	}
	return tw.Flush()
}

// Check is one cell of the connectivity matrix.
type Check struct {
	From, To string // row and column labels
	Target   string // address[:port] probed
	Ping     bool   // ping probed
	TCP      bool   // TCP probed (answer must be Banner)
	Banner   string
	Err      error
}

// OK reports whether the probe passed.
func (c *Check) OK() bool { return c.Err == nil }

// Matrix is the connectivity matrix: rows are sources, columns what they reach.
type Matrix struct {
	Rows, Cols []string
	Cells      map[[2]string]*Check
}

// Failed lists the failed checks.
func (m *Matrix) Failed() []*Check {
	var out []*Check
	for _, r := range m.Rows {
		for _, c := range m.Cols {
			if ch := m.Cells[[2]string{r, c}]; ch != nil && !ch.OK() {
				out = append(out, ch)
			}
		}
	}
	return out
}

// Print writes the matrix and, below it, what each failure was.
func (m *Matrix) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM \\ TO\t"+strings.Join(m.Cols, "\t"))
	for _, r := range m.Rows {
		line := []string{r}
		for _, c := range m.Cols {
			ch := m.Cells[[2]string{r, c}]
			switch {
			case ch == nil:
				line = append(line, "-")
			case ch.OK():
				line = append(line, "ok "+ch.Target)
			default:
				line = append(line, "FAIL "+ch.Target)
			}
		}
		fmt.Fprintln(tw, strings.Join(line, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w, "(ok: ping and a TCP connection answered by the expected server; '-': not applicable)")
	for _, ch := range m.Failed() {
		fmt.Fprintf(w, "  FAIL %s -> %s (%s): %v\n", ch.From, ch.To, ch.Target, ch.Err)
	}
}

// Connectivity probes what the scenario's pods must reach (ping and TCP, in parallel) and
// returns the matrix.
func (s *Sandbox) Connectivity(ctx context.Context) (*Matrix, error) {
	m := &Matrix{Cells: map[[2]string]*Check{}}
	add := func(from, to string, ch *Check) {
		ch.From, ch.To = from, to
		m.Cells[[2]string{from, to}] = ch
		if !contains(m.Rows, from) {
			m.Rows = append(m.Rows, from)
		}
		if !contains(m.Cols, to) {
			m.Cols = append(m.Cols, to)
		}
	}
	var svc corev1.Service
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: ServiceName}, &svc); err != nil {
		return nil, err
	}
	pod := func(app, node string) (map[string][]netip.Addr, ns.NetNS, error) {
		n := s.Node(node)
		if n.guest != nil {
			ips, _, err := s.podFromAPI(ctx, PodName(app, node))
			return ips, nil, err
		}
		ips, netns, ok := n.kubelet.podIPs("default", PodName(app, node))
		if !ok {
			return nil, nil, fmt.Errorf("pod %s is not running", PodName(app, node))
		}
		return ips, netns, nil
	}
	// Every node answers TCP on its first address, as a host service would (a guest node's own
	// process serves it).
	for i, n := range s.Nodes {
		if n.guest != nil {
			continue
		}
		srv, err := netsim.ServeTCP(n.Net.NS, netip.AddrPortFrom(s.sc.nodeIP(i, 0), 8080), "node "+n.Name)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
	}
	nodes := s.opts.Nodes
	var apps []string
	for _, w := range s.sc.workloads(s.cniType) {
		apps = append(apps, w.app)
	}
	for i, node := range nodes {
		other := nodes[(i+1)%len(nodes)]
		for ai, app := range apps {
			ips, _, err := pod(app, node)
			if err != nil {
				return nil, err
			}
			from := PodName(app, node)
			target := func(app, node, ifName string) (netip.Addr, error) {
				ips, _, err := pod(app, node)
				if err != nil {
					return netip.Addr{}, err
				}
				if len(ips[ifName]) == 0 {
					return netip.Addr{}, fmt.Errorf("pod %s has no address on %s", PodName(app, node), ifName)
				}
				return ips[ifName][0], nil
			}
			probePod := func(col, app, node, ifName string) {
				ch := &Check{Ping: true, TCP: true, Banner: PodName(app, node)}
				if a, err := target(app, node, ifName); err != nil {
					ch.Err = err
				} else {
					ch.Target = a.String()
				}
				add(from, col, ch)
			}
			if s.opts.Scenario == ScenarioPublicCloud {
				otherApp := apps[(ai+1)%len(apps)]
				probePod("pod same node (other subnet)", otherApp, node, "eth0")
				if len(nodes) > 1 {
					probePod("pod other node", app, other, "eth0")
					probePod("pod other node+subnet", otherApp, other, "eth0")
				}
				add(from, "gateway", &Check{Ping: true, Target: s.gatewayOf(ips["eth0"][0]).String()})
			} else {
				if len(nodes) > 1 {
					probePod("pod net1 other node", app, other, "net1")
					probePod("pod eth0 other node", app, other, "eth0")
				}
				add(from, "gateway", &Check{Ping: true, Target: s.sc.subnets[0].Gateway.String()})
			}
			add(from, "own host", &Check{Ping: true, TCP: true, Target: netip.AddrPortFrom(s.sc.nodeIP(i, 0), 8080).String(), Banner: "node " + node})
			add(from, "ClusterIP", &Check{TCP: true, Target: svc.Spec.ClusterIP + ":80", Banner: PodName(s.sc.serviceApp(), nodes[0])})
		}
	}
	// From outside: the LoadBalancer with externalTrafficPolicy Local reaches each node's own
	// backend through the node; in the overlay scenario the client reaches pods on net1.
	for i, node := range nodes {
		add("client (outside)", "LB Local via "+node, &Check{TCP: true,
			Target: netip.AddrPortFrom(s.sc.nodeIP(i, 0), NodePort).String(), Banner: PodName(s.sc.serviceApp(), node)})
		if s.opts.Scenario == ScenarioOverlay {
			ips, _, err := pod("nginx", node)
			if err == nil && len(ips["net1"]) > 0 {
				add("client (outside)", "net1 of "+PodName("nginx", node), &Check{Ping: true, TCP: true,
					Target: ips["net1"][0].String(), Banner: PodName("nginx", node)})
			}
		}
	}

	// Probe all cells in parallel.
	var wg sync.WaitGroup
	for key, ch := range m.Cells {
		if ch.Err != nil {
			continue
		}
		src := s.client.NS
		if key[0] != "client (outside)" {
			app, node := splitPodName(key[0], nodes)
			if n := s.Node(node); n.guest != nil {
				// The pod lives in the guest: the probe runs there.
				_, nsPath, err := s.podFromAPI(ctx, key[0])
				if err != nil {
					ch.Err = err
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ch.Err = n.guestProbe(nsPath, ch)
				}()
				continue
			}
			_, netns, err := pod(app, node)
			if err != nil {
				ch.Err = err
				continue
			}
			src = netns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.Err = probe(src, ch)
		}()
	}
	wg.Wait()
	sort.SliceStable(m.Rows, func(i, j int) bool { return m.Rows[i] != "client (outside)" && m.Rows[j] == "client (outside)" })
	return m, nil
}

// probe runs a check's ping and TCP probes from src.
func probe(src ns.NetNS, ch *Check) error {
	host := ch.Target
	var port string
	if ap, err := netip.ParseAddrPort(ch.Target); err == nil {
		host, port = ap.Addr().String(), fmt.Sprint(ap.Port())
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("bad target %q", ch.Target)
	}
	if ch.Ping {
		if err := netsim.Ping(src, addr, 3*time.Second); err != nil {
			return err
		}
	}
	if ch.TCP {
		if port == "" {
			port = "80"
		}
		got, err := netsim.DialTCP(src, netip.Addr{}, netip.MustParseAddrPort(addr.String()+":"+port), 3*time.Second)
		if err != nil {
			return err
		}
		if got != ch.Banner {
			return fmt.Errorf("tcp %s:%s answered by %q, want %q", addr, port, got, ch.Banner)
		}
	}
	return nil
}

func (s *Sandbox) gatewayOf(a netip.Addr) netip.Addr {
	for _, sub := range s.sc.subnets {
		if sub.CIDR.Contains(a) {
			return sub.Gateway
		}
	}
	return netip.Addr{}
}

func splitPodName(pod string, nodes []string) (app, node string) {
	for _, n := range nodes {
		if strings.HasSuffix(pod, "-"+n) {
			return strings.TrimSuffix(pod, "-"+n), n
		}
	}
	return pod, ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
