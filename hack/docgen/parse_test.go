package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestParseGoFlags(t *testing.T) {
	out := "Usage of tool sub:\n" +
		"  -addr string\n    \tTCP address (default \":5710\")\n" +
		"  -debug\n    \texport debug metrics\n" +
		"  -v\tverbose\n" +
		"  -timeout duration\n    \thow long the run may take;\n    \tsecond line (default 5m0s)\n"
	header, flags, err := parseGoFlags(out)
	if err != nil {
		t.Fatal(err)
	}
	if header != "tool sub" {
		t.Errorf("header = %q, want %q", header, "tool sub")
	}
	want := []flagRow{
		{Name: "-addr", Type: "string", Default: `":5710"`, Usage: "TCP address"},
		{Name: "-debug", Type: "bool", Usage: "export debug metrics"},
		{Name: "-v", Type: "bool", Usage: "verbose"},
		{Name: "-timeout", Type: "duration", Default: "5m0s", Usage: "how long the run may take; second line"},
	}
	if diff := cmp.Diff(want, flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}

	for _, bad := range []string{"usage: tool <command>\n", "Usage of x:\n  stray text\n"} {
		if _, _, err := parseGoFlags(bad); err == nil {
			t.Errorf("parseGoFlags(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseCobra(t *testing.T) {
	out := `Check things and report:
  a   first
  b   second

Usage:
  tool doctor [flags]

Available Commands:
  help        Help about any command
  run         Run it

Flags:
      --enable   switch (default true)
  -h, --help     help for doctor
  -o, --output string   table or json (default "table")
      --pool strings    pools (repeatable)

Global Flags:
      --timeout duration   how long (default 1m0s)

Use "tool doctor [command] --help" for more information about a command.
`
	h, err := parseCobra(out)
	if err != nil {
		t.Fatal(err)
	}
	want := cobraHelp{
		Description: "Check things and report:\n  a   first\n  b   second",
		Usage:       []string{"tool doctor [flags]"},
		Commands:    [][2]string{{"help", "Help about any command"}, {"run", "Run it"}},
		Flags: []flagRow{
			{Name: "--enable", Type: "bool", Default: "true", Usage: "switch"},
			{Name: "-h, --help", Type: "bool", Usage: "help for doctor"},
			{Name: "-o, --output", Type: "string", Default: `"table"`, Usage: "table or json"},
			{Name: "--pool", Type: "strings", Usage: "pools (repeatable)"},
		},
		Global: []flagRow{{Name: "--timeout", Type: "duration", Default: "1m0s", Usage: "how long"}},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("parseCobra (-want +got):\n%s", diff)
	}
}

func TestCommandSummary(t *testing.T) {
	for _, tc := range []struct {
		doc, prefix, want string
	}{
		{"installCNI is `agent install-cni`: the init container copies\nthe plugins.\n", "installCNI is ",
			"The init container copies the plugins."},
		{"cleanup is `ctl cleanup`, the chart's hook: it removes things.\n\nMore detail.\n", "cleanup is ",
			"The chart's hook: it removes things."},
		{"Command tool is the daemon: it serves. This file only wires flags.\n", "Command tool ",
			"The daemon: it serves."},
		{"Command tool runs the reconcilers. Other text.\n", "Command tool ", "Runs the reconcilers."},
		{"Something else entirely.\n", "Command tool ", ""},
	} {
		if got := commandSummary(tc.doc, tc.prefix); got != tc.want {
			t.Errorf("commandSummary(%q, %q) = %q, want %q", tc.doc, tc.prefix, got, tc.want)
		}
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"cell pipes and tags", cell("a | b <master>.<id>\n  *x*"), `a \| b &lt;master&gt;.&lt;id&gt; \*x\*`},
		{"cell drops private citations", cell("pools (SPEC.md 3.2 rule 5) used"), "pools used"},
		{"code pipes", code("a || b"), "`a \\|\\| b`"},
		{"code with backtick", code("a`b"), "``a`b``"},
		{"code empty", code(""), ""},
		{"anchor", anchor("`ipam.spidernet.io/ippool-reclaim`"), "ipamspidernetioippool-reclaim"},
		{"doc code block", docMarkdown("Key, example:\n\n\tk: v\n", nil), "Key, example:\n\n```\nk: v\n```"},
		{"doc rename", docMarkdown("AnnoX outranks AnnoY.\n", func(w string) string { return strings.ToLower(w) }), "annox outranks annoy."},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestSchemaRendering(t *testing.T) {
	minimum, maxLen := 0.0, int64(64)
	for _, tc := range []struct {
		name       string
		s          apiextv1.JSONSchemaProps
		typ, valid string
	}{
		{"enum int", apiextv1.JSONSchemaProps{Type: "integer", Format: "int64", Enum: []apiextv1.JSON{{Raw: []byte("4")}, {Raw: []byte("6")}}},
			"integer (int64)", "one of `4`, `6`"},
		{"string with CEL", apiextv1.JSONSchemaProps{Type: "string", MaxLength: &maxLen,
			XValidations: apiextv1.ValidationRules{{Rule: "isCIDR(self) || self == ''", Message: "must be a CIDR"}}},
			"string", "max length 64; CEL `isCIDR(self) \\|\\| self == ''` (must be a CIDR)"},
		{"list of objects", apiextv1.JSONSchemaProps{Type: "array", Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &apiextv1.JSONSchemaProps{Type: "object"}}, MinItems: ptr(int64(1))},
			"[]object", "min items 1"},
		{"map", apiextv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Schema: &apiextv1.JSONSchemaProps{Type: "string"}}},
			"map[string]string", ""},
		{"label selector", apiextv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{"matchLabels": {}, "matchExpressions": {}}},
			"LabelSelector", ""},
		{"minimum", apiextv1.JSONSchemaProps{Type: "integer", Minimum: &minimum}, "integer", "minimum 0"},
	} {
		if got := typeName(&tc.s); got != tc.typ {
			t.Errorf("%s: typeName = %q, want %q", tc.name, got, tc.typ)
		}
		if got := validation(&tc.s); got != tc.valid {
			t.Errorf("%s: validation = %q, want %q", tc.name, got, tc.valid)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestHelmValues(t *testing.T) {
	values := []byte(`# file header, not a value

top:
  # The port.
  port: 5710
  list: [a, b]
  # A group.
  group:
    inner: x # trailing
  empty: {}
  image:
    tag: ""
`)
	schema := []byte(`{"definitions": {"image": {"type": "object", "properties": {"tag": {"type": "string", "description": "tag; empty means latest"}}}},
 "properties": {"top": {"type": "object", "properties": {
   "port": {"type": "integer", "minimum": 1, "maximum": 65535},
   "mode": {"type": "string", "enum": ["a", "b"], "description": "the mode"},
   "image": {"$ref": "#/definitions/image"}}}}}`)
	got, err := renderHelmValues(values, schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `top.port` | integer | `5710` | minimum 1; maximum 65535 | The port. |",
		"| `top.list` | list | `[\"a\",\"b\"]` |  |  |",
		"| `top.group` | object |  |  | A group. |",
		"| `top.group.inner` | string | `\"x\"` |  | trailing |",
		"| `top.empty` | object | `{}` |  |  |",
		"| `top.image.tag` | string | `\"\"` |  | Tag; empty means latest. |",
		"| `top.mode` | string |  | one of `\"a\"`, `\"b\"` | Not set by default. The mode. |",
	} {
		if !strings.Contains(string(got), want+"\n") {
			t.Errorf("helm-values.md lacks the row\n%s\ngot:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "file header") {
		t.Error("the file's header comment was taken for a value's")
	}
	if _, err := renderHelmValues([]byte("top:\n  image: {tag: x}\n"), []byte(`{"properties": {"top": {"properties": {"image": {"$ref": "#/definitions/nope"}}}}}`)); err == nil {
		t.Error("a $ref to a missing definition was accepted")
	}
}

func TestAnnotationsRequireDocs(t *testing.T) {
	for _, tc := range []struct {
		name, src, wantErr string
	}{
		{"undocumented annotation", "package v2beta1\n\nconst (\n\t// AnnoA is documented.\n\tAnnoA = \"x.io/a\"\n\tAnnoB = \"x.io/b\"\n)\n", "AnnoB"},
		{"key outside a section", "package v2beta1\n\nconst Other = \"x.io/other\"\n", "looks like an annotation"},
	} {
		if _, err := renderAnnotations([]byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	got, err := renderAnnotations([]byte("package v2beta1\n\nconst (\n\t// AnnoA, on a pod, outranks AnnoB.\n\tAnnoA = \"x.io/a\"\n\t// LabelB is set by us.\n\tLabelB = \"x.io/a\"\n\t// AnnoB, on a namespace.\n\tAnnoB = \"x.io/b\"\n\tNotAKey = \"eth0\"\n)\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| [`x.io/a`](#xioa) | annotation | `v2beta1.AnnoA` |",
		"| [`x.io/a`](#xioa-1) | label | `v2beta1.LabelB` |",
		"`x.io/a`, on a pod, outranks `x.io/b`.",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("annotations.md lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "eth0") {
		t.Error("a constant that is no key was documented")
	}
}

func TestCNIKeysRequireDocs(t *testing.T) {
	src := map[string][]byte{"conf.go": []byte(`package p

var supportedVersions = []string{"1.0.0"}

type NetConf struct {
	// Mode is the mode; see Sub.
	Mode string ` + "`json:\"mode\"`" + `
	// Sub configures things.
	Sub *Sub ` + "`json:\"sub,omitempty\"`" + `
	hidden int
	Skipped string ` + "`json:\"-\"`" + `
}

type Sub struct {
	// Level is a level.
	Level int ` + "`json:\"level\"`" + `
	Undocumented bool ` + "`json:\"undocumented\"`" + `
}
`)}
	_, err := renderCNI([]cniPlugin{{Name: "p", Sources: src}})
	if err == nil || !strings.Contains(err.Error(), `"sub.undocumented"`) {
		t.Fatalf("error = %v, want one naming sub.undocumented", err)
	}
	src["conf.go"] = []byte(strings.Replace(string(src["conf.go"]), "\tUndocumented bool", "\t// Undocumented no more.\n\tUndocumented bool", 1))
	got, err := renderCNI([]cniPlugin{{Name: "p", Sources: src}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `mode` | string | `mode` is the mode; see `sub`. |",
		"| `sub` | object | `sub` configures things. |",
		"| `sub.level` | integer | `level` is a level. |",
		"configuration versions (`cniVersion`): `1.0.0`.",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("cni.md lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "Skipped") || strings.Contains(string(got), "hidden") {
		t.Errorf("cni.md documents a field JSON does not decode:\n%s", got)
	}
}
