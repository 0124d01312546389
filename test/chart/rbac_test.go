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
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// markerRules runs controller-gen over the +kubebuilder:rbac markers of internal/... and returns
// the rules of the ClusterRole it derives.
func markerRules(t *testing.T) []rbacv1.PolicyRule {
	cluster, _ := markerRoles(t)
	return cluster
}

// markerRoles returns the rules controller-gen derives from the +kubebuilder:rbac markers: those
// of the ClusterRole, and those of each namespaced marker by namespace.
func markerRoles(t *testing.T) (cluster []rbacv1.PolicyRule, namespaced map[string][]rbacv1.PolicyRule) {
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
	namespaced = map[string][]rbacv1.PolicyRule{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatalf("controller-gen output: %v\n%s", err, doc)
		}
		switch r.Kind {
		case "ClusterRole":
			cluster = append(cluster, r.Rules...)
		case "Role":
			namespaced[r.Namespace] = append(namespaced[r.Namespace], r.Rules...)
		}
	}
	if len(cluster) == 0 {
		t.Fatalf("controller-gen derived no rules:\n%s", out)
	}
	return cluster, namespaced
}

// TestChartControllerConfigMapsByNamespace: the controller reads ConfigMaps only in the
// namespaces its namespaced markers name (kube-system, for kubeadm-config) and in the namespace
// of global.ciliumConfigMap, through Roles there; never cluster-wide.
func TestChartControllerConfigMapsByNamespace(t *testing.T) {
	_, markerNS := markerRoles(t)
	for _, c := range []struct {
		args []string
		want []string // namespaces whose Role grants the markers' ConfigMap rules
	}{
		{nil, []string{"kube-system"}},
		{[]string{"--set", "global.ciliumConfigMap=cilium/cilium-config"}, []string{"cilium", "kube-system"}},
	} {
		m := render(t, c.args...)
		cluster, _ := expand(m.clusterRole(t, controller).Rules)
		for r := range cluster {
			if r.resource == "configmaps" {
				t.Errorf("%v: the ClusterRole grants %s", c.args, r)
			}
		}
		granted := map[string]map[rule]bool{}
		for _, o := range m.ofKind("Role") {
			if o.GetName() != controller+"-configmaps" {
				continue
			}
			var role rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
			granted[role.Namespace], _ = expand(role.Rules)
			var rb rbacv1.RoleBinding
			m.typedIn(t, "RoleBinding", role.Namespace, role.Name, &rb)
			if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != controller {
				t.Errorf("%v: RoleBinding %s/%s = %+v, want the controller bound to its Role", c.args, role.Namespace, rb.Name, rb)
			}
		}
		var got []string
		for ns := range granted {
			got = append(got, ns)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%v: ConfigMap Roles in %v, want %v", c.args, got, c.want)
		}
		wantRules, _ := expand(markerNS["kube-system"])
		if len(wantRules) == 0 {
			t.Fatal("no namespaced marker for kube-system: the test no longer tests anything")
		}
		for _, ns := range c.want {
			for r := range wantRules {
				if !granted[ns][r] {
					t.Errorf("%v: the Role in %s does not grant %s", c.args, ns, r)
				}
			}
			for r := range granted[ns] {
				if !wantRules[r] {
					t.Errorf("%v: the Role in %s grants %s, which no marker asks for", c.args, ns, r)
				}
			}
		}
	}
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
// Status().Update of pools, SpiderEndpoint create/update/delete), plus the SpiderIPBlocks of
// block-based IPAM, granted ahead of the store that will use them.
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
	add("kubevirt.io", []string{"virtualmachineinstances", "virtualmachines"}, []string{"get"}) // workload.VMWantsAddresses
	add(sp, []string{"spiderippools", "spiderreservedips", "spidercoordinators"}, read)
	add(sp, []string{"spiderippools/status"}, []string{"update"})
	add(sp, []string{"spiderendpoints"}, []string{"get", "list", "watch", "create", "update", "delete"})
	// Block-based IPAM (docs/design/ipam-blocks.md): claim (create) the node's blocks, write their
	// records, borrow from and release into other nodes' blocks, delete an emptied own block.
	add(ipblockv1alpha1.GroupName, []string{"spideripblocks"}, []string{"get", "list", "watch", "create", "update", "patch", "delete"})
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
