package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

const (
	valuesFile = "charts/spiderpool/values.yaml"
	schemaFile = "charts/spiderpool/values.schema.json"
)

func sectionHelm(root string) (string, []byte, error) {
	values, err := os.ReadFile(filepath.Join(root, valuesFile))
	if err != nil {
		return "helm-values.md", nil, fmt.Errorf("read values: %w", err)
	}
	schema, err := os.ReadFile(filepath.Join(root, schemaFile))
	if err != nil {
		return "helm-values.md", nil, fmt.Errorf("read schema: %w", err)
	}
	b, err := renderHelmValues(values, schema)
	return "helm-values.md", b, err
}

// jsonSchema is the part of a JSON schema the reference shows.
type jsonSchema struct {
	Ref         string                 `json:"$ref"`
	Type        string                 `json:"type"`
	Description string                 `json:"description"`
	Enum        []any                  `json:"enum"`
	Minimum     *float64               `json:"minimum"`
	Maximum     *float64               `json:"maximum"`
	MinLength   *int                   `json:"minLength"`
	MaxLength   *int                   `json:"maxLength"`
	Pattern     string                 `json:"pattern"`
	Items       *jsonSchema            `json:"items"`
	Properties  map[string]*jsonSchema `json:"properties"`
	Definitions map[string]*jsonSchema `json:"definitions"`
}

// resolve follows a local "#/definitions/x" reference; properties set beside $ref are ignored,
// as draft-07 ignores them.
func (s *jsonSchema) resolve(root *jsonSchema) (*jsonSchema, error) {
	if s == nil || s.Ref == "" {
		return s, nil
	}
	name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
	if !ok {
		return nil, fmt.Errorf("unsupported $ref %q", s.Ref)
	}
	d, ok := root.Definitions[name]
	if !ok {
		return nil, fmt.Errorf("$ref %q: no such definition", s.Ref)
	}
	return d.resolve(root)
}

// helmRow is one documented value.
type helmRow struct {
	path, typ, def, valid, desc string
}

func renderHelmValues(values, schemaJSON []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", valuesFile, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping at the top", valuesFile)
	}
	schema := &jsonSchema{}
	if err := json.Unmarshal(schemaJSON, schema); err != nil {
		return nil, fmt.Errorf("parse %s: %w", schemaFile, err)
	}

	var p page
	p.WriteString(generatedNote)
	p.line("# Helm values")
	p.line("")
	p.line("Every value of the `charts/spiderpool` chart with its default, from `" + valuesFile + "` (the descriptions are")
	p.line("its comments) and `" + schemaFile + "` (type and validation; `helm install` refuses values the schema")
	p.line("rejects). Defaults are shown as JSON. Set them with `--set path=value` or a values file.")
	p.line("")
	top := doc.Content[0]
	for i := 0; i < len(top.Content); i += 2 {
		p.line("- [" + top.Content[i].Value + "](#" + anchor(top.Content[i].Value) + ")")
	}
	p.line("")
	for i := 0; i < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		p.line("## " + k.Value)
		p.line("")
		if c := nodeComment(k, v); c != "" {
			p.line(cell(c))
			p.line("")
		}
		sub, err := schema.Properties[k.Value].resolve(schema)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.Value, err)
		}
		var rows []helmRow
		if err := walkValues(k.Value, v, sub, schema, true, &rows); err != nil {
			return nil, err
		}
		table := make([][]string, len(rows))
		for i, r := range rows {
			table[i] = []string{code(r.path), r.typ, r.def, r.valid, r.desc}
		}
		p.table([]string{"Value", "Type", "Default", "Validation", "Description"}, table)
	}
	return p.Bytes(), nil
}

// walkValues adds a row per leaf below the value node v at path (a scalar, a list or an empty
// map), and a row for every inner map that carries a comment. Keys the schema knows but values.yaml
// leaves out are listed without a default.
func walkValues(path string, v *yaml.Node, s, root *jsonSchema, top bool, rows *[]helmRow) error {
	if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
		seen := map[string]bool{}
		for i := 0; i < len(v.Content); i += 2 {
			k, cv := v.Content[i], v.Content[i+1]
			seen[k.Value] = true
			var cs *jsonSchema
			if s != nil {
				var err error
				if cs, err = s.Properties[k.Value].resolve(root); err != nil {
					return fmt.Errorf("%s.%s: %w", path, k.Value, err)
				}
			}
			childPath := path + "." + k.Value
			if cv.Kind == yaml.MappingNode && len(cv.Content) > 0 {
				if c := nodeComment(k, cv); c != "" {
					*rows = append(*rows, helmRow{path: childPath, typ: "object", desc: cell(c)})
				}
			} else {
				row, err := leafRow(childPath, k, cv, cs)
				if err != nil {
					return err
				}
				*rows = append(*rows, row)
			}
			if cv.Kind == yaml.MappingNode && len(cv.Content) > 0 {
				if err := walkValues(childPath, cv, cs, root, false, rows); err != nil {
					return err
				}
			}
		}
		if s != nil {
			for _, name := range sortedKeys(s.Properties) {
				if seen[name] {
					continue
				}
				cs, err := s.Properties[name].resolve(root)
				if err != nil {
					return fmt.Errorf("%s.%s: %w", path, name, err)
				}
				*rows = append(*rows, helmRow{path: path + "." + name, typ: schemaType(cs, ""), valid: schemaValidation(cs),
					desc: cell(strings.TrimSpace("Not set by default. " + sentence(cs.Description)))})
			}
		}
		return nil
	}
	if top {
		return fmt.Errorf("%s: top-level value is not a map", path)
	}
	return nil
}

func leafRow(path string, k, v *yaml.Node, s *jsonSchema) (helmRow, error) {
	var val any
	if err := v.Decode(&val); err != nil {
		return helmRow{}, fmt.Errorf("%s: %w", path, err)
	}
	def, err := json.Marshal(val)
	if err != nil {
		return helmRow{}, fmt.Errorf("%s: %w", path, err)
	}
	desc := nodeComment(k, v)
	if desc == "" && s != nil && s.Description != "" {
		desc = sentence(s.Description)
	}
	return helmRow{path: path, typ: schemaType(s, yamlType(v)), def: code(string(def)), valid: schemaValidation(s), desc: cell(desc)}, nil
}

// nodeComment joins the comments written above a key and at the end of its line.
func nodeComment(k, v *yaml.Node) string {
	var parts []string
	for _, c := range []string{k.HeadComment, k.LineComment, v.LineComment} {
		for _, l := range strings.Split(c, "\n") {
			l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
			if l != "" {
				parts = append(parts, l)
			}
		}
	}
	return strings.Join(parts, " ")
}

func yamlType(v *yaml.Node) string {
	switch {
	case v.Kind == yaml.SequenceNode:
		return "list"
	case v.Kind == yaml.MappingNode:
		return "object"
	case v.Tag == "!!bool":
		return "boolean"
	case v.Tag == "!!int":
		return "integer"
	case v.Tag == "!!float":
		return "number"
	}
	return "string"
}

// schemaType is the schema's type, else the type the YAML default has.
func schemaType(s *jsonSchema, fallback string) string {
	if s == nil || s.Type == "" {
		return fallback
	}
	if s.Type == "array" {
		if s.Items != nil && s.Items.Type != "" {
			return "list of " + plural(s.Items.Type)
		}
		return "list"
	}
	return s.Type
}

func schemaValidation(s *jsonSchema) string {
	if s == nil {
		return ""
	}
	var parts []string
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			b, _ := json.Marshal(e)
			vals[i] = code(string(b))
		}
		parts = append(parts, "one of "+strings.Join(vals, ", "))
	}
	if s.Minimum != nil {
		parts = append(parts, "minimum "+strconv.FormatFloat(*s.Minimum, 'f', -1, 64))
	}
	if s.Maximum != nil {
		parts = append(parts, "maximum "+strconv.FormatFloat(*s.Maximum, 'f', -1, 64))
	}
	if s.MinLength != nil {
		parts = append(parts, "min length "+strconv.Itoa(*s.MinLength))
	}
	if s.MaxLength != nil {
		parts = append(parts, "max length "+strconv.Itoa(*s.MaxLength))
	}
	if s.Pattern != "" {
		parts = append(parts, "pattern "+code(s.Pattern))
	}
	return strings.Join(parts, "; ")
}

// sentence capitalises s and ends it with a period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
