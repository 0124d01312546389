package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/agent"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/metricsinfo"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// metricsSettle bounds how long the scraped values may take to reach what the traffic implies:
// the gauges are read from informer caches, which lag the API by a moment.
const metricsSettle = 30 * time.Second

// scrape GETs url and parses the Prometheus text exposition.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	code, body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %.300s", url, code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, nil
}

// metricCheck is one expectation on a scrape: the family exists with type typ, and the series
// with labels (none: the family's first series) has value op want. The value is a counter's or a
// gauge's, or a histogram's sample count.
type metricCheck struct {
	family string
	typ    dto.MetricType
	labels map[string]string
	op     string // "==" or ">="
	want   float64
}

func (c metricCheck) String() string {
	return fmt.Sprintf("%s%v %s %v", c.family, c.labels, c.op, c.want)
}

// failure returns why fams does not meet c, or "".
func (c metricCheck) failure(fams map[string]*dto.MetricFamily) string {
	f := fams[c.family]
	if f == nil {
		return "family missing"
	}
	if f.GetType() != c.typ {
		return fmt.Sprintf("type %s, want %s", f.GetType(), c.typ)
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, c.labels) {
			continue
		}
		var got float64
		switch c.typ {
		case dto.MetricType_COUNTER:
			got = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			got = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			got = float64(m.GetHistogram().GetSampleCount())
		}
		if (c.op == "==" && got != c.want) || (c.op == ">=" && got < c.want) {
			return fmt.Sprintf("value %v", got)
		}
		return ""
	}
	return "no series with these labels"
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// waitForMetrics scrapes url until every check holds or metricsSettle passes, then reports each
// check that still fails, and returns the last scrape.
func waitForMetrics(t *testing.T, url string, checks func() []metricCheck) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), metricsSettle)
	defer cancel()
	var fams map[string]*dto.MetricFamily
	var scrapeErr error
	_ = testenv.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		fams, scrapeErr = scrape(ctx, url)
		if scrapeErr != nil {
			return false, nil
		}
		for _, c := range checks() {
			if c.failure(fams) != "" {
				return false, nil
			}
		}
		return true, nil
	})
	if fams == nil {
		t.Fatalf("scrape %s: %v", url, scrapeErr)
	}
	for _, c := range checks() {
		if why := c.failure(fams); why != "" {
			t.Errorf("%s: %s", c, why)
		}
	}
	return fams
}

// checkDescribed fails for a described family absent from the scrape and for a scraped
// spiderpool_ family the description lacks: the generated reference is the scrape's.
func checkDescribed(t *testing.T, daemon string, described []metricsinfo.Family, fams map[string]*dto.MetricFamily) {
	t.Helper()
	var names []string
	for _, f := range described {
		names = append(names, f.Name)
		got := fams[f.Name]
		if got == nil {
			t.Errorf("%s: described family %s missing from the scrape", daemon, f.Name)
			continue
		}
		if typ := strings.ToLower(got.GetType().String()); typ != f.Type {
			t.Errorf("%s: %s scraped as %s, described as %s", daemon, f.Name, typ, f.Type)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "spiderpool_") && !slices.Contains(names, name) {
			t.Errorf("%s: scraped family %s is not described", daemon, name)
		}
	}
}

// A real agent and a real controller, both with debug metrics on, serve /metrics over HTTP after
// ADDs (one into a full pool, one for an auto pool not created yet), DELs and a GC reclaim; every
// family is scraped with its type and a value the traffic implies.
func TestMetricsScrapedFromAgentAndController(t *testing.T) {
	const node, pool, subnet = "metrics-node", "metrics-pool", "metrics-subnet"
	ctx := testContext(t)
	makeNode(t, node, nil)
	sn := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: subnet},
		Spec: v2beta1.SubnetSpec{IPVersion: ptr.To[int64](4), Subnet: "10.181.0.0/24", IPs: []string{"10.181.0.1-10.181.0.100"}}}
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.181.0.0/24", IPs: []string{"10.181.0.10-10.181.0.12"}}}
	for _, obj := range []client.Object{sn, p} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		// The controller adds finalizers that nothing removes once it stops.
		t.Cleanup(func() { deleteIgnoringFinalizers(context.Background(), t, obj) })
	}

	ctlAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctlURL := "http://" + ctlAddr + "/metrics"
	runController(t, func(cfg *controller.Config) {
		cfg.MetricsAddr = ctlAddr
		cfg.DebugMetrics = true
	})
	// The GC counters are process-wide: earlier tests' controllers may have counted. The
	// controller counts its reclaims on top of what this first scrape shows.
	podDeleted := map[string]string{"reason": controller.GCReasonPodDeleted}
	baseline := waitForMetrics(t, ctlURL, func() []metricCheck {
		return []metricCheck{{"spiderpool_ip_gc_counts", dto.MetricType_COUNTER, podDeleted, ">=", 0}}
	})
	gcBefore := 0.0
	for _, m := range baseline["spiderpool_ip_gc_counts"].GetMetric() {
		if hasLabels(m, podDeleted) {
			gcBefore = m.GetCounter().GetValue()
		}
	}

	agentAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	agentURL := "http://" + agentAddr + "/metrics"
	a := startAgent(t, node, func(c *agent.Config) {
		c.MetricsAddr = agentAddr
		c.DebugMetrics = true
	})
	api := agentclient.New(a.socket, agentclient.WithTimeout(30*time.Second))
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"metrics-1", "metrics-2", "metrics-3", "metrics-4"} {
		pods[name] = makePod(t, "default", name, node, gcPodAnno(pool), nil)
		gcForgetEndpoint(t, name)
	}
	auto := makePod(t, "default", "metrics-auto", node, map[string]string{v2beta1.AnnoSpiderSubnet: `{"ipv4":["` + subnet + `"]}`}, nil)
	gcForgetEndpoint(t, auto.Name)
	add := func(pod *corev1.Pod) error {
		_, err := api.Allocate(ctx, &v1.IpamAddArgs{ContainerID: "c-" + pod.Name, IfName: "eth0", NetNamespace: "/proc/1/ns/net",
			PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: string(pod.UID)})
		return err
	}
	del := func(pod *corev1.Pod) {
		t.Helper()
		if err := api.Release(ctx, &v1.IpamDelArgs{ContainerID: "c-" + pod.Name, IfName: "eth0", PodNamespace: pod.Namespace,
			PodName: pod.Name, PodUID: string(pod.UID)}); err != nil {
			t.Fatalf("DEL %s: %v", pod.Name, err)
		}
	}

	// Six ADDs: four succeed (the fourth after a DEL made room), one finds the pool full, one
	// finds no auto pool. Two DELs, the second with nothing left to free.
	for _, name := range []string{"metrics-1", "metrics-2", "metrics-3"} {
		if err := add(pods[name]); err != nil {
			t.Fatalf("ADD %s: %v", name, err)
		}
	}
	if err := add(pods["metrics-4"]); !errors.Is(err, &v1.Error{Code: v1.CodePoolExhausted}) {
		t.Fatalf("ADD metrics-4 into a full pool: %v, want %s", err, v1.CodePoolExhausted)
	}
	if err := add(auto); !errors.Is(err, &v1.Error{Code: v1.CodeConflict}) {
		t.Fatalf("ADD of a pod whose auto pool does not exist: %v, want %s", err, v1.CodeConflict)
	}
	del(pods["metrics-1"])
	del(pods["metrics-1"])
	if err := add(pods["metrics-4"]); err != nil {
		t.Fatalf("ADD metrics-4 after a DEL: %v", err)
	}
	// metrics-2 goes without a DEL: the controller's GC reclaims its address.
	if err := env.Client.Delete(ctx, pods["metrics-2"], client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	gcWaitReclaimed(t, pool, "metrics-2", string(pods["metrics-2"].UID), time.Now())

	counter, gauge, histogram := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	outcome := func(o string) map[string]string { return map[string]string{"outcome": o} }
	inPool := map[string]string{"pool": pool}
	agentFams := waitForMetrics(t, agentURL, func() []metricCheck {
		return []metricCheck{
			{"spiderpool_ipam_allocation_counts", counter, nil, "==", 6},
			{"spiderpool_ipam_allocation_failure_counts", counter, nil, "==", 2},
			{"spiderpool_ipam_allocation_err_ip_used_out_counts", counter, nil, "==", 1},
			{"spiderpool_ipam_allocation_err_retries_exhausted_counts", counter, nil, "==", 1},
			{"spiderpool_ipam_allocation_err_no_available_pool_counts", counter, nil, "==", 0},
			{"spiderpool_ipam_allocation_err_internal_counts", counter, nil, "==", 0},
			{"spiderpool_ipam_allocation_update_ippool_conflict_counts", counter, nil, ">=", 0},
			{"spiderpool_ipam_allocation_duration_seconds", histogram, nil, "==", 6},
			{"spiderpool_ipam_allocation_outcome_duration_seconds", histogram, outcome("success"), "==", 4},
			{"spiderpool_ipam_allocation_outcome_duration_seconds", histogram, outcome("ip_used_out"), "==", 1},
			{"spiderpool_ipam_allocation_outcome_duration_seconds", histogram, outcome("retries_exhausted"), "==", 1},
			{"spiderpool_ipam_allocation_max_duration_seconds", gauge, nil, ">=", 1e-6},
			{"spiderpool_ipam_allocation_min_duration_seconds", gauge, nil, ">=", 1e-9},
			{"spiderpool_ipam_allocation_average_duration_seconds", gauge, nil, ">=", 1e-9},
			{"spiderpool_ipam_allocation_latest_duration_seconds", gauge, nil, ">=", 1e-9},
			// The five ADDs that reached the pool; the auto pool's had none to update.
			{"spiderpool_ipam_allocation_limit_duration_seconds", histogram, nil, "==", 5},
			{"spiderpool_ipam_allocation_max_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_allocation_min_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_allocation_average_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_allocation_latest_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_release_counts", counter, nil, "==", 2},
			{"spiderpool_ipam_release_failure_counts", counter, nil, "==", 0},
			{"spiderpool_ipam_release_err_internal_counts", counter, nil, "==", 0},
			{"spiderpool_ipam_release_err_retries_exhausted_counts", counter, nil, "==", 0},
			{"spiderpool_ipam_release_update_ippool_conflict_counts", counter, nil, ">=", 0},
			{"spiderpool_ipam_release_duration_seconds", histogram, nil, "==", 2},
			{"spiderpool_ipam_release_outcome_duration_seconds", histogram, outcome("success"), "==", 2},
			{"spiderpool_ipam_release_max_duration_seconds", gauge, nil, ">=", 1e-6},
			{"spiderpool_ipam_release_min_duration_seconds", gauge, nil, ">=", 1e-9},
			{"spiderpool_ipam_release_average_duration_seconds", gauge, nil, ">=", 1e-9},
			{"spiderpool_ipam_release_latest_duration_seconds", gauge, nil, ">=", 1e-9},
			// The first DEL freed an address. The second has no endpoint left and looks for the
			// pod's records in the cached pools: an update that changes nothing while the cache
			// still shows the freed record, none once it does.
			{"spiderpool_ipam_release_limit_duration_seconds", histogram, nil, ">=", 1},
			{"spiderpool_ipam_release_max_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_release_min_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_release_average_limit_duration_seconds", gauge, nil, ">=", 0},
			{"spiderpool_ipam_release_latest_limit_duration_seconds", gauge, nil, ">=", 0},
			// Four allocations and one release wrote the pool, one at a time.
			{"spiderpool_ipam_commit_batch_size", histogram, nil, "==", 5},
			{"spiderpool_ipam_commit_duration_seconds", histogram, nil, "==", 5},
			{"spiderpool_ipam_commit_conflict_counts", counter, nil, ">=", 0},
			{"spiderpool_ipam_pool_total_ip_counts", gauge, inPool, "==", 3},
			// metrics-3 and metrics-4; metrics-1 was released, metrics-2 reclaimed.
			{"spiderpool_ipam_pool_allocated_ip_counts", gauge, inPool, "==", 2},
			{"spiderpool_debug_auto_pool_waited_for_available_counts", counter, nil, "==", 1},
		}
	})
	checkDescribed(t, "spiderpool-agent", agent.DescribeMetrics(), agentFams)
	// Every lost write carried at least one request's update, each of which is counted.
	value := func(name string) float64 { return agentFams[name].GetMetric()[0].GetCounter().GetValue() }
	if lost, counted := value("spiderpool_ipam_commit_conflict_counts"),
		value("spiderpool_ipam_allocation_update_ippool_conflict_counts")+value("spiderpool_ipam_release_update_ippool_conflict_counts"); counted < lost {
		t.Errorf("%v writes lost a race but only %v request updates were counted as conflicts", lost, counted)
	}

	var poolList v2beta1.SpiderIPPoolList
	var subnetList v2beta1.SpiderSubnetList
	ctlFams := waitForMetrics(t, ctlURL, func() []metricCheck {
		if err := env.Client.List(ctx, &poolList); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.List(ctx, &subnetList); err != nil {
			t.Fatal(err)
		}
		inSubnet := map[string]string{"subnet": subnet}
		return []metricCheck{
			{"spiderpool_ip_gc_counts", counter, podDeleted, ">=", gcBefore + 1},
			{"spiderpool_ip_gc_failure_counts", counter, podDeleted, ">=", 0},
			{"spiderpool_total_ippool_counts", gauge, nil, "==", float64(len(poolList.Items))},
			{"spiderpool_total_subnet_counts", gauge, nil, "==", float64(len(subnetList.Items))},
			{"spiderpool_debug_ippool_total_ip_counts", gauge, inPool, "==", 3},
			{"spiderpool_debug_ippool_available_ip_counts", gauge, inPool, "==", 1},
			{"spiderpool_debug_subnet_ippool_counts", gauge, inSubnet, "==", 1},
			{"spiderpool_debug_subnet_total_ip_counts", gauge, inSubnet, "==", 100},
			{"spiderpool_debug_subnet_available_ip_counts", gauge, inSubnet, "==", 97},
		}
	})
	checkDescribed(t, "spiderpool-controller", controller.DescribeMetrics(), ctlFams)
}
