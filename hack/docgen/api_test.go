package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
)

// kindSections splits a section of api.md into its kinds' sections, by kind.
func kindSections(section string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(section, "\n### ")[1:] {
		kind, _, _ := strings.Cut(part, "\n")
		out[kind] = part
	}
	return out
}

// Every kind of the internal group is documented apart from the public contract and marked
// internal where a reader lands through its anchor; no public kind carries the mark.
func TestAPIMarksInternalKinds(t *testing.T) {
	files, err := readCRDs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var internalKinds []string
	for name, b := range files {
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if crd.Spec.Group == ipblockv1alpha1.GroupName {
			internalKinds = append(internalKinds, crd.Spec.Names.Kind)
		}
	}
	if len(internalKinds) == 0 {
		t.Fatalf("no CRD of %s in %s: run make manifests", ipblockv1alpha1.GroupName, crdDir)
	}
	page, err := renderAPI(files)
	if err != nil {
		t.Fatal(err)
	}

	sections := map[string]string{}
	for _, part := range strings.Split(string(page), "\n## ")[1:] {
		heading, _, _ := strings.Cut(part, "\n")
		sections[heading] = part
	}
	public, ok := sections["Public API: spiderpool.spidernet.io"]
	if !ok {
		t.Fatalf("api.md has no public section; sections: %v", slices.Sorted(maps.Keys(sections)))
	}
	internal, ok := sections["Internal API: "+ipblockv1alpha1.GroupName]
	if !ok {
		t.Fatalf("api.md has no internal section; sections: %v", slices.Sorted(maps.Keys(sections)))
	}
	if strings.Index(string(page), "\n## Internal API") < strings.Index(string(page), "\n## Public API") {
		t.Error("the internal section comes before the public contract")
	}
	intro, _, _ := strings.Cut(internal, "\n### ")
	if !strings.Contains(intro, internalGroupNote) {
		t.Errorf("the internal section does not open with the internal note:\n%s", intro)
	}

	publicKinds, internalSections := kindSections(public), kindSections(internal)
	for _, kind := range internalKinds {
		if _, ok := publicKinds[kind]; ok {
			t.Errorf("%s is documented among the public kinds", kind)
		}
		s, ok := internalSections[kind]
		if !ok {
			t.Errorf("%s is not documented in the internal section", kind)
			continue
		}
		if !strings.HasPrefix(s, kind+"\n\n"+internalKindNote+"\n") {
			t.Errorf("%s: the section does not start with the internal note:\n%.400s", kind, s)
		}
	}
	if len(publicKinds) == 0 {
		t.Fatal("no public kind rendered")
	}
	for kind, s := range publicKinds {
		if strings.Contains(s, "Internal kind") {
			t.Errorf("public kind %s is marked internal", kind)
		}
	}
}

// A CRD of a group docgen does not know stops the page rather than passing for public or being
// left out; a foreign group (Multus's) is left out.
func TestAPIUnknownGroup(t *testing.T) {
	files, err := readCRDs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderAPI(files); err != nil {
		t.Fatalf("the chart's CRDs: %v", err)
	}
	crd := apiextv1.CustomResourceDefinition{
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "other.spiderpool-go.io", Names: apiextv1.CustomResourceDefinitionNames{Kind: "SpiderThing"}},
	}
	b, err := yaml.Marshal(&crd)
	if err != nil {
		t.Fatal(err)
	}
	files["other.spiderpool-go.io_spiderthings.yaml"] = b
	if _, err := renderAPI(files); err == nil || !strings.Contains(err.Error(), "other.spiderpool-go.io") {
		t.Errorf("renderAPI with a CRD of an unknown group: error = %v, want one naming the group", err)
	}
}

// The fields of a map's values are listed under path{}, as a list's under path[].
func TestWalkFieldMapValues(t *testing.T) {
	s := apiextv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Schema: &apiextv1.JSONSchemaProps{
		Type:       "object",
		Required:   []string{"pod"},
		Properties: map[string]apiextv1.JSONSchemaProps{"pod": {Type: "string"}, "node": {Type: "string"}},
	}}}
	var rows []fieldRow
	walkField("spec.records", &s, false, &rows)
	var got []string
	for _, r := range rows {
		got = append(got, r[0]+" "+r[1]+" "+r[2])
	}
	want := []string{"`spec.records` map[string]object ", "`spec.records{}.node` string ", "`spec.records{}.pod` string yes"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
