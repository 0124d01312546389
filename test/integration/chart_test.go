package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/test/chart"
)

// TestChartGuideLinesDryRun renders the chart with each install line of the guides and has the
// real kube-apiserver accept every object with a server-side dry run and strict field validation:
// schema, defaulting and admission run, nothing is stored. The CRDs come from the suite's env.
func TestChartGuideLinesDryRun(t *testing.T) {
	helm, dir := chart.Require(t)
	lines := append([]chart.GuideLine{{Name: "tls-provided", Args: []string{"--set", "spiderpoolController.tls.method=provided",
		"--set", "spiderpoolController.tls.provided.tlsCa=ca", "--set", "spiderpoolController.tls.provided.tlsCert=cert",
		"--set", "spiderpoolController.tls.provided.tlsKey=key", "--set", "spiderpoolController.replicas=2",
		"--set", "spiderpoolAgent.prometheus.enabled=true", "--set", "spiderpoolController.prometheus.enabled=true"}}}, chart.GuideLines...)
	for _, g := range lines {
		t.Run(g.Name, func(t *testing.T) {
			ctx := testContext(t)
			out, err := chart.Template(helm, dir, g.Args...)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			objs := loadManifests(t, path)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if o.GetNamespace() == "" && !clusterScoped(o.GetKind()) {
					o.SetNamespace(chart.Namespace) // what helm install --namespace does
				}
				if err := dryRunCreate(ctx, o); err != nil {
					t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
			// A dry run stores nothing: the next line starts from the same empty namespace.
			var d appsv1.Deployment
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: chart.Namespace, Name: "spiderpool-controller"}, &d); !apierrors.IsNotFound(err) {
				t.Errorf("the dry run stored the controller Deployment (get: %v)", err)
			}
			for _, k := range []string{"Deployment", "DaemonSet", "Job", "ClusterRole", "Role", "Service", "ConfigMap"} {
				if kinds[k] == 0 {
					t.Errorf("no %s rendered: %v", k, kinds)
				}
			}
		})
	}
}

// TestChartDryRunIsStrict is the control of TestChartGuideLinesDryRun: the same request with a
// field the API does not know must be refused, or the dry run proves nothing.
func TestChartDryRunIsStrict(t *testing.T) {
	ctx := testContext(t)
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "spiderpool-conf", "namespace": chart.Namespace},
		"data":     map[string]any{"a": "b"},
		"dataa":    map[string]any{"a": "b"},
	}}
	err := dryRunCreate(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "dataa") {
		t.Fatalf("a ConfigMap with an unknown field: got %v, want a strict-validation error naming it", err)
	}
}

// dryRunCreate creates o with a server-side dry run and strict field validation. The options are
// set on client.CreateOptions itself: controller-runtime overwrites those of Raw with them.
func dryRunCreate(ctx context.Context, o *unstructured.Unstructured) error {
	return env.Client.Create(ctx, o.DeepCopy(), &client.CreateOptions{
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: metav1.FieldValidationStrict,
	})
}

func clusterScoped(kind string) bool {
	switch kind {
	case "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Namespace", "PriorityClass":
		return true
	}
	return false
}

// TestChartHelmInstallDryRun runs helm itself against the apiserver (install --dry-run=server) for
// the guide lines and checks what NOTES.txt tells the user.
func TestChartHelmInstallDryRun(t *testing.T) {
	helm, dir := chart.Require(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeConfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	// NOTES quote defaultCniCRName as given: the chart leaves resolving it to the binaries.
	want := map[string][]string{
		"defaults":       {"Multus uses each node's first CNI configuration", "`helm uninstall` removes them first"},
		"alibaba":        {"clusterNetwork is ipvlan-eth0", "ipvlan-eth0 (Multus's cluster network)"},
		"aws":            {"clusterNetwork is default/ipvlan-ens5"},
		"calico-overlay": {`SpiderCoordinator "default" (mode overlay)`},
	}
	for _, g := range chart.GuideLines {
		t.Run(g.Name, func(t *testing.T) {
			out, err := chart.InstallDryRun(helm, dir, kubeconfig, g.Args...)
			if err != nil {
				t.Fatal(err)
			}
			_, notes, found := strings.Cut(string(out), "\nNOTES:\n")
			if !found {
				t.Fatalf("no NOTES in helm's output:\n%s", out)
			}
			for _, w := range want[g.Name] {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
		})
	}
}
