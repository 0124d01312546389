// Command ipam is the IPAM benchmark (`make bench`). On a real control plane it measures, in one
// run: the apiserver's raw create rate, our allocation rate through the real spiderpool plugin and
// agents (group commit), the one-write-per-IP baseline, and Whereabouts v0.9.2 on the same
// apiserver; plus ADD latency percentiles, duplicated addresses and records leaked after DEL.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spiderpool-go/spiderpool/bench/benchenv"
	"github.com/spiderpool-go/spiderpool/internal/logging"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

type options struct {
	nodes, pods, conc, wbPods int
	out, plugin               string
	skipWhereabouts, skipOurs bool
	skipPerIP                 bool
	blocksOnly                bool
	cpuProfile                string
}

// report is what the run writes as JSON.
type report struct {
	Time       time.Time `json:"time"`
	Nodes      int       `json:"nodes"`
	Pods       int       `json:"pods"`
	Concurrent int       `json:"concurrentAdds"`

	RawCreatePerSec   float64 `json:"rawCreatePerSec"`
	OursPerSec        float64 `json:"oursPerSec"`
	BlocksPerSec      float64 `json:"blocksPerSec"`
	PerIPPerSec       float64 `json:"perIPPerSec"`
	WhereaboutsPerSec float64 `json:"whereaboutsPerSec"`
	WhereaboutsPods   int     `json:"whereaboutsPods"`

	AddP50Ms float64 `json:"addP50Ms"`
	AddP99Ms float64 `json:"addP99Ms"`

	Duplicates int `json:"duplicates"`
	Leaked     int `json:"leaked"`

	Commits   int64 `json:"commits"`
	Conflicts int64 `json:"conflicts"`

	BlocksAddP50Ms  float64 `json:"blocksAddP50Ms"`
	BlocksAddP99Ms  float64 `json:"blocksAddP99Ms"`
	BlocksCommits   int64   `json:"blocksCommits"`
	BlocksConflicts int64   `json:"blocksConflicts"`

	// Latency is each store's at 1, 5 and -concurrency ADDs in flight.
	Latency []inFlight `json:"latencyByInFlight,omitempty"`
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 10, "simulated nodes, one agent each")
	flag.IntVar(&o.pods, "pods", 1000, "pods, and IPs in the pool")
	flag.IntVar(&o.conc, "concurrency", 50, "ADDs in flight")
	flag.IntVar(&o.wbPods, "whereabouts-pods", 200, "pods for the Whereabouts run (it serialises on a lease, so fewer keep the run short; the figure is a rate)")
	flag.StringVar(&o.out, "out", "_output/bench", "directory for the JSON report")
	flag.StringVar(&o.plugin, "plugin", "_output/bin/spiderpool", "the spiderpool IPAM plugin binary")
	flag.BoolVar(&o.skipWhereabouts, "skip-whereabouts", false, "do not run Whereabouts")
	flag.BoolVar(&o.skipOurs, "skip-ours", false, "do not run our plugin (for working on the other phases)")
	flag.BoolVar(&o.skipPerIP, "skip-per-ip", false, "do not run the one-write-per-IP baseline")
	flag.BoolVar(&o.blocksOnly, "blocks-only", false, "run our plugin with block-format pools only (for working on the block store)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (agents included) to the file")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	// The agents run in this process: their libraries (controller-runtime, client-go) log through
	// the same handler, as the agent binary sets them up.
	logging.SetupLibraries(slog.Default().Handler())

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench ipam: cpu profile: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench ipam: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

var step = benchenv.Step

func run(ctx context.Context, o options) error {
	bin, err := testenv.ToolsBin()
	if err != nil {
		return err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-ipam-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	env, kubeconfig, err := benchenv.Start(testenv.Options{ExtraCRDDirs: []string{filepath.Join(root, ".tools", "crds", "whereabouts")}}, work)
	if err != nil {
		return err
	}
	defer env.Stop()

	r := report{Time: time.Now().UTC(), Nodes: o.nodes, Pods: o.pods, Concurrent: o.conc, WhereaboutsPods: o.wbPods}

	step("raw create rate: %d custom objects, 32 workers", o.pods)
	if r.RawCreatePerSec, err = rawCreateRate(ctx, env.Client, o.pods); err != nil {
		return err
	}
	step("raw create: %.0f/s", r.RawCreatePerSec)

	if !o.skipOurs {
		if err := runOurs(ctx, env, o, work, &r); err != nil {
			return err
		}
	}

	if !o.skipWhereabouts {
		step("whereabouts: %d pods, %d ADDs in flight", o.wbPods, o.conc)
		wb, addrs, err := whereaboutsRun(ctx, filepath.Join(bin, "whereabouts"), kubeconfig, work, o.wbPods, o.conc, netip.MustParsePrefix("10.210.0.0/20"))
		if err != nil {
			return err
		}
		if d := duplicates(addrs); d > 0 {
			return fmt.Errorf("whereabouts handed out %d duplicate addresses", d)
		}
		r.WhereaboutsPerSec = wb
		step("whereabouts: %.1f/s", wb)
	}

	if _, err := benchenv.WriteReport(o.out, "ipam", r.Time, r); err != nil {
		return err
	}
	if r.RawCreatePerSec > 0 && r.PerIPPerSec > 0 && r.WhereaboutsPerSec > 0 {
		fmt.Printf("ratios: blocks/raw_create=%.2f blocks/whereabouts=%.1fx blocks/ours=%.1fx ours/raw_create=%.2f ours/per_ip=%.1fx ours/whereabouts=%.1fx\n",
			r.BlocksPerSec/r.RawCreatePerSec, r.BlocksPerSec/r.WhereaboutsPerSec, r.BlocksPerSec/r.OursPerSec,
			r.OursPerSec/r.RawCreatePerSec, r.OursPerSec/r.PerIPPerSec, r.OursPerSec/r.WhereaboutsPerSec)
	}
	for _, l := range r.Latency {
		fmt.Printf("latency: store=%s in_flight=%d p50=%.1fms p99=%.1fms rate=%.0f/s\n", l.Store, l.InFlight, l.P50Ms, l.P99Ms, l.PerSec)
	}
	fmt.Printf("bench ipam: pods=%d nodes=%d blocks=%.0f/s ours=%.0f/s raw_create=%.0f/s per_ip=%.0f/s whereabouts=%.1f/s blocks_p50=%.1fms blocks_p99=%.1fms p50=%.1fms p99=%.1fms dup=%d leaked=%d\n",
		r.Pods, r.Nodes, r.BlocksPerSec, r.OursPerSec, r.RawCreatePerSec, r.PerIPPerSec, r.WhereaboutsPerSec, r.BlocksAddP50Ms, r.BlocksAddP99Ms, r.AddP50Ms, r.AddP99Ms, r.Duplicates, r.Leaked)
	return nil
}

// duplicates counts addresses that appear more than once.
func duplicates(addrs []netip.Addr) int {
	seen := make(map[netip.Addr]bool, len(addrs))
	d := 0
	for _, a := range addrs {
		if seen[a] {
			d++
		}
		seen[a] = true
	}
	return d
}
