package chart

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// flagDefiners are the flag.FlagSet methods whose first string argument names a flag.
var flagDefiners = map[string]bool{
	"StringVar": true, "BoolVar": true, "IntVar": true, "Int64Var": true, "UintVar": true, "Float64Var": true,
	"DurationVar": true, "TextVar": true, "Func": true, "BoolFunc": true, "Var": true,
	"String": true, "Bool": true, "Int": true, "Duration": true,
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// sourceOf parses the Go file rel (relative to the repository root), skipping the test when
// it does not exist.
func sourceOf(t *testing.T, rel string) *ast.File {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, rel), nil, 0)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("skipping: %s does not exist yet", rel)
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// commandLine returns the flags a main.go defines (the first string literal of every flag
// definition) and the environment variables it names (string literals that look like one).
func commandLine(t *testing.T, mainGo string) (flagNames, envNames map[string]bool) {
	t.Helper()
	f := sourceOf(t, mainGo)
	flagNames, envNames = map[string]bool{}, map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || !flagDefiners[sel.Sel.Name] {
				return true
			}
			for _, a := range n.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					flagNames[s] = true
					break
				}
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, _ := strconv.Unquote(n.Value); envName.MatchString(s) && strings.Contains(s, "_") || s == "KUBECONFIG" {
					envNames[s] = true
				}
			}
		}
		return true
	})
	if len(flagNames) < 5 {
		t.Fatalf("%s: found only flags %v; has the flag set changed shape?", mainGo, flagNames)
	}
	return flagNames, envNames
}

// TestChartFlagsExistInBinaries checks, for every guide line, that each flag and environment
// variable the chart gives spiderpool-agent and spiderpool-controller is one their main.go defines,
// and that the values parse as the flag's type would.
func TestChartFlagsExistInBinaries(t *testing.T) {
	bins := []struct {
		mainGo, kind, name string
		off                string // the --metrics-addr value that turns metrics off
	}{
		{"cmd/spiderpool-agent/main.go", "DaemonSet", agent, ""},
		{"cmd/spiderpool-controller/main.go", "Deployment", controller, "0"},
	}
	for _, b := range bins {
		flagNames, envNames := commandLine(t, b.mainGo)
		for _, g := range GuideLines {
			t.Run(b.name+"/"+g.Name, func(t *testing.T) {
				m := render(t, g.Args...)
				var c = container(t, podSpec(t, m, b.kind, b.name), b.name)
				if len(c.Command) != 1 || c.Command[0] != "/usr/bin/"+b.name {
					t.Errorf("command %v, want /usr/bin/%s", c.Command, b.name)
				}
				for name, value := range flags(t, c) {
					if !flagNames[name] {
						t.Errorf("--%s is not a flag of %s (flags: %v)", name, b.mainGo, slices.Sorted(maps.Keys(flagNames)))
						continue
					}
					checkFlagValue(t, name, value, b.off)
				}
				for name := range envs(c) {
					if !envNames[name] {
						t.Errorf("environment variable %s is not read by %s", name, b.mainGo)
					}
				}
			})
		}
	}
}

func podSpec(t *testing.T, m *manifests, kind, name string) (spec corev1.PodSpec) {
	t.Helper()
	switch kind {
	case "DaemonSet":
		return m.daemonSet(t, name).Spec.Template.Spec
	case "Deployment":
		return m.deployment(t, name).Spec.Template.Spec
	}
	t.Fatalf("kind %s", kind)
	return spec
}

// checkFlagValue parses values of the shapes our flags take.
func checkFlagValue(t *testing.T, name, value, off string) {
	t.Helper()
	switch {
	case strings.HasPrefix(name, "enable-") || name == "leader-elect" || name == "gc-enabled":
		if _, err := strconv.ParseBool(value); err != nil {
			t.Errorf("--%s=%q: not a boolean", name, value)
		}
	case name == "gc-interval" || name == "gc-deleting-timeout-delay":
		if _, err := time.ParseDuration(value); err != nil {
			t.Errorf("--%s=%q: %v", name, value, err)
		}
	case name == "webhook-port":
		if n, err := strconv.Atoi(value); err != nil || n < 1 || n > 65535 {
			t.Errorf("--%s=%q: not a port", name, value)
		}
	case name == "health-addr" || name == "metrics-addr":
		// ":port", or for metrics the binary's own way of turning the server off.
		if name != "metrics-addr" || value != off {
			if p, err := strconv.Atoi(strings.TrimPrefix(value, ":")); !strings.HasPrefix(value, ":") || err != nil || p < 1 || p > 65535 {
				t.Errorf("--%s=%q: want :<port>", name, value)
			}
		}
	case name == "log-level":
		switch value {
		case "debug", "info", "warn", "error":
		default:
			t.Errorf("--log-level=%q", value)
		}
	}
}
