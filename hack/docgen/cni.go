package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// cniPlugin is one of our CNI plugins as cni.md documents it.
type cniPlugin struct {
	// Name is the binary and the configuration's "type".
	Name string
	// Dir is the package holding the plugin, relative to the repository root.
	Dir string
	// Intro says what the plugin does and where its object sits in a configuration.
	Intro string
	// Sources are the package's Go files; read from Dir when nil.
	Sources map[string][]byte
}

// cniPlugins are documented in this order. Each package declares NetConf (the configuration it
// decodes), supportedVersions and, when it reads CNI_ARGS, k8sArgs.
var cniPlugins = []cniPlugin{
	{
		Name: "spiderpool",
		Dir:  "internal/cni/spiderpool",
		Intro: "The IPAM plugin. It is the `ipam` object of a main plugin (macvlan, ipvlan, sriov, ...); it asks " +
			"spiderpool-agent on the node for the addresses of one interface and returns them as the CNI result. Only " +
			"the keys of the `ipam` object are its own.",
	},
	{
		Name: "coordinator",
		Dir:  "internal/cni/coordinator",
		Intro: "A meta plugin chained after the main plugin. It reads `prevResult`, wires routes, neighbours and (in " +
			"underlay mode) a veth pair so that the pod reaches its node and the cluster's services, and prints " +
			"`prevResult` unchanged. Every key it leaves out is taken from spiderpool-agent, which serves the " +
			"SpiderCoordinator's values (see [api.md](api.md#spidercoordinator)); a SpiderMultusConfig writes the keys " +
			"of its `spec.coordinator`.",
	},
	{
		Name: "ifacer",
		Dir:  "internal/cni/ifacer",
		Intro: "A meta plugin placed first in a chain. It prepares the host's parent interface for the main plugin: a " +
			"bond of several interfaces and/or a VLAN sub-interface, created once per node and reused by every pod. " +
			"A SpiderMultusConfig adds it when `master` lists several interfaces or, for macvlan and ipvlan, `vlanID` is " +
			"not 0.",
	},
}

func sectionCNI(root string) (string, []byte, error) {
	plugins := make([]cniPlugin, len(cniPlugins))
	for i, pl := range cniPlugins {
		src, err := readGoPackage(filepath.Join(root, pl.Dir))
		if err != nil {
			return "cni.md", nil, err
		}
		pl.Sources = src
		plugins[i] = pl
	}
	b, err := renderCNI(plugins)
	return "cni.md", b, err
}

// cniKey is one configuration key.
type cniKey struct {
	Path, Type, Doc string
}

func renderCNI(plugins []cniPlugin) ([]byte, error) {
	var p page
	p.WriteString(generatedNote)
	p.line("# CNI configuration keys")
	p.line("")
	p.line("The keys each of our CNI plugins reads from its object in a network configuration (a NetworkAttachmentDefinition's")
	p.line("`spec.config`, usually generated from a SpiderMultusConfig), from the Go structs the plugins decode and their")
	p.line("doc comments. The standard keys of every plugin object (`cniVersion`, `name`, `type`, `prevResult`, ...) mean")
	p.line("what the CNI specification says and are not repeated. Unknown keys are ignored.")
	p.line("")
	p.line("Log files must lie under `" + cnilog.DefaultDir + "`, or under the absolute directory named by the environment")
	p.line("variable `" + cnilog.DirEnv + "` of the plugin process (set by the node's operator, not by a configuration):")
	p.line("the plugins run as root and the author of a configuration must not choose which host file they write.")
	p.line("")
	for _, pl := range plugins {
		p.line("- [" + pl.Name + "](#" + anchor(pl.Name) + ")")
	}
	p.line("")
	for _, pl := range plugins {
		if err := writePlugin(&p, pl); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", pl.Name, err)
		}
	}
	return p.Bytes(), nil
}

func writePlugin(p *page, pl cniPlugin) error {
	files, err := parseFiles(pl.Sources)
	if err != nil {
		return err
	}
	versions, err := stringListVar(files, "supportedVersions")
	if err != nil {
		return err
	}
	var keys []cniKey
	if err := structKeys(files, "NetConf", "", &keys); err != nil {
		return err
	}

	p.line("## " + pl.Name)
	p.line("")
	p.line(pl.Intro)
	p.line("")
	p.line("Binary `/opt/cni/bin/" + pl.Name + "`; configuration versions (`cniVersion`): " + codeList(versions) + ".")
	p.line("")
	var rows [][]string
	for _, k := range keys {
		rows = append(rows, []string{code(k.Path), cell(k.Type), cell(k.Doc)})
	}
	p.table([]string{"Key", "Type", "Description"}, rows)

	args, err := cniArgs(files)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		p.line("`CNI_ARGS` keys read (the runtime passes them for a Kubernetes pod; others are refused unless")
		p.line("`IgnoreUnknown=true` is among them):")
		p.line("")
		for _, a := range args {
			line := "- " + code(a.Path)
			if a.Doc != "" {
				line += ": " + strings.TrimSpace(oneLine(a.Doc))
			}
			p.line(line)
		}
		p.line("")
	}
	return nil
}

// structKeys appends the JSON keys of the named struct type, descending into fields whose type is a
// struct of the same package. Embedded structs of other packages (the CNI library's types.NetConf)
// are the standard keys and skipped; an embedded struct of this package adds its keys in place.
func structKeys(files []*ast.File, typeName, prefix string, out *[]cniKey) error {
	ts, ok := typeSpec(files, typeName)
	if !ok {
		return fmt.Errorf("type %s not found", typeName)
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return fmt.Errorf("type %s is not a struct", typeName)
	}
	// A comment names fields by their Go names; the reader writes JSON keys.
	keyOf := map[string]string{}
	for _, f := range st.Fields.List {
		if len(f.Names) == 1 && f.Names[0].IsExported() {
			if key, ok := jsonKey(f); ok {
				keyOf[f.Names[0].Name] = key
			}
		}
	}
	for _, f := range st.Fields.List {
		local, isList := localStruct(files, f.Type)
		if len(f.Names) == 0 { // embedded
			if local != "" {
				if err := structKeys(files, local, prefix, out); err != nil {
					return err
				}
			}
			continue
		}
		if !f.Names[0].IsExported() {
			continue
		}
		key, ok := jsonKey(f)
		if !ok {
			continue
		}
		doc := fieldDoc(f)
		if strings.TrimSpace(doc) == "" {
			return fmt.Errorf("field %s.%s (key %q) has no doc comment", typeName, f.Names[0].Name, prefix+key)
		}
		*out = append(*out, cniKey{Path: prefix + key, Type: jsonType(files, f.Type), Doc: goNamesToKeys(doc, keyOf)})
		if local != "" {
			sub := prefix + key + "."
			if isList {
				sub = prefix + key + "[]."
			}
			if err := structKeys(files, local, sub, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonKey is the key encoding/json uses for a named field; false when the field is not encoded.
func jsonKey(f *ast.Field) (string, bool) {
	key := f.Names[0].Name
	if f.Tag == nil {
		return key, true
	}
	tag, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return key, true
	}
	switch name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ","); name {
	case "-":
		return "", false
	case "":
		return key, true
	default:
		return name, true
	}
}

// goNamesToKeys replaces the Go field names a comment mentions with their JSON keys, as code.
func goNamesToKeys(doc string, keyOf map[string]string) string {
	return goIdent.ReplaceAllStringFunc(doc, func(w string) string {
		if k, ok := keyOf[w]; ok {
			return "`" + k + "`"
		}
		return w
	})
}

// localStruct returns the name of the struct type of this package that e is, points to or lists.
func localStruct(files []*ast.File, e ast.Expr) (name string, list bool) {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
			continue
		case *ast.ArrayType:
			e, list = t.Elt, true
			continue
		case *ast.Ident:
			if ts, ok := typeSpec(files, t.Name); ok {
				if _, ok := ts.Type.(*ast.StructType); ok {
					return t.Name, list
				}
			}
		}
		return "", false
	}
}

// jsonType names the JSON type a key takes.
func jsonType(files []*ast.File, e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return jsonType(files, t.X)
	case *ast.ArrayType:
		return "list of " + plural(jsonType(files, t.Elt))
	case *ast.MapType:
		return "object"
	case *ast.Ident:
		switch t.Name {
		case "string":
			return "string"
		case "bool":
			return "boolean"
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
			return "integer"
		case "float32", "float64":
			return "number"
		}
		if name, _ := localStruct(files, t); name != "" {
			return "object"
		}
		if ts, ok := typeSpec(files, t.Name); ok {
			return jsonType(files, ts.Type)
		}
	}
	return exprString(e)
}

func plural(s string) string {
	switch s {
	case "boolean", "string", "integer", "number", "object":
		return s + "s"
	}
	return s
}

// stringListVar returns the value of a package-level variable initialised with a []string literal.
func stringListVar(files []*ast.File, name string) ([]string, error) {
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.CompositeLit)
					if !ok {
						return nil, fmt.Errorf("var %s is not a literal", name)
					}
					var out []string
					for _, el := range lit.Elts {
						bl, ok := el.(*ast.BasicLit)
						if !ok || bl.Kind != token.STRING {
							return nil, fmt.Errorf("var %s: element is not a string literal", name)
						}
						v, err := strconv.Unquote(bl.Value)
						if err != nil {
							return nil, fmt.Errorf("var %s: %w", name, err)
						}
						out = append(out, v)
					}
					return out, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("var %s not found", name)
}

// cniArgs returns the CNI_ARGS keys of the k8sArgs struct, if the package has one: the field names
// are the keys.
func cniArgs(files []*ast.File) ([]cniKey, error) {
	ts, ok := typeSpec(files, "k8sArgs")
	if !ok {
		return nil, nil
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return nil, fmt.Errorf("k8sArgs is not a struct")
	}
	var out []cniKey
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			out = append(out, cniKey{Path: n.Name, Doc: fieldDoc(f)})
		}
	}
	return out, nil
}
