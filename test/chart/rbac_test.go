package chart

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// markerRules runs controller-gen over the +kubebuilder:rbac markers of internal/... and returns
// the rules of the ClusterRole it derives.
func markerRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	bin, err := ToolsBin()
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(bin, "controller-gen")
	if _, err := os.Stat(gen); errors.Is(err, os.ErrNotExist) {
		t.Skipf("skipping: %s not built (make tools)", gen)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gen, "rbac:roleName=spiderpool-controller", "paths=./internal/...", "output:rbac:stdout")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("controller-gen rbac: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("controller-gen rbac: %v", err)
	}
	var roles []rbacv1.PolicyRule
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatalf("controller-gen output: %v\n%s", err, doc)
		}
		if r.Kind == "ClusterRole" {
			roles = append(roles, r.Rules...)
		}
	}
	if len(roles) == 0 {
		t.Fatalf("controller-gen derived no rules:\n%s", out)
	}
	return roles
}

// Permissions the chart grants the controller beyond the markers, each with the reason.
var controllerExtras = map[rule]string{}

// namespacedOnly are marker permissions the chart grants through the Role in the release namespace
// rather than cluster-wide: the code only touches objects there (the webhook certificate Secret).
var namespacedOnly = map[rule]bool{
	{"", "secrets", "get"}:    true,
	{"", "secrets", "create"}: true,
	{"", "secrets", "update"}: true,
}

// TestChartControllerRBACCoversMarkers keeps the chart from drifting from the code: every
// permission controller-gen derives from the markers must be granted, and every permission the
// chart adds must be one of the documented extras.
func TestChartControllerRBACCoversMarkers(t *testing.T) {
	markers, markersNamed := expand(markerRules(t))
	m := render(t)
	cluster, clusterNamed := expand(m.clusterRole(t, controller).Rules)
	ns, nsNamed := expand(m.role(t, controller).Rules)
	// A marker limited to names is granted with exactly those names, never wider.
	for r, names := range markersNamed {
		if cluster[r] {
			t.Errorf("%s is granted for every object; the markers limit it to %v", r, names)
		}
		if got := clusterNamed[r]; !slices.Equal(sortedCopy(got), sortedCopy(names)) {
			t.Errorf("%s is granted for %v, the markers say %v", r, got, names)
		}
	}
	for r, names := range clusterNamed {
		if _, ok := markersNamed[r]; !ok {
			t.Errorf("cluster-wide rule %s limited to %v, which no marker asks for", r, names)
		}
	}
	for r := range markers {
		switch {
		case cluster[r]:
		case namespacedOnly[r] && (ns[r] || len(nsNamed[r]) > 0):
			if cluster[r] {
				t.Errorf("%s is granted cluster-wide; the Role grants it in the release namespace", r)
			}
		case namespacedOnly[r]:
			t.Errorf("the controller's Role does not grant %s (marker)", r)
		default:
			t.Errorf("the controller's ClusterRole does not grant %s, which the markers require", r)
		}
	}
	for r := range cluster {
		if markers[r] {
			continue
		}
		if _, ok := controllerExtras[r]; !ok {
			t.Errorf("the controller's ClusterRole grants %s, which no marker asks for: add the marker or document it in controllerExtras", r)
		}
	}
	for r, why := range controllerExtras {
		if !cluster[r] {
			t.Errorf("documented extra %s (%s) is not granted", r, why)
		}
		if markers[r] {
			t.Errorf("%s is now derived from the markers: remove it from controllerExtras", r)
		}
	}
	// Leader election: client-go's lease lock and the events it records, in the release namespace.
	for _, r := range []rule{{"coordination.k8s.io", "leases", "get"}, {"coordination.k8s.io", "leases", "create"},
		{"coordination.k8s.io", "leases", "update"}, {"", "events", "create"}} {
		if !ns[r] {
			t.Errorf("the controller's Role does not grant %s (leader election)", r)
		}
	}
	if got := nsNamed[rule{"", "secrets", "get"}]; !slices.Equal(got, []string{"spiderpool-controller-server-certs"}) {
		t.Errorf("Secret reads are limited to %v, want the certificate Secret only", got)
	}
}

// TestChartAgentRBAC checks the agent's ClusterRole against what internal/agent,
// internal/ipam/kubestore and internal/workload call (read from the code: informers, live reads,
// Status().Update of pools, SpiderEndpoint create/update/delete).
func TestChartAgentRBAC(t *testing.T) {
	m := render(t)
	got, named := expand(m.clusterRole(t, agent).Rules)
	if len(named) > 0 {
		t.Errorf("unexpected named rules %v", named)
	}
	const sp = "spiderpool.spidernet.io"
	want := map[rule]bool{}
	add := func(group string, resources, verbs []string) {
		for _, r := range resources {
			for _, v := range verbs {
				want[rule{group, r, v}] = true
			}
		}
	}
	read := []string{"get", "list", "watch"}
	add("", []string{"pods", "namespaces", "nodes"}, read)
	add("apps", []string{"statefulsets", "replicasets"}, []string{"get"})
	add("batch", []string{"jobs"}, []string{"get"})
	add(sp, []string{"spiderippools", "spiderreservedips", "spidercoordinators"}, read)
	add(sp, []string{"spiderippools/status"}, []string{"update"})
	add(sp, []string{"spiderendpoints"}, []string{"get", "list", "watch", "create", "update", "delete"})
	for r := range want {
		if !got[r] {
			t.Errorf("agent ClusterRole lacks %s", r)
		}
	}
	for r := range got {
		if !want[r] {
			t.Errorf("agent ClusterRole grants %s, which the agent never uses", r)
		}
	}
}

// TestChartRBACHasNoWildcards: every role of every guide line names its groups, resources and verbs.
func TestChartRBACHasNoWildcards(t *testing.T) {
	for _, g := range GuideLines {
		m := render(t, g.Args...)
		for _, kind := range []string{"ClusterRole", "Role"} {
			for _, o := range m.ofKind(kind) {
				var r rbacv1.ClusterRole
				m.typed(t, kind, o.GetName(), &r)
				for _, pr := range r.Rules {
					if slices.Contains(pr.APIGroups, "*") || slices.Contains(pr.Resources, "*") || slices.Contains(pr.Verbs, "*") {
						t.Errorf("%s: %s %s has a wildcard rule %+v", g.Name, kind, o.GetName(), pr)
					}
				}
				// Reading every Secret of kube-system or the cluster is never needed.
				unnamed, _ := expand(r.Rules)
				for _, verb := range []string{"get", "list", "watch"} {
					if unnamed[rule{"", "secrets", verb}] {
						t.Errorf("%s: %s %s may %s every Secret", g.Name, kind, o.GetName(), verb)
					}
				}
			}
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
