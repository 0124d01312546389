// Command scale is the scale benchmark (`make bench-scale`, docs/design/ipam-blocks.md). It
// measures what grows with a cluster rather than with the allocation rate. Today it measures one
// figure: the resident memory of a real spiderpool-agent process whose informers cache P pools of
// A addresses each and E SpiderEndpoints, with R records spread over the pools (issue 16's target:
// under 80 MiB for 100 pools x 4,096 addresses and 5,000 endpoints). The control plane is a real
// etcd and kube-apiserver; the agent is the binary of _output/bin, run as its own process.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

type options struct {
	pools, addrs, endpoints, records int
	agent, out                       string
	settle                           time.Duration
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
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench scale: %v\n", err)
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
	agentBin, err := filepath.Abs(o.agent)
	if err != nil {
		return err
	}
	if _, err := os.Stat(agentBin); err != nil {
		return fmt.Errorf("agent binary: %w (run make build)", err)
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
	rss, peak, err := memory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	r.AgentRSSMiB, r.AgentPeakMiB = rss, peak

	if _, err := benchenv.WriteReport(o.out, "scale", r.Time, r); err != nil {
		return err
	}
	fmt.Printf("bench scale: pools=%d addresses/pool=%d records=%d endpoints=%d agent_rss=%.1fMiB agent_peak_rss=%.1fMiB target<80MiB ratio=%.2f ready=%.1fs\n",
		r.Pools, r.AddrsPerPool, r.Records, r.Endpoints, r.AgentRSSMiB, r.AgentPeakMiB, r.AgentRSSMiB/80, r.AgentSyncSecs)
	return nil
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
