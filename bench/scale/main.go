// Command scale is the scale benchmark (`make bench-scale`, docs/design/ipam-blocks.md). It
// measures what grows with a cluster rather than with the allocation rate, on a real etcd and
// kube-apiserver, in three figures (issue 16):
//
//   - memory: the resident set of a real spiderpool-agent process (the binary of _output/bin, run
//     as its own process) whose informers cache P pools of A addresses each and E SpiderEndpoints,
//     with R records spread over the pools (target: under 80 MiB for 100 pools x 4,096 addresses
//     and 5,000 endpoints);
//   - fill and empty: a block-format pool of 65,536 addresses filled to its last address by 10
//     in-process agents (informer, block store and allocator, as internal/agent wires them), one
//     allocation more refused as exhausted, then emptied; with the size the same records would
//     take in the status format against etcd's request limit;
//   - watch traffic: the apiserver's watch bytes per allocation (its apiserver_watch_events_sizes)
//     while the agents allocate, with 100 and 1,000 label-selected watchers of SpiderIPBlocks and
//     pools of 1,024 and 65,536 addresses; and, for contrast, the status format with 100 watchers
//     of SpiderIPPools.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/bench/benchenv"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/logging"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

type options struct {
	pools, addrs, endpoints, records int
	agent, out                       string
	settle                           time.Duration

	agents, fill, fillInFlight int
	watch                      watchOptions
	skipMemory, skipFill       bool
	skipWatch                  bool
	cpuProfile                 string
}

// report is what the run writes as JSON.
type report struct {
	Time          time.Time `json:"time"`
	Pools         int       `json:"pools"`
	AddrsPerPool  int       `json:"addressesPerPool"`
	Endpoints     int       `json:"endpoints"`
	Records       int       `json:"records"`
	AgentRSSMiB   float64   `json:"agentRSSMiB"`
	AgentPeakMiB  float64   `json:"agentPeakRSSMiB"`
	AgentSyncSecs float64   `json:"agentReadySeconds"`

	Fill  *fillReport  `json:"fill,omitempty"`
	Watch *watchReport `json:"watch,omitempty"`
}

func main() {
	var o options
	flag.IntVar(&o.pools, "pools", 100, "SpiderIPPools")
	flag.IntVar(&o.addrs, "addresses", 4096, "addresses of each pool (a power of two up to 65,536)")
	flag.IntVar(&o.endpoints, "endpoints", 5000, "SpiderEndpoints")
	flag.IntVar(&o.records, "records", 5000, "pool records, spread evenly over the pools (one per endpoint)")
	flag.StringVar(&o.agent, "agent", "_output/bin/spiderpool-agent", "the spiderpool-agent binary")
	flag.StringVar(&o.out, "out", "_output/bench", "directory for the JSON report")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "how long the agent runs after it is ready before its memory is read")
	flag.IntVar(&o.agents, "agents", 10, "in-process agents (simulated nodes) of the fill and watch figures")
	flag.IntVar(&o.fill, "fill", 65536, "addresses of the block-format pool filled and emptied (a multiple of 32 up to 65,536)")
	flag.IntVar(&o.fillInFlight, "fill-in-flight", 64, "allocations in flight on each agent while filling and emptying")
	flag.IntVar(&o.watch.fewWatchers, "watchers", 100, "extra watchers of the fewer-watchers rows")
	flag.IntVar(&o.watch.manyWatchers, "many-watchers", 1000, "extra watchers of the more-watchers rows")
	flag.IntVar(&o.watch.allocs, "watch-allocations", 800, "allocations of each watch-traffic row (with one more per agent, at most 80% of -small-pool, so that no node borrows)")
	flag.IntVar(&o.watch.inFlight, "watch-in-flight", 5, "allocations in flight on each agent in the watch-traffic rows")
	flag.IntVar(&o.watch.large, "large-pool", 65536, "addresses of the large pool of the watch-traffic rows")
	flag.IntVar(&o.watch.small, "small-pool", 1024, "addresses of the small pool of the watch-traffic rows")
	flag.IntVar(&o.watch.status, "status-pool", 4096, "addresses of the status-format pool of the watch-traffic contrast row")
	flag.BoolVar(&o.skipMemory, "skip-memory", false, "do not measure the agent's memory")
	flag.BoolVar(&o.skipFill, "skip-fill", false, "do not fill and empty the large pool")
	flag.BoolVar(&o.skipWatch, "skip-watch", false, "do not measure watch traffic")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the in-process agents) to the file")
	flag.Parse()
	// The in-process agents log through the default logger; only their warnings are of interest.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	logging.SetupLibraries(slog.Default().Handler())
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench scale: cpu profile: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench scale: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

var step = benchenv.Step

func run(ctx context.Context, o options) error {
	if o.addrs < 1 || o.addrs > 65536 || o.addrs&(o.addrs-1) != 0 {
		return fmt.Errorf("-addresses %d: a power of two from 1 to 65,536", o.addrs)
	}
	if o.pools < 1 || o.pools > 4096 {
		return fmt.Errorf("-pools %d: 1 to 4,096", o.pools)
	}
	if o.records > o.pools*o.addrs {
		return fmt.Errorf("-records %d: more than the %d addresses of the pools", o.records, o.pools*o.addrs)
	}
	if o.fill < 32 || o.fill > 65536 || o.fill%32 != 0 {
		return fmt.Errorf("-fill %d: a multiple of 32 from 32 to 65,536", o.fill)
	}
	w := o.watch
	for _, size := range []int{w.large, w.small, w.status} {
		if size < 32 || size > 65536 || size%32 != 0 {
			return fmt.Errorf("watch-traffic pool of %d addresses: a multiple of 32 from 32 to 65,536", size)
		}
	}
	if w.allocs < 1 || w.allocs+o.agents > w.small*4/5 || w.allocs+o.agents > w.status {
		return fmt.Errorf("-watch-allocations %d: with one more per agent, at most 80%% of -small-pool (%d) and -status-pool (%d)", w.allocs, w.small, w.status)
	}
	if o.agents < 1 || w.fewWatchers < 1 || w.manyWatchers < w.fewWatchers {
		return fmt.Errorf("-agents, -watchers and -many-watchers: at least 1, and -many-watchers at least -watchers")
	}
	work, err := os.MkdirTemp("", "bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	env, kubeconfig, err := benchenv.Start(testenv.Options{}, work)
	if err != nil {
		return err
	}
	defer env.Stop()

	r := report{Time: time.Now().UTC(), Pools: o.pools, AddrsPerPool: o.addrs, Endpoints: o.endpoints, Records: o.records}
	if !o.skipMemory {
		if err := runMemory(ctx, env, kubeconfig, work, o, &r); err != nil {
			return err
		}
	}
	if !o.skipFill || !o.skipWatch {
		step("starting %d in-process agents with the block store", o.agents)
		// The agents' --max-records (5,000 by default) would stop a pool at 5,000 records whatever
		// its format; these agents are configured for the pool sizes measured.
		blockFleet, err := startFleet(ctx, env, "scale-node", o.agents, true, 1<<20)
		if err != nil {
			return err
		}
		defer blockFleet.stop()
		if !o.skipFill {
			if r.Fill, err = runFill(ctx, env, blockFleet, o.fill, o.fillInFlight); err != nil {
				return err
			}
		}
		if !o.skipWatch {
			if r.Watch, err = runWatch(ctx, env, blockFleet, o.watch); err != nil {
				return err
			}
		}
	}

	if _, err := benchenv.WriteReport(o.out, "scale", r.Time, r); err != nil {
		return err
	}
	printSummary(&r, o)
	return nil
}

// printSummary prints the figures, one line each, and last a line with all of them.
func printSummary(r *report, o options) {
	var last []string
	if !o.skipMemory {
		fmt.Printf("bench scale: pools=%d addresses/pool=%d records=%d endpoints=%d agent_rss=%.1fMiB agent_peak_rss=%.1fMiB target<80MiB ratio=%.2f ready=%.1fs\n",
			r.Pools, r.AddrsPerPool, r.Records, r.Endpoints, r.AgentRSSMiB, r.AgentPeakMiB, r.AgentRSSMiB/80, r.AgentSyncSecs)
		last = append(last, fmt.Sprintf("agent_rss=%.1fMiB", r.AgentRSSMiB))
	}
	if f := r.Fill; f != nil {
		fmt.Printf("fill: addresses=%d agents=%d in_flight=%d fill=%.0f/s (%.1fs) empty=%.0f/s (%.1fs) records_full=%d records_end=%d dup=%d exhausted_when_full=%t too_large_errors=%d blocks=%d largest_block=%dB status_format=%.2fMiB etcd_limit=%.1fMiB (%.1fx)\n",
			f.Addresses, f.Agents, f.InFlight, f.FillPerSec, f.FillSeconds, f.EmptyPerSec, f.EmptySeconds, f.RecordsFull, f.RecordsEnd, f.Duplicates,
			f.Exhausted, f.TooLargeErrors, f.Blocks, f.LargestBlockBytes, mib(f.StatusFormatBytes), mib(f.EtcdRequestLimitBytes),
			float64(f.StatusFormatBytes)/float64(f.EtcdRequestLimitBytes))
		last = append(last, fmt.Sprintf("fill=%d/%d fill_rate=%.0f/s empty_rate=%.0f/s blocks=%d largest_block=%dB status_format=%.1fMiB/1.5MiB",
			f.RecordsFull, f.Addresses, f.FillPerSec, f.EmptyPerSec, f.Blocks, f.LargestBlockBytes, mib(f.StatusFormatBytes)))
	}
	if wr := r.Watch; wr != nil {
		fmt.Printf("watch: %-6s %8s %6s %6s %10s %10s %12s %12s\n", "format", "watchers", "pool", "allocs", "events", "MiB", "bytes/alloc", "events/alloc")
		for _, row := range wr.Rows {
			fmt.Printf("watch: %-6s %8d %6d %6d %10d %10.2f %12.0f %12.2f\n", row.Format, row.Watchers, row.PoolAddresses, row.Allocations,
				row.Events, mib(int(row.Bytes)), row.BytesPerAlloc, row.EventsPerAlloc)
		}
		few, many, small, status := wr.Rows[0], wr.Rows[1], wr.Rows[2], wr.Rows[3]
		fmt.Printf("watch ratios: watchers %d/%d=%.2f pool %d/%d=%.2f status/blocks (%d watchers)=%.1fx closed_by_server=%d\n",
			many.Watchers, few.Watchers, wr.WatchersRatio, many.PoolAddresses, small.PoolAddresses, wr.PoolRatio, few.Watchers, wr.StatusRatio, wr.Closed)
		if wr.Note != "" {
			fmt.Printf("watch note: %s\n", wr.Note)
		}
		last = append(last, fmt.Sprintf("watch_bytes/alloc blocks_w%d=%.0f blocks_w%d=%.0f (x%.2f) blocks_w%d_pool%d=%.0f (pool x%.2f) status_w%d=%.0f (x%.1f)",
			few.Watchers, few.BytesPerAlloc, many.Watchers, many.BytesPerAlloc, wr.WatchersRatio, small.Watchers, small.PoolAddresses, small.BytesPerAlloc,
			wr.PoolRatio, status.Watchers, status.BytesPerAlloc, wr.StatusRatio))
	}
	fmt.Printf("bench scale: %s\n", strings.Join(last, " "))
}

// runMemory starts the agent binary on the populated cluster and reads its memory once it has
// settled; the agent is stopped on return.
func runMemory(ctx context.Context, env *testenv.Env, kubeconfig, work string, o options, r *report) error {
	agentBin, err := filepath.Abs(o.agent)
	if err != nil {
		return err
	}
	if _, err := os.Stat(agentBin); err != nil {
		return fmt.Errorf("agent binary: %w (run make build)", err)
	}
	step("creating %d pools of %d addresses with %d records, and %d SpiderEndpoints", o.pools, o.addrs, o.records, o.endpoints)
	if err := populate(ctx, env.Client, o); err != nil {
		return err
	}

	step("starting %s", agentBin)
	socket := filepath.Join(work, "agent.sock")
	cmd := exec.CommandContext(ctx, agentBin, "--node-name", "scale-node", "--socket-path", socket,
		"--health-addr", "127.0.0.1:0", "--metrics-addr", "", "--kubeconfig", kubeconfig, "--log-level", "warn")
	cmd.Stderr, err = os.Create(filepath.Join(work, "agent.log"))
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c := agentclient.New(socket, agentclient.WithTimeout(2*time.Second))
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) { return c.Healthy(ctx) == nil, nil }); err != nil {
		return fmt.Errorf("agent never became healthy: %w", err)
	}
	r.AgentSyncSecs = time.Since(start).Seconds()
	step("agent ready in %.1fs (informers synced); reading its memory after %v", r.AgentSyncSecs, o.settle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.settle):
	}
	r.AgentRSSMiB, r.AgentPeakMiB, err = memory(cmd.Process.Pid)
	return err
}

// memory returns the resident set and its peak, in MiB, from /proc/pid/status.
func memory(pid int) (rss, peak float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb / 1024
		} else {
			peak = kb / 1024
		}
	}
	return rss, peak, sc.Err()
}

// populate creates the pools, their records and the endpoints, 16 writers at once.
func populate(ctx context.Context, c client.Client, o options) error {
	bits := 32
	for n := o.addrs; n > 1; n >>= 1 {
		bits--
	}
	perPool := make([]int, o.pools)
	for i := range o.records {
		perPool[i%o.pools]++
	}
	type job func(context.Context) error
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := j(ctx); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	var eps []string // pool of each endpoint's address, with the address
	for i := range o.pools {
		// Pool i covers 10.0.0.0/8 + i*addrs, a /bits of its own.
		base := netip.AddrFrom4([4]byte{10, byte(i * o.addrs >> 16), byte(i * o.addrs >> 8), byte(i * o.addrs)})
		prefix := netip.PrefixFrom(base, bits)
		last := base
		for range o.addrs - 1 {
			last = last.Next()
		}
		name := fmt.Sprintf("scale-%04d", i)
		allocs := v2beta1.PoolIPAllocations{}
		a := base.Next()
		for k := range perPool[i] {
			pod := fmt.Sprintf("scale/pod-%d-%d", i, k)
			allocs[a.String()] = v2beta1.PoolIPAllocation{NamespacedName: pod, PodUID: fmt.Sprintf("uid-%d-%d", i, k)}
			eps = append(eps, name+" "+a.String()+" "+pod)
			a = a.Next()
		}
		jobs <- func(ctx context.Context) error {
			p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: prefix.String(), IPs: []string{base.String() + "-" + last.String()}}}
			if err := c.Create(ctx, p); err != nil {
				return fmt.Errorf("create pool %s: %w", name, err)
			}
			if len(allocs) == 0 {
				return nil
			}
			if err := p.Status.SetAllocations(allocs); err != nil {
				return err
			}
			p.Status.AllocatedIPCount = ptr.To(int64(len(allocs)))
			return c.Status().Update(ctx, p)
		}
	}
	for i := range o.endpoints {
		line := fmt.Sprintf("scale-%04d 10.255.%d.%d scale/pod-x-%d", 0, i/250, i%250+1, i)
		if i < len(eps) {
			line = eps[i]
		}
		f := strings.Fields(line)
		pool, addr, pod := f[0], f[1], strings.TrimPrefix(f[2], "scale/")
		jobs <- func(ctx context.Context) error {
			// SpiderEndpoint has no status subresource: the agent creates it with its status.
			// Every endpoint names the agent's node, whose informer selects the endpoints of its
			// node only (status.current.node): so it caches all of them.
			ep := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: pod},
				Status: v2beta1.WorkloadEndpointStatus{
					Current: v2beta1.PodIPAllocation{UID: "uid-" + strings.TrimPrefix(pod, "pod-"), Node: "scale-node",
						IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(addr + "/" + strconv.Itoa(bits)), IPv4Pool: ptr.To(pool)}}},
					OwnerControllerType: "Pod", OwnerControllerName: pod,
				}}
			if err := c.Create(ctx, ep); err != nil {
				return fmt.Errorf("create endpoint %s: %w", pod, err)
			}
			return nil
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}
