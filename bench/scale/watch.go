package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"

	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// The resources whose watch traffic is measured, as the apiserver's metrics label them.
const (
	blocksPath = "/apis/internal.spiderpool-go.io/v1alpha1/spideripblocks"
	poolsPath  = "/apis/spiderpool.spidernet.io/v2beta1/spiderippools"
	blocksRes  = "spideripblocks"
	poolsRes   = "spiderippools"
)

// watchRow is the apiserver's watch traffic while the agents allocate Allocations addresses of one
// pool, with Watchers extra watchers of the agents' kind: label-selected watches of SpiderIPBlocks
// for nodes that allocate nothing (blocks), or watches of every SpiderIPPool (status, what today's
// agents hold). The agents' own informers and one unselected watch of the kind (the controller's
// informer) are there in every row.
type watchRow struct {
	Format        string `json:"format"`
	Watchers      int    `json:"watchers"`
	PoolAddresses int    `json:"poolAddresses"`
	Allocations   int    `json:"allocations"`
	// Events and Bytes are the deltas of apiserver_watch_events_total and of the sum of
	// apiserver_watch_events_sizes for the resource that holds the records.
	Events         int64   `json:"events"`
	Bytes          int64   `json:"bytes"`
	BytesPerAlloc  float64 `json:"bytesPerAllocation"`
	EventsPerAlloc float64 `json:"eventsPerAllocation"`
	// Served is the apiserver's count of the watches of that resource it served during the row
	// (apiserver_longrunning_requests): the extra watchers, the agents' and the controller's.
	Served int `json:"apiserverWatches"`
	// WatchersReceived is what the extra watchers read from their streams during the row.
	WatchersReceived int64   `json:"extraWatchersReceivedBytes"`
	AllocPerSec      float64 `json:"allocationsPerSec"`
}

// watchReport is the watch-traffic figure.
type watchReport struct {
	Rows []watchRow `json:"rows"`
	// WatchersRatio is bytes per allocation with the most watchers over the fewest (blocks, large
	// pool); PoolRatio the large pool's over the small one's (blocks, most watchers); StatusRatio the
	// status format's over the blocks' (the fewest watchers).
	WatchersRatio float64 `json:"watchersRatio"`
	PoolRatio     float64 `json:"poolRatio"`
	StatusRatio   float64 `json:"statusOverBlocksRatio"`
	// Closed counts the extra watches the apiserver ended before the run did (a slow reader).
	Closed int64 `json:"watchesClosedByServer"`
	// Note says why a figure differs from what was asked, if one does.
	Note string `json:"note,omitempty"`
}

// watchOptions says which rows to measure.
type watchOptions struct {
	fewWatchers, manyWatchers int
	allocs, inFlight          int
	large, small, status      int // pool sizes
}

// runWatch measures the rows: blocks with few and many watchers in a large pool, blocks with many
// watchers in a small pool, and the status format with few watchers.
func runWatch(ctx context.Context, env *testenv.Env, blockFleet *fleet, o watchOptions) (*watchReport, error) {
	r := &watchReport{}
	ws, err := newWatchers(env.Config)
	if err != nil {
		return nil, err
	}
	defer ws.stop()
	// The controller's informers: every block and every pool. What they read is not the extra
	// watchers'.
	var controller atomic.Int64
	if err := ws.start(ctx, blocksPath, []string{""}, &controller); err != nil {
		return nil, err
	}
	if err := ws.start(ctx, poolsPath, []string{""}, &controller); err != nil {
		return nil, err
	}

	nodeSelectors := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, blockstore.NodeSelector(fmt.Sprintf("watch-node-%04d", i)).String())
		}
		return out
	}
	// Each row has a pool of its own.
	blockRows := []struct {
		watchers int
		pool     poolSpec
	}{
		{o.fewWatchers, poolSpec{"scale-watch-0", netip.MustParseAddr("10.130.0.0"), o.large, true}},
		{o.manyWatchers, poolSpec{"scale-watch-1", netip.MustParseAddr("10.132.0.0"), o.large, true}},
		{o.manyWatchers, poolSpec{"scale-watch-2", netip.MustParseAddr("10.134.0.0"), o.small, true}},
	}
	started, limit := 0, -1
	for _, br := range blockRows {
		want := br.watchers
		if limit >= 0 {
			want = min(want, limit)
		}
		if want > started {
			step("watch: starting %d label-selected watches of SpiderIPBlocks, one per fake node", want-started)
			t0 := time.Now()
			if err := ws.start(ctx, blocksPath, nodeSelectors(started, want), &ws.received); err != nil {
				limit = ws.count(blocksPath) - 1 // the controller's watch is one of them
				if limit <= started {
					return nil, err
				}
				// Measure with what works, and say so.
				r.Note = fmt.Sprintf("only %d of %d watches of SpiderIPBlocks could be started: %v", limit, want, err)
				step("watch: %s", r.Note)
				want = limit
			}
			n, err := longRunningWatches(ctx, env.Config, blocksRes)
			if err != nil {
				return nil, err
			}
			step("watch: %d watches started in %.1fs; the apiserver serves %d watches of SpiderIPBlocks (these, the agents' and the controller's)",
				want-started, time.Since(t0).Seconds(), n)
			started = want
		}
		row, err := measure(ctx, env, ws, blockFleet, br.pool, started, o)
		if err != nil {
			return nil, err
		}
		r.Rows = append(r.Rows, *row)
	}
	ws.stopPath(blocksPath)
	blockFleet.stop()

	step("watch: starting %d kubestore agents (status format)", len(blockFleet.agents))
	statusFleet, err := startFleet(ctx, env, "status-node", len(blockFleet.agents), false, 0)
	if err != nil {
		return nil, err
	}
	defer statusFleet.stop()
	step("watch: starting %d watches of SpiderIPPools, as today's agents hold", o.fewWatchers)
	everyPool := make([]string, o.fewWatchers) // no label selector
	if err := ws.start(ctx, poolsPath, everyPool, &ws.received); err != nil {
		return nil, err
	}
	statusPool := poolSpec{"scale-watch-status", netip.MustParseAddr("10.136.0.0"), o.status, false}
	row, err := measure(ctx, env, ws, statusFleet, statusPool, o.fewWatchers, o)
	if err != nil {
		return nil, err
	}
	r.Rows = append(r.Rows, *row)
	r.Closed = ws.closed.Load()

	few, many, small, status := r.Rows[0], r.Rows[1], r.Rows[2], r.Rows[3]
	r.WatchersRatio = many.BytesPerAlloc / few.BytesPerAlloc
	r.PoolRatio = many.BytesPerAlloc / small.BytesPerAlloc
	r.StatusRatio = status.BytesPerAlloc / few.BytesPerAlloc
	return r, nil
}

// measure creates the pool and has the fleet allocate o.allocs addresses of it, o.inFlight per
// agent, with watchers extra watchers running, and returns the watch traffic of the resource
// holding the records.
func measure(ctx context.Context, env *testenv.Env, ws *watchers, f *fleet, pool poolSpec, watchers int, o watchOptions) (*watchRow, error) {
	name, size := pool.name, pool.size
	row := &watchRow{Format: "status", Watchers: watchers, PoolAddresses: size, Allocations: o.allocs}
	res := poolsRes
	if pool.blocks {
		row.Format, res = "blocks", blocksRes
	}
	if _, err := createPool(ctx, env.Client, pool); err != nil {
		return nil, err
	}
	// One warm-up allocation per agent, outside the window: every agent must have the pool in its
	// informer before the window opens, and the pool's creation event must be counted before it.
	pods := make([]*pod, len(f.agents)+o.allocs)
	for i := range pods {
		pods[i] = &pod{name: fmt.Sprintf("%s-%04d", name, i), uid: string(uuid.NewUUID()), agent: f.agents[i%len(f.agents)]}
	}
	for _, p := range pods[:len(f.agents)] {
		var lastErr error
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
			_, lastErr = p.agent.alloc.Allocate(ctx, allocRequest(p, name))
			return lastErr == nil, nil
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: first allocation on %s: %w (last error: %v)", name, p.agent.node, err, lastErr)
		}
	}
	before, err := settle(ctx, env.Config, res)
	if err != nil {
		return nil, err
	}
	received := ws.received.Load()
	step("watch: %s format, %d extra watchers, pool of %d: %d allocations, %d in flight", row.Format, watchers, size, o.allocs, o.inFlight*len(f.agents))
	elapsed, errs := parallel(ctx, "watch: allocated", pods[len(f.agents):], o.inFlight, func(ctx context.Context, p *pod) error {
		_, err := p.agent.alloc.Allocate(ctx, allocRequest(p, name))
		return err
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %d allocations failed, first: %w", name, len(errs), errs[0])
	}
	after, err := settle(ctx, env.Config, res)
	if err != nil {
		return nil, err
	}
	n := o.allocs
	row.Events, row.Bytes = after.events-before.events, after.bytes-before.bytes
	row.BytesPerAlloc, row.EventsPerAlloc = float64(row.Bytes)/float64(n), float64(row.Events)/float64(n)
	row.WatchersReceived = ws.received.Load() - received
	row.AllocPerSec = float64(n) / elapsed.Seconds()
	if row.Served, err = longRunningWatches(ctx, env.Config, res); err != nil {
		return nil, err
	}
	step("watch: %s format, %d extra watchers, pool of %d: %.0f bytes and %.2f events per allocation (%d events, %d bytes to %d watches; the extra watchers read %d bytes), %.0f/s",
		row.Format, watchers, size, row.BytesPerAlloc, row.EventsPerAlloc, row.Events, row.Bytes, row.Served, row.WatchersReceived, row.AllocPerSec)
	return row, nil
}

// watchers are plain watches (no informer, no decoding) that read their streams to the end.
type watchers struct {
	hc       *http.Client
	host     string
	received atomic.Int64 // bytes read from the streams of the extra watchers (not the controller's)
	closed   atomic.Int64 // streams the apiserver ended while the watch was wanted

	mu      sync.Mutex
	cancels map[string][]context.CancelFunc
	wg      sync.WaitGroup
}

func newWatchers(cfg *rest.Config) (*watchers, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &watchers{hc: hc, host: strings.TrimSuffix(cfg.Host, "/"), cancels: map[string][]context.CancelFunc{}}, nil
}

// start opens one watch of path per label selector ("" selects everything), from the current
// resourceVersion, 32 openings at a time, whose streams are counted in received; it returns once
// every watch is established (the apiserver has answered its headers).
func (ws *watchers) start(ctx context.Context, path string, selectors []string, received *atomic.Int64) error {
	rv, err := ws.resourceVersion(ctx, path)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, 32)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for _, sel := range selectors {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := ws.open(ctx, path, sel, rv, received); err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// resourceVersion is the current resourceVersion of path's collection.
func (ws *watchers) resourceVersion(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ws.host+path+"?limit=1", nil)
	if err != nil {
		return "", err
	}
	resp, err := ws.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", path, err)
	}
	defer resp.Body.Close()
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("list %s: %s: %v", path, resp.Status, err)
	}
	return list.Metadata.ResourceVersion, nil
}

// open establishes one watch, retrying while the apiserver sheds load (429), and reads it in the
// background until stop.
func (ws *watchers) open(ctx context.Context, path, selector, rv string, received *atomic.Int64) error {
	q := url.Values{"watch": {"true"}, "resourceVersion": {rv}, "timeoutSeconds": {"3600"}}
	if selector != "" {
		q.Set("labelSelector", selector)
	}
	wctx, cancel := context.WithCancel(ctx)
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(wctx, http.MethodGet, ws.host+path+"?"+q.Encode(), nil)
		if err != nil {
			cancel()
			return err
		}
		resp, err = ws.hc.Do(req)
		if err != nil {
			cancel()
			return fmt.Errorf("watch %s: %w", path, err)
		}
		if resp.StatusCode == http.StatusOK {
			break
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || attempt == 50 {
			cancel()
			return fmt.Errorf("watch %s: %s: %s", path, resp.Status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ws.mu.Lock()
	ws.cancels[path] = append(ws.cancels[path], cancel)
	ws.mu.Unlock()
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		defer resp.Body.Close()
		_, _ = io.Copy(countingWriter{received}, resp.Body)
		if wctx.Err() == nil {
			ws.closed.Add(1)
		}
	}()
	return nil
}

// count is the number of watches of path started.
func (ws *watchers) count(path string) int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.cancels[path])
}

// stopPath ends the watches of path.
func (ws *watchers) stopPath(path string) {
	ws.mu.Lock()
	cancels := ws.cancels[path]
	delete(ws.cancels, path)
	ws.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

// stop ends every watch and waits for their readers.
func (ws *watchers) stop() {
	ws.mu.Lock()
	paths := make([]string, 0, len(ws.cancels))
	for p := range ws.cancels {
		paths = append(paths, p)
	}
	ws.mu.Unlock()
	for _, p := range paths {
		ws.stopPath(p)
	}
	ws.wg.Wait()
}

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// watchTraffic is what the apiserver has sent to the watchers of one resource since it started.
type watchTraffic struct{ events, bytes int64 }

// settle waits until the apiserver's watch traffic of resource stops growing (every event of the
// writes so far delivered) and returns it.
func settle(ctx context.Context, cfg *rest.Config, resource string) (watchTraffic, error) {
	var last watchTraffic
	stable := 0
	for start := time.Now(); time.Since(start) < time.Minute; {
		metrics, err := scrape(ctx, cfg)
		if err != nil {
			return watchTraffic{}, err
		}
		t := traffic(metrics, resource)
		if t == last {
			if stable++; stable == 2 {
				return t, nil
			}
		} else {
			stable = 0
		}
		last = t
		select {
		case <-ctx.Done():
			return watchTraffic{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return last, nil
}

// scrape reads the apiserver's /metrics.
func scrape(ctx context.Context, cfg *rest.Config) (string, error) {
	return testenv.APIMetrics(ctx, cfg)
}

// traffic sums apiserver_watch_events_total and apiserver_watch_events_sizes (bytes) of resource
// over its label sets (group, version, resource).
func traffic(metrics, resource string) watchTraffic {
	var t watchTraffic
	t.events = int64(sumMetric(metrics, "apiserver_watch_events_total", resource))
	t.bytes = int64(sumMetric(metrics, "apiserver_watch_events_sizes_sum", resource))
	return t
}

// longRunningWatches is the apiserver's count of the watches of resource being served.
func longRunningWatches(ctx context.Context, cfg *rest.Config, resource string) (int, error) {
	metrics, err := scrape(ctx, cfg)
	if err != nil {
		return 0, err
	}
	return watchesServed(metrics, resource), nil
}

// watchesServed reads apiserver_longrunning_requests of the watches of resource.
func watchesServed(metrics, resource string) int {
	var n float64
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "apiserver_longrunning_requests{") && strings.Contains(line, `verb="WATCH"`) &&
			strings.Contains(line, `resource="`+resource+`"`) {
			n += value(line)
		}
	}
	return int(n)
}

func sumMetric(metrics, name, resource string) float64 {
	var sum float64
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `resource="`+resource+`"`) {
			sum += value(line)
		}
	}
	return sum
}

// value is the sample value of a metric line of the text exposition format.
func value(line string) float64 {
	i := strings.LastIndexByte(line, ' ')
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return 0
	}
	return v
}
