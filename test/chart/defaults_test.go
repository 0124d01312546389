package chart

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	agentv1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	agentcfg "github.com/spiderpool-go/spiderpool/internal/agent"
	ctlcfg "github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/webhook"
)

// values reads the chart's values.yaml.
func values(t *testing.T) map[string]any {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// value returns the value at a dotted path, as YAML decoded it.
func value(t *testing.T, v map[string]any, path string) any {
	t.Helper()
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("values.yaml: %s: %q is not under a map", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("values.yaml has no %s", path)
		}
	}
	return cur
}

// TestChartDefaultsMatchBinaries: a default install must configure the binaries as their own
// defaults do, so that a binary run by hand (the sandbox, the tests) and one run by the chart agree.
func TestChartDefaultsMatchBinaries(t *testing.T) {
	v := values(t)
	port := func(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
	str := func(path string) string { return toString(value(t, v, path)) }
	coord := v2beta1.HelmDefaultCoordinator("default").Spec
	for _, c := range []struct{ path, want string }{
		{"spiderpoolAgent.httpPort", port(agentcfg.DefaultHealthAddr)},
		{"spiderpoolAgent.prometheus.port", port(agentcfg.DefaultMetricsAddr)},
		{"spiderpoolController.httpPort", port(ctlcfg.DefaultHealthAddr)},
		{"spiderpoolController.prometheus.port", port(ctlcfg.DefaultMetricsAddr)},
		{"spiderpoolController.webhookPort", strconv.Itoa(webhook.DefaultPort)},
		{"spiderpoolController.name", webhook.DefaultServiceName},
		{"spiderpoolController.tls.secretName", webhook.DefaultSecretName},
		{"spiderpoolController.tls.method", string(webhook.ModeAuto)},
		{"global.ipamUNIXSocketHostPath", agentv1.DefaultSocketPath},
		{"global.cniConfHostPath", ctlcfg.DefaultCNIConfigDir},
		{"global.ciliumConfigMap", ctlcfg.DefaultCiliumConfigMap.String()},
		{"ipam.gc.gcAll.intervalInSecond", strconv.Itoa(int(ctlcfg.DefaultGCInterval / time.Second))},
		{"coordinator.name", agentcfg.DefaultCoordinatorName},
		{"coordinator.mode", string(*coord.Mode)},
		{"coordinator.podCIDRType", string(*coord.PodCIDRType)},
		{"coordinator.tunePodRoutes", strconv.FormatBool(*coord.TunePodRoutes)},
		{"coordinator.vethMTU", strconv.Itoa(*coord.VethMTU)},
		{"coordinator.vethLinkAddress", *coord.VethLinkAddress},
	} {
		if got := str(c.path); got != c.want {
			t.Errorf("values.yaml %s = %s, the binaries' default is %s", c.path, got, c.want)
		}
	}
	var hijack []string
	for _, h := range value(t, v, "coordinator.hijackCIDR").([]any) {
		hijack = append(hijack, h.(string))
	}
	if diff := cmp.Diff(coord.HijackCIDR, hijack); diff != "" {
		t.Errorf("coordinator.hijackCIDR differs from v2beta1.HelmDefaultCoordinator (-binary +chart):\n%s", diff)
	}
}

// TestChartWebhooksMatchController: with tls.method provided the chart ships the configurations
// the controller writes itself in auto mode; names and paths must be the controller's.
func TestChartWebhooksMatchController(t *testing.T) {
	m := render(t, "--set", "spiderpoolController.tls.method=provided", "--set", "spiderpoolController.tls.provided.tlsCa=a",
		"--set", "spiderpoolController.tls.provided.tlsCert=b", "--set", "spiderpoolController.tls.provided.tlsKey=c")
	var mut admissionregistrationv1.MutatingWebhookConfiguration
	var val admissionregistrationv1.ValidatingWebhookConfiguration
	m.typed(t, "MutatingWebhookConfiguration", webhook.ConfigurationName, &mut)
	m.typed(t, "ValidatingWebhookConfiguration", webhook.ConfigurationName, &val)
	kinds := []string{"SpiderIPPool", "SpiderSubnet", "SpiderReservedIP", "SpiderMultusConfig", "SpiderCoordinator"}
	if len(mut.Webhooks) != len(kinds) || len(val.Webhooks) != len(kinds) {
		t.Fatalf("%d mutating and %d validating webhooks, want %d each", len(mut.Webhooks), len(val.Webhooks), len(kinds))
	}
	for i, kind := range kinds {
		name := strings.ToLower(kind) + ".spiderpool.spidernet.io"
		if w := mut.Webhooks[i]; w.Name != name || *w.ClientConfig.Service.Path != webhook.MutatePath(kind) {
			t.Errorf("mutating webhook %d: %s %s, want %s %s", i, w.Name, *w.ClientConfig.Service.Path, name, webhook.MutatePath(kind))
		}
		if w := val.Webhooks[i]; w.Name != name || *w.ClientConfig.Service.Path != webhook.ValidatePath(kind) {
			t.Errorf("validating webhook %d: %s %s, want %s %s", i, w.Name, *w.ClientConfig.Service.Path, name, webhook.ValidatePath(kind))
		}
	}
}
