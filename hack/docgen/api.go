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

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// crdDir holds the CRDs controller-gen writes from api/... (make manifests).
const crdDir = "charts/spiderpool/crds"

// apiGroup is an API group whose CRDs api.md documents.
type apiGroup struct {
	// Name is the group.
	Name string
	// Source is the Go package its types and markers are in.
	Source string
	// Internal marks a group of Spiderpool-Go's own bookkeeping, outside upstream Spiderpool's
	// contract: api.md documents it in a section of its own, and marks each of its kinds.
	Internal bool
	// Order puts kinds in the order a reader meets them; kinds not listed follow by name.
	Order []string
}

// apiGroups are the groups of api.md, in the order of their sections: the public contract first.
var apiGroups = []apiGroup{
	{Name: v2beta1.GroupName, Source: "api/v2beta1",
		Order: []string{"SpiderIPPool", "SpiderSubnet", "SpiderReservedIP", "SpiderEndpoint", "SpiderMultusConfig", "SpiderCoordinator"}},
	{Name: ipblockv1alpha1.GroupName, Source: "api/ipblock/v1alpha1", Internal: true},
}

// foreignGroups are groups of CRDs the chart ships that are not ours (Multus's
// NetworkAttachmentDefinition). A CRD of any other group is an error: it must be placed in
// apiGroups, public or internal, rather than silently left out or shown as public.
var foreignGroups = []string{"k8s.cni.cncf.io"}

// internalGroupNote opens the section of an internal group, and internalKindNote each of its
// kinds: a reader who lands on a kind through its anchor must not take it for part of the contract.
const (
	internalGroupNote = "> **Internal API.** The kinds below are not part of upstream Spiderpool's `" + v2beta1.GroupName + "/v2beta1` " +
		"contract. They are Spiderpool-Go's own bookkeeping, which users neither create nor read (users read SpiderIPPools " +
		"and SpiderEndpoints), and their shape may change between releases without notice."
	internalKindNote = "> **Internal kind**, not part of the `" + v2beta1.GroupName + "/v2beta1` contract: users read SpiderIPPools " +
		"and SpiderEndpoints, never this kind, and it may change between releases without notice."
)

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
	byGroup := map[string][]*apiextv1.CustomResourceDefinition{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		crd := &apiextv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(files[name], crd); err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		g := crd.Spec.Group
		switch {
		case slices.Contains(foreignGroups, g):
		case slices.ContainsFunc(apiGroups, func(a apiGroup) bool { return a.Name == g }):
			byGroup[g] = append(byGroup[g], crd)
		default:
			return nil, fmt.Errorf("%s: group %s is neither documented nor foreign: add it to apiGroups (public or internal) or foreignGroups", name, g)
		}
	}
	for _, g := range apiGroups {
		if len(byGroup[g.Name]) == 0 {
			return nil, fmt.Errorf("no CRD of group %s in %s", g.Name, crdDir)
		}
		rank := func(kind string) int {
			if i := slices.Index(g.Order, kind); i >= 0 {
				return i
			}
			return len(g.Order)
		}
		slices.SortFunc(byGroup[g.Name], func(a, b *apiextv1.CustomResourceDefinition) int {
			return cmp.Or(cmp.Compare(rank(a.Spec.Names.Kind), rank(b.Spec.Names.Kind)), cmp.Compare(a.Spec.Names.Kind, b.Spec.Names.Kind))
		})
	}

	var p page
	p.WriteString(generatedNote)
	p.line("# API reference")
	p.line("")
	p.line("Every kind of Spiderpool-Go, read from the CRDs in `" + crdDir + "`, which controller-gen generates from the")
	p.line("Go types and markers under `api/` (`make manifests`). A field's description is its Go doc comment; type,")
	p.line("default and validation come from its markers. Validation listed here is enforced by the API server itself;")
	p.line("for the public kinds, the admission webhooks of spiderpool-controller check more (overlaps, ranges inside the")
	p.line("subnet, immutability of allocated addresses) and fill in defaults that depend on other fields.")
	p.line("")
	p.line("In a field path, `[]` stands for every element of a list and `{}` for every value of a map. *LabelSelector* is")
	p.line("the Kubernetes label selector (`matchLabels`, `matchExpressions`).")
	p.line("")
	for _, g := range apiGroups {
		p.line("- [" + groupHeading(g) + "](#" + anchor(groupHeading(g)) + ")")
		for _, crd := range byGroup[g.Name] {
			p.line("  - [" + crd.Spec.Names.Kind + "](#" + anchor(crd.Spec.Names.Kind) + ")")
		}
	}
	p.line("")
	for _, g := range apiGroups {
		p.line("## " + groupHeading(g))
		p.line("")
		if g.Internal {
			p.line(internalGroupNote)
			p.line("")
			p.line("The kinds of `" + g.Name + "`, generated from `" + g.Source + "`, are listed for operators who debug")
			p.line("a cluster and for contributors; nothing outside Spiderpool-Go's own components should depend on them.")
		} else {
			p.line("Upstream Spiderpool's public contract, with which Spiderpool-Go is compatible: the kinds users create")
			p.line("and read, generated from `" + g.Source + "`.")
		}
		p.line("")
		for _, crd := range byGroup[g.Name] {
			if err := writeKind(&p, crd, g.Internal); err != nil {
				return nil, fmt.Errorf("%s: %w", crd.Spec.Names.Kind, err)
			}
		}
	}
	return p.Bytes(), nil
}

// groupHeading is the heading of a group's section.
func groupHeading(g apiGroup) string {
	if g.Internal {
		return "Internal API: " + g.Name
	}
	return "Public API: " + g.Name
}

func writeKind(p *page, crd *apiextv1.CustomResourceDefinition, internal bool) error {
	n := crd.Spec.Names
	if len(crd.Spec.Versions) != 1 {
		return fmt.Errorf("want exactly one version, have %d", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return fmt.Errorf("version %s has no schema", v.Name)
	}
	root := v.Schema.OpenAPIV3Schema

	p.line("### " + n.Kind)
	p.line("")
	if internal {
		p.line(internalKindNote)
		p.line("")
	}
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
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil && s.AdditionalProperties.Schema.Type == "object":
		value := s.AdditionalProperties.Schema
		for _, name := range slices.Sorted(maps.Keys(value.Properties)) {
			child := value.Properties[name]
			walkField(path+"{}."+name, &child, slices.Contains(value.Required, name), rows)
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
