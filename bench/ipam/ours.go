package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// runOurs measures our IPAM through the real plugin binary and one in-process agent per node:
// first with group commit (ours), then with one write per IP (the per_ip baseline).
func runOurs(ctx context.Context, env *testenv.Env, o options, work string, r *report) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	plugin := filepath.Join(work, "spiderpool")
	step("building the spiderpool plugin")
	goBuild := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/spiderpool")
	goBuild.Dir = root
	if out, err := goBuild.CombinedOutput(); err != nil {
		return fmt.Errorf("build plugin: %v: %s", err, out)
	}
	// The plugin processes inherit this: they log under work, never to the host's /var/log/spidernet.
	if err := os.Setenv(cnilog.DirEnv, work); err != nil {
		return err
	}

	nodes := make([]string, o.nodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%02d", i)
		if err := env.Client.Create(ctx, build.Node(nodes[i])); err != nil {
			return fmt.Errorf("create node: %w", err)
		}
	}
	step("creating %d pods on %d nodes", o.pods, o.nodes)
	pods := make([]*corev1.Pod, o.pods)
	var createErr error
	var mu sync.Mutex
	testutil.Parallel(o.pods, 32, func(i int) {
		p := build.Pod("default", fmt.Sprintf("bench-%05d", i), build.OnNode(nodes[i%o.nodes]), build.Container("c", "pause"))
		if err := env.Client.Create(ctx, p); err != nil {
			mu.Lock()
			createErr = err
			mu.Unlock()
			return
		}
		pods[i] = p
	})
	if createErr != nil {
		return fmt.Errorf("create pods: %w", createErr)
	}

	for _, m := range []mode{
		{name: "blocks (SpiderIPBlocks)", pool: "bench-pool-blocks", blocks: true},
		{name: "ours (group commit on the pool)", pool: "bench-pool"},
		{name: "per_ip (one write per IP)", pool: "bench-pool-per-ip", unbatched: true},
	} {
		if m.unbatched && o.skipPerIP || !m.blocks && o.blocksOnly {
			continue
		}
		res, err := runMode(ctx, env, o, work, plugin, nodes, pods, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		step("%s: %.0f/s, ADD p50 %.1fms p99 %.1fms, %d writes, %d conflicts, dup=%d leaked=%d",
			m.name, res.rate, ms(res.lat.percentile(50)), ms(res.lat.percentile(99)), res.commits, res.conflicts, res.dup, res.leaked)
		switch {
		case m.unbatched:
			r.PerIPPerSec = res.rate
		case m.blocks:
			r.BlocksPerSec = res.rate
			r.BlocksAddP50Ms, r.BlocksAddP99Ms = ms(res.lat.percentile(50)), ms(res.lat.percentile(99))
			r.BlocksCommits, r.BlocksConflicts = res.commits, res.conflicts
		default:
			r.OursPerSec = res.rate
			r.AddP50Ms, r.AddP99Ms = ms(res.lat.percentile(50)), ms(res.lat.percentile(99))
			r.Commits, r.Conflicts = res.commits, res.conflicts
		}
		r.Duplicates += res.dup
		r.Leaked += res.leaked
	}

	// Latency against load (Little's law: with n in flight the mean ADD is n / rate): the same
	// agents and plugin with 1 and 5 ADDs in flight, on a part of the pods; 50 is the run above.
	// Both stores, so that the gain is visible in one run.
	for _, m := range []mode{{name: "blocks", blocks: true}, {name: "ours"}} {
		if !m.blocks && o.blocksOnly {
			continue
		}
		first := inFlight{Store: m.name, InFlight: o.conc, Pods: o.pods, PerSec: r.OursPerSec, P50Ms: r.AddP50Ms, P99Ms: r.AddP99Ms}
		if m.blocks {
			first.PerSec, first.P50Ms, first.P99Ms = r.BlocksPerSec, r.BlocksAddP50Ms, r.BlocksAddP99Ms
		}
		r.Latency = append(r.Latency, first)
		for _, conc := range []int{1, 5} {
			if conc >= o.conc {
				continue
			}
			so := o
			so.conc, so.pods = conc, min(o.pods, 100*conc)
			m.pool = fmt.Sprintf("bench-pool-%s-%d-in-flight", m.name, conc)
			res, err := runMode(ctx, env, so, work, plugin, nodes, pods[:so.pods], m)
			if err != nil {
				return fmt.Errorf("%s, %d in flight: %w", m.name, conc, err)
			}
			r.Duplicates += res.dup
			r.Leaked += res.leaked
			r.Latency = append(r.Latency, inFlight{Store: m.name, InFlight: conc, Pods: so.pods, PerSec: res.rate,
				P50Ms: ms(res.lat.percentile(50)), P99Ms: ms(res.lat.percentile(99))})
		}
	}
	slices.SortStableFunc(r.Latency, func(a, b inFlight) int {
		if c := strings.Compare(a.Store, b.Store); c != 0 {
			return c
		}
		return a.InFlight - b.InFlight
	})
	for _, l := range r.Latency {
		step("%s, %d in flight: %.0f/s, ADD p50 %.1fms p99 %.1fms (%d pods)", l.Store, l.InFlight, l.PerSec, l.P50Ms, l.P99Ms, l.Pods)
	}
	return nil
}

// mode is one way of running the agents.
type mode struct {
	name      string
	pool      string
	unbatched bool // kubestore without group commit: one write per IP
	blocks    bool // blockstore
}

// inFlight is the ADD latency of one concurrency level.
type inFlight struct {
	Store    string  `json:"store"`
	InFlight int     `json:"inFlight"`
	Pods     int     `json:"pods"`
	PerSec   float64 `json:"perSec"`
	P50Ms    float64 `json:"addP50Ms"`
	P99Ms    float64 `json:"addP99Ms"`
}

type modeResult struct {
	requests           string // API requests per ADD by verb and resource
	rate               float64
	lat                latencies
	dup, leaked        int
	commits, conflicts int64
}

// runMode starts the agents, ADDs every pod through the plugin, checks the records, DELs every
// pod and counts what is left.
func runMode(ctx context.Context, env *testenv.Env, o options, work, plugin string, nodes []string, pods []*corev1.Pod, m mode) (*modeResult, error) {
	poolName := m.pool
	set, _ := ip.ParseSetWithCIDRs([]string{"10.64.0.0/14"}, 4)
	first := set.Ranges()[0].First.Next()
	last := first
	for range o.pods - 1 {
		last = last.Next()
	}
	pool := build.Pool(poolName, "10.64.0.0/14", build.Default(), build.IPs(ip.Range{First: first, Last: last}.String()))
	if m.blocks {
		// What the controller's conversion sets: the agents keep this pool's records in blocks.
		pool.Annotations = map[string]string{ipblock.AnnoIPAMFormat: ipblock.FormatBlocks}
	}
	if err := env.Client.Create(ctx, pool); err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	defer env.Client.Delete(context.WithoutCancel(ctx), pool)

	step("starting %d agents (%s)", len(nodes), m.name)
	actx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	sockets := make([]string, len(nodes))
	for i, node := range nodes {
		cfg := agent.DefaultConfig(node)
		cfg.SocketPath = filepath.Join(work, fmt.Sprintf("a%d-%s.sock", i, poolName))
		cfg.HealthAddr, cfg.MetricsAddr = "127.0.0.1:0", ""
		cfg.EnableIPv6 = false
		cfg.Unbatched = m.unbatched
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		sockets[i] = cfg.SocketPath
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(actx, cfg, env.Config); err != nil {
				slog.Error("agent stopped", "node", node, "error", err)
			}
		}()
	}
	// The first ADD waits for the agent's socket and caches; warm every agent with a health call
	// so that start-up is not measured as allocation time.
	for _, s := range sockets {
		if err := waitHealthy(ctx, plugin, s); err != nil {
			return nil, err
		}
	}

	confFor := func(socket string) []byte {
		b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "ipvlan",
			"ipam": map[string]any{"type": "spiderpool", "ipam_unix_socket_path": socket, "log_level": "ERROR",
				"log_file_path": filepath.Join(work, "plugin.log")}})
		return b
	}
	call := func(cmd string, i int) ([]byte, time.Duration, error) {
		p := pods[i]
		return cniCall{Binary: plugin, Command: cmd, ContainerID: "ctr-" + string(p.UID), IfName: "eth0",
			Netns: "/var/run/netns/" + p.Name, Args: podArgs(p.Namespace, p.Name, string(p.UID)),
			Config: confFor(sockets[i%len(nodes)])}.run(ctx)
	}

	step("ADD %d pods, %d in flight", o.pods, o.conc)
	res := &modeResult{}
	var (
		mu    sync.Mutex
		addrs []netip.Addr
		errs  []error
	)
	before, err := recordWrites(ctx, env, m.blocks)
	if err != nil {
		return nil, err
	}
	metricsBefore, err := apiMetrics(ctx, env)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	testutil.Parallel(o.pods, o.conc, func(i int) {
		out, d, err := call("ADD", i)
		var addr netip.Addr
		if err == nil {
			addr, err = firstAddress(out)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		res.lat = append(res.lat, d)
		addrs = append(addrs, addr)
	})
	elapsed := time.Since(t0)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d ADDs failed, first: %w", len(errs), o.pods, errs[0])
	}
	res.rate = rate(o.pods, elapsed)
	res.dup = duplicates(addrs)
	after, err := recordWrites(ctx, env, m.blocks)
	if err != nil {
		return nil, err
	}
	res.commits, res.conflicts = after.ok-before.ok, after.conflict-before.conflict
	if metricsAfter, err := apiMetrics(ctx, env); err == nil {
		res.requests = perADD(requestCounts(metricsBefore), requestCounts(metricsAfter), o.pods)
		step("%s: API requests per ADD: %s", m.name, res.requests)
	}
	if err := checkRecords(ctx, env, poolName, m.blocks, len(addrs)); err != nil {
		return nil, err
	}

	step("DEL %d pods", o.pods)
	testutil.Parallel(o.pods, o.conc, func(i int) {
		if _, _, err := call("DEL", i); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d DELs failed, first: %w", len(errs), errs[0])
	}
	left, err := records(ctx, env, poolName, m.blocks)
	if err != nil {
		return nil, err
	}
	res.leaked = left
	var eps v2beta1.SpiderEndpointList
	if err := env.Client.List(ctx, &eps); err != nil {
		return nil, err
	}
	res.leaked += len(eps.Items)
	return res, nil
}

// checkRecords verifies that the pool holds exactly one record per successful ADD.
func checkRecords(ctx context.Context, env *testenv.Env, poolName string, blocks bool, adds int) error {
	n, err := records(ctx, env, poolName, blocks)
	if err != nil {
		return err
	}
	if n != adds {
		return fmt.Errorf("pool %s holds %d records after %d ADDs", poolName, n, adds)
	}
	return nil
}

// records counts the records of a pool: in its status, or in its blocks, each address once.
func records(ctx context.Context, env *testenv.Env, poolName string, blocks bool) (int, error) {
	if !blocks {
		var p v2beta1.SpiderIPPool
		if err := env.Client.Get(ctx, client.ObjectKey{Name: poolName}, &p); err != nil {
			return 0, err
		}
		allocs, err := p.Status.Allocations()
		return len(allocs), err
	}
	var list ipblock.SpiderIPBlockList
	if err := env.Client.List(ctx, &list, client.MatchingLabels{ipblock.LabelPool: poolName}); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, b := range list.Items {
		for a := range b.Spec.Records {
			if seen[a] {
				return 0, fmt.Errorf("pool %s: %s recorded in two blocks", poolName, a)
			}
			seen[a] = true
		}
	}
	return len(seen), nil
}

func firstAddress(out []byte) (netip.Addr, error) {
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return netip.Addr{}, fmt.Errorf("parse result %q: %w", out, err)
	}
	if len(res.IPs) != 1 {
		return netip.Addr{}, fmt.Errorf("result has %d IPs: %s", len(res.IPs), out)
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	return p.Addr(), err
}

// waitHealthy polls the agent through the plugin's STATUS command until it answers.
func waitHealthy(ctx context.Context, plugin, socket string) error {
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "bench", "type": "ipvlan",
		"ipam": map[string]any{"type": "spiderpool", "ipam_unix_socket_path": socket, "log_level": "ERROR"}})
	deadline := time.Now().Add(time.Minute)
	for {
		_, _, err := cniCall{Binary: plugin, Command: "STATUS", Config: conf}.run(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent at %s not healthy: %w", socket, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
