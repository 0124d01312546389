package chart

import (
	"encoding/json"
	"go/ast"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

const initEnvPrefix = "SPIDERPOOL_INIT_"

// initSettings reads the environment variables spiderpool-init defines in
// internal/initjob/config.go: every setting("<value path>", "<SUFFIX>", ...) call.
func initSettings(t *testing.T) map[string]string {
	t.Helper()
	f := sourceOf(t, "internal/initjob/config.go")
	settings := map[string]string{} // env -> value path
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "setting" {
			return true
		}
		var lits []string
		for _, a := range call.Args[:2] {
			lit, ok := a.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			lits = append(lits, s)
		}
		settings[initEnvPrefix+lits[1]] = lits[0]
		return true
	})
	if len(settings) < 10 {
		t.Fatalf("internal/initjob/config.go: found only %v; has setting() changed shape?", settings)
	}
	return settings
}

// TestChartInitJobEnvMatchesInitBinary checks the SPIDERPOOL_INIT_* contract both ways: the Job
// sets only variables spiderpool-init reads, and (with the defaults, where the CNI directory is
// read too) every one it reads.
func TestChartInitJobEnvMatchesInitBinary(t *testing.T) {
	settings := initSettings(t)
	for _, g := range GuideLines {
		t.Run(g.Name, func(t *testing.T) {
			m := render(t, g.Args...)
			job := m.job(t, initJob)
			c := container(t, job.Spec.Template.Spec, initJob)
			ctl := container(t, m.deployment(t, controller).Spec.Template.Spec, controller)
			if c.Image != ctl.Image || len(c.Command) != 1 || c.Command[0] != "/usr/bin/spiderpool-init" {
				t.Errorf("init runs %v from %s, want /usr/bin/spiderpool-init from the controller image %s", c.Command, c.Image, ctl.Image)
			}
			e := envs(c)
			for name := range e {
				if _, ok := settings[name]; !ok {
					t.Errorf("the Job sets %s, which spiderpool-init does not read", name)
				}
			}
			if g.Name == "defaults" {
				for name, value := range settings {
					if _, ok := e[name]; !ok {
						t.Errorf("the Job does not set %s (%s)", name, value)
					}
				}
			}
			for name, v := range e {
				switch {
				case strings.HasSuffix(name, "_ENABLED") || strings.HasSuffix(name, "_ENABLE") || strings.HasSuffix(name, "_INSTALL") ||
					strings.Contains(name, "_INSTALL_") || strings.Contains(name, "_DETECT_") || strings.HasSuffix(name, "_TUNE_POD_ROUTES"):
					if _, err := strconv.ParseBool(v); err != nil {
						t.Errorf("%s=%q is not a boolean", name, v)
					}
				case strings.HasSuffix(name, "_HIJACK_CIDR") || strings.HasSuffix(name, "_IP_RANGES"):
					var l []string
					if err := json.Unmarshal([]byte(v), &l); err != nil {
						t.Errorf("%s=%q is not a JSON list of strings: %v", name, v, err)
					}
				case strings.HasSuffix(name, "_POLICY_ROUTES"):
					var l []map[string]string
					if err := json.Unmarshal([]byte(v), &l); err != nil {
						t.Errorf("%s=%q is not a JSON list of routes: %v", name, v, err)
					}
				case strings.HasSuffix(name, "_VETH_MTU"):
					if _, err := strconv.Atoi(v); err != nil {
						t.Errorf("%s=%q is not an integer", name, v)
					}
				}
			}
			if e[initEnvPrefix+"NAMESPACE"] != Namespace {
				t.Errorf("SPIDERPOOL_INIT_NAMESPACE = %q", e[initEnvPrefix+"NAMESPACE"])
			}
			if job.Annotations["helm.sh/hook"] != "post-install,post-upgrade" {
				t.Errorf("the Job is not a post-install/post-upgrade hook: %v", job.Annotations)
			}
			if !job.Spec.Template.Spec.HostNetwork {
				t.Error("the Job needs the host network: Spiderpool may be what gives pods one")
			}
		})
	}
	t.Run("values", func(t *testing.T) {
		m := render(t, "--set", "coordinator.enabled=false", "--set", "coordinator.policyRoutes[0].dst=10.0.0.0/8",
			"--set", "coordinator.policyRoutes[0].gw=10.6.0.1", "--set", "coordinator.vethMTU=1450",
			"--set", "clusterDefaultPool.installIPv4IPPool=true", "--set", "clusterDefaultPool.installIPv6IPPool=true",
			"--set", "ipam.enableIPv6=false", "--set", "clusterDefaultPool.ipv4IPRanges={10.6.0.10-10.6.0.20,10.6.0.30}")
		e := envs(container(t, m.job(t, initJob).Spec.Template.Spec, initJob))
		for name, want := range map[string]string{
			"COORDINATOR_ENABLED":                      "false",
			"COORDINATOR_POLICY_ROUTES":                `[{"dst":"10.0.0.0/8","gw":"10.6.0.1"}]`,
			"COORDINATOR_VETH_MTU":                     "1450",
			"CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL": "true",
			// IPv6 is off: no default IPv6 pool whatever installIPv6IPPool says.
			"CLUSTER_DEFAULT_POOL_INSTALL_IPV6_IPPOOL": "false",
			"CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES":      `["10.6.0.10-10.6.0.20","10.6.0.30"]`,
		} {
			if got := e[initEnvPrefix+name]; got != want {
				t.Errorf("%s%s = %q, want %q", initEnvPrefix, name, got, want)
			}
		}
	})
}
