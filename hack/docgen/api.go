package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdDir holds the CRDs controller-gen writes from api/v2beta1 (make manifests).
const crdDir = "charts/spiderpool/crds"

// apiGroup is the group whose CRDs api.md documents; the chart also ships Multus's
// NetworkAttachmentDefinition CRD, which is not ours.
const apiGroup = "spiderpool.spidernet.io"

// kindOrder puts the kinds in the order a reader meets them; kinds not listed follow by name.
var kindOrder = []string{"SpiderIPPool", "SpiderSubnet", "SpiderReservedIP", "SpiderEndpoint", "SpiderMultusConfig", "SpiderCoordinator"}

// readCRDs returns the files of crdDir by name.
func readCRDs(root string) (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(root, crdDir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list CRDs: %w", err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read CRD: %w", err)
		}
		out[filepath.Base(p)] = b
	}
	return out, nil
}

// sectionAPI generates api.md.
func sectionAPI(root string) (string, []byte, error) {
	files, err := readCRDs(root)
	if err != nil {
		return "api.md", nil, err
	}
	b, err := renderAPI(files)
	return "api.md", b, err
}

// renderAPI writes api.md from the CRD files (file name -> YAML).
func renderAPI(files map[string][]byte) ([]byte, error) {
	var crds []*apiextv1.CustomResourceDefinition
	for _, name := range slices.Sorted(maps.Keys(files)) {
		crd := &apiextv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(files[name], crd); err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		if crd.Spec.Group == apiGroup {
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRD of group %s in %s", apiGroup, crdDir)
	}
	rank := func(kind string) int {
		if i := slices.Index(kindOrder, kind); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	slices.SortFunc(crds, func(a, b *apiextv1.CustomResourceDefinition) int {
		return cmp.Or(cmp.Compare(rank(a.Spec.Names.Kind), rank(b.Spec.Names.Kind)), cmp.Compare(a.Spec.Names.Kind, b.Spec.Names.Kind))
	})

	var p page
	p.WriteString(generatedNote)
	p.line("# API reference: " + apiGroup)
	p.line("")
	p.line("Every kind of the `" + apiGroup + "` API group, read from the CRDs in `" + crdDir + "`, which controller-gen")
	p.line("generates from the Go types and markers in `api/v2beta1` (`make manifests`). A field's description is its Go doc")
	p.line("comment; type, default and validation come from its markers. Validation listed here is enforced by the API")
	p.line("server itself; the admission webhooks of spiderpool-controller check more (overlaps, ranges inside the subnet,")
	p.line("immutability of allocated addresses) and fill in defaults that depend on other fields.")
	p.line("")
	p.line("In a field path, `[]` stands for every element of a list. *LabelSelector* is the Kubernetes label selector")
	p.line("(`matchLabels`, `matchExpressions`).")
	p.line("")
	for _, crd := range crds {
		p.line("- [" + crd.Spec.Names.Kind + "](#" + anchor(crd.Spec.Names.Kind) + ")")
	}
	p.line("")
	for _, crd := range crds {
		if err := writeKind(&p, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", crd.Spec.Names.Kind, err)
		}
	}
	return p.Bytes(), nil
}

func writeKind(p *page, crd *apiextv1.CustomResourceDefinition) error {
	n := crd.Spec.Names
	if len(crd.Spec.Versions) != 1 {
		return fmt.Errorf("want exactly one version, have %d", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return fmt.Errorf("version %s has no schema", v.Name)
	}
	root := v.Schema.OpenAPIV3Schema

	p.line("## " + n.Kind)
	p.line("")
	p.line(oneLine(root.Description))
	p.line("")
	status := "no"
	if v.Subresources != nil && v.Subresources.Status != nil {
		status = "yes"
	}
	p.table([]string{"Property", "Value"}, [][]string{
		{"apiVersion", code(crd.Spec.Group + "/" + v.Name)},
		{"Scope", string(crd.Spec.Scope)},
		{"Resource (plural, singular)", code(n.Plural) + ", " + code(n.Singular)},
		{"Short names", codeList(n.ShortNames)},
		{"Categories", codeList(n.Categories)},
		{"Status subresource", status},
	})

	if len(v.AdditionalPrinterColumns) > 0 {
		p.line("Columns of `kubectl get " + n.Plural + "` (`-o wide` adds those marked wide):")
		p.line("")
		var rows [][]string
		for _, c := range v.AdditionalPrinterColumns {
			shown := "always"
			if c.Priority > 0 {
				shown = "wide"
			}
			rows = append(rows, []string{cell(c.Name), code(c.JSONPath), c.Type, shown})
		}
		p.table([]string{"Column", "JSONPath", "Type", "Shown"}, rows)
	}

	var rows [][]string
	for _, name := range slices.Sorted(maps.Keys(root.Properties)) {
		if name == "apiVersion" || name == "kind" || name == "metadata" {
			continue
		}
		prop := root.Properties[name]
		walkField(name, &prop, slices.Contains(root.Required, name), &rows)
	}
	p.line("Fields:")
	p.line("")
	p.table([]string{"Field", "Type", "Required", "Default", "Validation", "Description"}, rows)
	return nil
}

// walkField adds the row of the field at path and of everything below it.
func walkField(path string, s *apiextv1.JSONSchemaProps, required bool, rows *[]fieldRow) {
	req := ""
	if required {
		req = "yes"
	}
	def := ""
	if s.Default != nil {
		def = code(rawJSON(s.Default.Raw))
	}
	*rows = append(*rows, []string{code(path), cell(typeName(s)), req, def, validation(s), cell(s.Description)})
	if isLabelSelector(s) {
		return
	}
	switch {
	case s.Type == "object" && len(s.Properties) > 0:
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			child := s.Properties[name]
			walkField(path+"."+name, &child, slices.Contains(s.Required, name), rows)
		}
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil && s.Items.Schema.Type == "object" && !isLabelSelector(s.Items.Schema):
		item := s.Items.Schema
		for _, name := range slices.Sorted(maps.Keys(item.Properties)) {
			child := item.Properties[name]
			walkField(path+"[]."+name, &child, slices.Contains(item.Required, name), rows)
		}
	}
}

// fieldRow is one row of a field table.
type fieldRow = []string

// isLabelSelector recognises metav1.LabelSelector, which is shown as one field rather than
// expanded: its shape is Kubernetes', not ours.
func isLabelSelector(s *apiextv1.JSONSchemaProps) bool {
	if s.Type != "object" || len(s.Properties) != 2 {
		return false
	}
	_, a := s.Properties["matchLabels"]
	_, b := s.Properties["matchExpressions"]
	return a && b
}

func typeName(s *apiextv1.JSONSchemaProps) string {
	switch {
	case isLabelSelector(s):
		return "LabelSelector"
	case s.XIntOrString:
		return "integer or string"
	case s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields:
		return "any"
	case s.Type == "integer" && s.Format != "":
		return "integer (" + s.Format + ")"
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		return "[]" + typeName(s.Items.Schema)
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		return "map[string]" + typeName(s.AdditionalProperties.Schema)
	}
	return s.Type
}

// validation lists what the schema itself enforces on a value.
func validation(s *apiextv1.JSONSchemaProps) string {
	var parts []string
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			vals[i] = code(rawJSON(e.Raw))
		}
		parts = append(parts, "one of "+strings.Join(vals, ", "))
	}
	bound := func(word string, v *float64, exclusive bool) {
		if v == nil {
			return
		}
		w := word
		if exclusive {
			w = "exclusive " + word
		}
		parts = append(parts, w+" "+strconv.FormatFloat(*v, 'f', -1, 64))
	}
	bound("minimum", s.Minimum, s.ExclusiveMinimum)
	bound("maximum", s.Maximum, s.ExclusiveMaximum)
	count := func(word string, v *int64) {
		if v != nil {
			parts = append(parts, word+" "+strconv.FormatInt(*v, 10))
		}
	}
	count("min length", s.MinLength)
	count("max length", s.MaxLength)
	count("min items", s.MinItems)
	count("max items", s.MaxItems)
	count("min properties", s.MinProperties)
	count("max properties", s.MaxProperties)
	if s.UniqueItems {
		parts = append(parts, "unique items")
	}
	if s.Pattern != "" {
		parts = append(parts, "pattern "+code(s.Pattern))
	}
	if s.Format != "" && s.Type != "integer" {
		parts = append(parts, "format "+code(s.Format))
	}
	if s.Nullable {
		parts = append(parts, "nullable")
	}
	for _, r := range s.XValidations {
		rule := "CEL " + code(oneLine(r.Rule))
		if r.Message != "" {
			rule += " (" + cell(r.Message) + ")"
		}
		parts = append(parts, rule)
	}
	return strings.Join(parts, "; ")
}

func codeList(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

// rawJSON compacts a JSON value for display.
func rawJSON(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(b)
	}
	return string(out)
}
