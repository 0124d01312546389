package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// constantsFile holds the names of the public contract.
const constantsFile = "api/v2beta1/constants.go"

// constant is one named string constant of constantsFile.
type constant struct {
	Name, Value, Doc string
}

// keySection says which section of annotations.md a constant belongs to, by its name.
func keySection(name string) (keyKind, bool) {
	for _, k := range keyKinds {
		if strings.HasPrefix(name, k.Prefix) {
			return k, true
		}
	}
	return keyKind{}, false
}

// keyKind is a section of annotations.md: the constants whose names start with Prefix.
type keyKind struct {
	Prefix, Section, Kind string
}

var keyKinds = []keyKind{
	{"Anno", "Annotations", "annotation"},
	{"Label", "Labels", "label"},
	{"AutoPoolPodAffinity", "Pod-affinity labels of automatic pools", "podAffinity label"},
	{"Finalizer", "Finalizer", "finalizer"},
}

// qualifiedKey matches a Kubernetes annotation or label key with a prefix ("prefix/name").
var qualifiedKey = regexp.MustCompile(`^[a-z0-9.-]+\.[a-z]+/[A-Za-z0-9._-]+$`)

func sectionAnnotations(root string) (string, []byte, error) {
	src, err := os.ReadFile(filepath.Join(root, constantsFile))
	if err != nil {
		return "annotations.md", nil, fmt.Errorf("read constants: %w", err)
	}
	b, err := renderAnnotations(src)
	return "annotations.md", b, err
}

// stringConstants returns the string constants of a Go file in source order.
func stringConstants(src []byte) ([]constant, error) {
	files, err := parseFiles(map[string][]byte{filepath.Base(constantsFile): src})
	if err != nil {
		return nil, err
	}
	var out []constant
	for _, d := range files[0].Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			doc := vs.Doc.Text()
			if doc == "" && len(gd.Specs) == 1 {
				doc = gd.Doc.Text()
			}
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					return nil, fmt.Errorf("constant %s: %w", n.Name, err)
				}
				out = append(out, constant{Name: n.Name, Value: v, Doc: doc})
			}
		}
	}
	return out, nil
}

// renderAnnotations writes annotations.md from the source of constantsFile. Every constant of a
// section must carry a doc comment, and every constant whose value looks like an annotation or
// label key must belong to a section: a new key cannot be added without its documentation.
func renderAnnotations(src []byte) ([]byte, error) {
	consts, err := stringConstants(src)
	if err != nil {
		return nil, err
	}
	bySection := map[string][]constant{}
	valueOf := map[string]string{}
	for _, c := range consts {
		valueOf[c.Name] = c.Value
		k, ok := keySection(c.Name)
		if !ok {
			if qualifiedKey.MatchString(c.Value) {
				return nil, fmt.Errorf("constant %s = %q looks like an annotation or label key: name it Anno*, Label* or AutoPoolPodAffinity*", c.Name, c.Value)
			}
			continue
		}
		if strings.TrimSpace(c.Doc) == "" {
			return nil, fmt.Errorf("constant %s (%q) has no doc comment: say where it goes, its value format and an example", c.Name, c.Value)
		}
		bySection[k.Section] = append(bySection[k.Section], c)
	}
	// A comment names other keys by their constants; the reader sees the keys.
	rename := func(w string) string {
		if v, ok := valueOf[w]; ok {
			return "`" + v + "`"
		}
		return w
	}

	var p page
	p.WriteString(generatedNote)
	p.line("# Annotations, labels and finalizer")
	p.line("")
	p.line("The annotation and label keys Spiderpool reads or writes, from the constants and their doc comments in")
	p.line("`" + constantsFile + "`. Annotation values are strings; the examples quote JSON values in single quotes, as")
	p.line("a YAML manifest does. Keys of other projects (Multus) are listed where Spiderpool reads or writes them.")
	p.line("")

	anchors := map[string]int{}
	heading := func(key string) string {
		a := anchor(key)
		n := anchors[a]
		anchors[a]++
		if n > 0 {
			a += "-" + strconv.Itoa(n)
		}
		return a
	}
	var rows [][]string
	for _, k := range keyKinds {
		for _, c := range bySection[k.Section] {
			rows = append(rows, []string{"[" + code(c.Value) + "](#" + heading(c.Value) + ")", k.Kind, code("v2beta1." + c.Name)})
		}
	}
	p.table([]string{"Key", "Kind", "Go constant"}, rows)

	for _, k := range keyKinds {
		if len(bySection[k.Section]) == 0 {
			continue
		}
		p.line("## " + k.Section)
		p.line("")
		for _, c := range bySection[k.Section] {
			p.line("### " + code(c.Value))
			p.line("")
			p.line(docMarkdown(c.Doc, rename))
			p.line("")
		}
	}
	return p.Bytes(), nil
}
