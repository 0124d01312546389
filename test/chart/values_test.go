package chart

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// valueFlips are the changed settings of leaves whose generic change (bool negated, number + 1,
// string "x") values.schema.json rejects or which need an element to show.
var valueFlips = map[string]any{
	"global.cniBinHostPath":                           "/x",
	"global.cniConfHostPath":                          "/x",
	"global.ipamUNIXSocketHostPath":                   "/x/y.sock",
	"global.ciliumConfigMap":                          "x/y",
	"coordinator.mode":                                "overlay",
	"coordinator.podCIDRType":                         "none",
	"coordinator.hijackCIDR":                          []string{"10.0.0.0/8"},
	"coordinator.policyRoutes":                        []map[string]string{{"dst": "10.0.0.0/8", "gw": "10.0.0.1"}},
	"coordinator.vethLinkAddress":                     "169.254.100.1",
	"multus.multusCNI.log.logLevel":                   "error",
	"multus.multusCNI.log.logFile":                    "/x.log",
	"clusterDefaultPool.ipv4Subnet":                   "10.6.0.0/16",
	"clusterDefaultPool.ipv6Subnet":                   "fd00:6::/64",
	"clusterDefaultPool.ipv4IPRanges":                 []string{"10.6.0.10-10.6.0.20"},
	"clusterDefaultPool.ipv6IPRanges":                 []string{"fd00:6::10-fd00:6::20"},
	"clusterDefaultPool.ipv4Gateway":                  "10.6.0.1",
	"clusterDefaultPool.ipv6Gateway":                  "fd00:6::1",
	"spiderpoolAgent.debug.logLevel":                  "debug",
	"spiderpoolAgent.tolerations":                     []any{},
	"spiderpoolAgent.nodeSelector":                    map[string]string{"x": "y"},
	"spiderpoolAgent.resources":                       map[string]any{"limits": map[string]string{"cpu": "1"}},
	"spiderpoolController.debug.logLevel":             "debug",
	"spiderpoolController.tls.method":                 "certmanager",
	"spiderpoolController.tolerations":                []any{},
	"spiderpoolController.nodeSelector":               map[string]string{"x": "y"},
	"spiderpoolController.resources":                  map[string]any{"limits": map[string]string{"cpu": "1"}},
	"spiderpoolInit.binName":                          "/x",
	"spiderpoolInit.timeout":                          "6m",
	"multus.multusCNI.image.pullPolicy":               "Always",
	"plugins.image.pullPolicy":                        "Always",
	"spiderpoolAgent.image.pullPolicy":                "Always",
	"spiderpoolController.image.pullPolicy":           "Always",
	"spiderpoolController.tls.secretName":             "x",
	"spiderpoolController.tls.provided.tlsCa":         "x",
	"spiderpoolController.tls.provided.tlsCert":       "x",
	"spiderpoolController.tls.provided.tlsKey":        "x",
	"spiderpoolController.tls.certmanager.issuerName": "x",
}

// valueEnablers are the settings under which the leaves below a prefix show in the rendering
// (a value only read when a feature is on is still consumed).
var valueEnablers = map[string]map[string]any{
	"plugins.":                                           {"plugins.installCNI": true},
	"spiderpoolAgent.prometheus.port":                    {"spiderpoolAgent.prometheus.enabled": true},
	"spiderpoolController.prometheus.port":               {"spiderpoolController.prometheus.enabled": true},
	"spiderpoolAgent.prometheus.enabledDebugMetric":      {"spiderpoolAgent.prometheus.enabled": true},
	"spiderpoolController.prometheus.enabledDebugMetric": {"spiderpoolController.prometheus.enabled": true},
	"spiderpoolController.tls.certmanager.":              {"spiderpoolController.tls.method": "certmanager"},
	"spiderpoolController.tls.provided.": {"spiderpoolController.tls.method": "provided",
		"spiderpoolController.tls.provided.tlsCa": "a", "spiderpoolController.tls.provided.tlsCert": "b",
		"spiderpoolController.tls.provided.tlsKey": "c"},
	"clusterDefaultPool.": {"clusterDefaultPool.installIPv4IPPool": true, "clusterDefaultPool.installIPv6IPPool": true},
}

// setJSON turns settings into --set-json arguments, in path order.
func setJSON(t *testing.T, settings map[string]any) []string {
	t.Helper()
	var args []string
	for _, p := range slices.Sorted(maps.Keys(settings)) {
		js, err := json.Marshal(settings[p])
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--set-json", fmt.Sprintf("%s=%s", p, js))
	}
	return args
}

// leafValues returns every leaf of values.yaml by dotted path: scalars, lists and empty maps.
func leafValues(v map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			p := prefix + k
			if sub, ok := val.(map[string]any); ok && len(sub) > 0 {
				walk(p+".", sub)
				continue
			}
			out[p] = val
		}
	}
	walk("", v)
	return out
}

var (
	valuesRef = regexp.MustCompile(`\.Values((?:\.[A-Za-z0-9_]+)+)`)
	aliasDef  = regexp.MustCompile(`\$([A-Za-z0-9_]+) := \.Values((?:\.[A-Za-z0-9_]+)+)`)
)

// templateRefs returns the value paths the templates read: .Values.<path>, and <alias>.<path> for
// aliases bound with `$a := .Values.<prefix>` (the alias itself reads nothing). NOTES.txt is left
// out: a value only shown to the user configures nothing.
func templateRefs(t *testing.T) map[string]bool {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, f := range files {
		if filepath.Base(f) == "NOTES.txt" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		aliases := map[string]string{}
		for _, m := range aliasDef.FindAllStringSubmatch(text, -1) {
			aliases[m[1]] = strings.TrimPrefix(m[2], ".")
		}
		text = aliasDef.ReplaceAllString(text, "")
		for _, m := range valuesRef.FindAllStringSubmatch(text, -1) {
			refs[strings.TrimPrefix(m[1], ".")] = true
		}
		for name, prefix := range aliases {
			re := regexp.MustCompile(`\$` + regexp.QuoteMeta(name) + `((?:\.[A-Za-z0-9_]+)+)`)
			for _, m := range re.FindAllStringSubmatch(text, -1) {
				refs[prefix+m[1]] = true
			}
		}
	}
	return refs
}

// readByTemplate reports whether a template reads leaf or a parent of it (passed whole to
// include, toYaml, with or range).
func readByTemplate(refs map[string]bool, leaf string) bool {
	for p := leaf; ; {
		if refs[p] {
			return true
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// flipped is the changed setting of a leaf.
func flipped(t *testing.T, path string, v any) any {
	t.Helper()
	if f, ok := valueFlips[path]; ok {
		return f
	}
	switch v := v.(type) {
	case bool:
		return !v
	case float64:
		return v + 1
	case int64:
		return v + 1
	case string:
		return "x"
	}
	t.Fatalf("values.yaml %s = %v (%T): add a changed setting to valueFlips", path, v, v)
	return nil
}

// comparable renders the chart and returns its objects, sorted, without the conf.yml of the
// ConfigMap that no binary reads (a value written only there configures nothing). A failed
// rendering returns its error.
func comparable(helm, dir string, args ...string) (string, error) {
	raw, err := Template(helm, dir, args...)
	if err != nil {
		return "", err
	}
	objs, err := Decode(raw)
	if err != nil {
		return "", err
	}
	var docs []string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			if data, ok := o.Object["data"].(map[string]any); ok {
				delete(data, "conf.yml")
			}
		}
		b, err := json.Marshal(o.Object)
		if err != nil {
			return "", err
		}
		docs = append(docs, string(b))
	}
	slices.Sort(docs)
	return strings.Join(docs, "\n"), nil
}

// TestChartEveryValueDoesSomething: every value of values.yaml is read by a template and changes
// what is rendered when it changes (or makes the chart refuse it, naming it). A value accepted
// and ignored would let an upstream values file install a release that silently does something
// else. There is no exemption: upstream marks none of its values experimental.
func TestChartEveryValueDoesSomething(t *testing.T) {
	helm, dir := Require(t)
	leaves := leafValues(values(t))
	refs := templateRefs(t)
	for path := range valueFlips {
		if _, ok := leaves[path]; !ok {
			t.Errorf("valueFlips names %s, which values.yaml does not have", path)
		}
	}
	bases := map[string]string{}
	report := map[string]string{} // path -> what changing it changed, for SPIDERPOOL_VALUES_REPORT
	if out := os.Getenv("SPIDERPOOL_VALUES_REPORT"); out != "" {
		t.Cleanup(func() { writeValuesReport(t, out, report) })
	}
	for _, path := range slices.Sorted(maps.Keys(leaves)) {
		t.Run(path, func(t *testing.T) {
			to := flipped(t, path, leaves[path])
			settings := map[string]any{}
			for prefix, set := range valueEnablers {
				if strings.HasPrefix(path, prefix) {
					maps.Copy(settings, set)
				}
			}
			if on, ok := settings[path]; ok && cmp.Equal(on, to) {
				delete(settings, path) // the change is what enables it
			}
			enable := setJSON(t, settings)
			key := strings.Join(enable, "\x00")
			base, ok := bases[key]
			if !ok {
				var err error
				if base, err = comparable(helm, dir, enable...); err != nil {
					t.Fatalf("render %v: %v", enable, err)
				}
				bases[key] = base
			}
			js, err := json.Marshal(to)
			if err != nil {
				t.Fatal(err)
			}
			// --set-json after --set-json: the last setting of a path wins.
			got, err := comparable(helm, dir, append(slices.Clone(enable), "--set-json", fmt.Sprintf("%s=%s", path, js))...)
			changed := got != base
			switch {
			case err != nil && strings.Contains(err.Error(), "execution error"):
				// Refused by the templates; the message must say which value.
				if !strings.Contains(err.Error(), path) {
					t.Errorf("%s=%s is refused without naming it: %v", path, js, err)
				}
				changed = true
				_, msg, _ := strings.Cut(err.Error(), "): ")
				msg, _, _ = strings.Cut(msg, "\n")
				report[path] = fmt.Sprintf("`%s` is refused: %s", js, msg)
			case err != nil:
				t.Fatalf("%s=%s: the chart rejects the changed setting (add a valid one to valueFlips): %v", path, js, err)
			}
			if err == nil && changed {
				report[path] = fmt.Sprintf("`%s` changes %s", js, renderDiff(base, got))
			}
			read := readByTemplate(refs, path)
			switch {
			case !read && !changed:
				t.Errorf("%s: no template reads it and %s does not change the rendering (spiderpool-conf conf.yml aside): wire it to what it configures, or refuse it in spiderpool.checks.unbuilt", path, js)
			case !changed:
				t.Errorf("%s: a template reads it, but %s changes nothing rendered (spiderpool-conf conf.yml aside) under %v: wire it, refuse it, or add what enables it to valueEnablers", path, js, enable)
			case !read:
				t.Errorf("%s changes the rendering but the scan of templates/ finds no read of it: teach templateRefs the construct", path)
			}
		})
	}
}

// TestChartValueLeaves checks leafValues on a small tree.
func TestChartValueLeaves(t *testing.T) {
	got := leafValues(map[string]any{"a": map[string]any{"b": true, "c": map[string]any{}, "d": []any{1}}, "e": "x"})
	want := map[string]any{"a.b": true, "a.c": map[string]any{}, "a.d": []any{1}, "e": "x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("leafValues (-want +got):\n%s", diff)
	}
}

// renderDiff names what differs between two comparable renderings: each changed object and up to
// two of its changed fields with their new values.
func renderDiff(base, got string) string {
	index := func(s string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, line := range strings.Split(s, "\n") {
			var o map[string]any
			if json.Unmarshal([]byte(line), &o) != nil {
				continue
			}
			meta, _ := o["metadata"].(map[string]any)
			out[fmt.Sprintf("%v/%v", o["kind"], meta["name"])] = o
		}
		return out
	}
	before, after := index(base), index(got)
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		b, ok := before[k]
		if !ok {
			parts = append(parts, k+" (added)")
			continue
		}
		var fields []string
		leafDiff("", b, after[k], &fields)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 {
			fields = append(fields[:2], "...")
		}
		parts = append(parts, k+": "+strings.Join(fields, "; "))
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			parts = append(parts, k+" (removed)")
		}
	}
	return strings.Join(parts, ", ")
}

// leafDiff appends the paths under prefix where a and b differ, with b's value.
func leafDiff(prefix string, a, b any, out *[]string) {
	switch bv := b.(type) {
	case map[string]any:
		av, _ := a.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(bv)) {
			leafDiff(prefix+"."+k, av[k], bv[k], out)
		}
		for _, k := range slices.Sorted(maps.Keys(av)) {
			if _, ok := bv[k]; !ok {
				*out = append(*out, "`"+strings.TrimPrefix(prefix+"."+k, ".")+"` removed")
			}
		}
	case []any:
		av, _ := a.([]any)
		for i := range bv {
			var ai any
			if i < len(av) {
				ai = av[i]
			}
			leafDiff(fmt.Sprintf("%s[%d]", prefix, i), ai, bv[i], out)
		}
		if len(av) > len(bv) {
			*out = append(*out, fmt.Sprintf("`%s` shorter", strings.TrimPrefix(prefix, ".")))
		}
	default:
		if !cmp.Equal(a, b) {
			js, _ := json.Marshal(b)
			*out = append(*out, fmt.Sprintf("`%s` = `%s`", strings.TrimPrefix(prefix, "."), js))
		}
	}
}

// writeValuesReport writes report as a Markdown table, one row per value.
func writeValuesReport(t *testing.T, path string, report map[string]string) {
	var b strings.Builder
	b.WriteString("| Value | Set to another value, it changes (or is refused) |\n|---|---|\n")
	for _, k := range slices.Sorted(maps.Keys(report)) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k, strings.ReplaceAll(strings.TrimSpace(report[k]), "|", "\\|"))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("write %s: %v", path, err)
	}
}
