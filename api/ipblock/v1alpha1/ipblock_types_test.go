package v1alpha1

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Records travel as one JSON string, and come back whole; an empty map is left out.
func TestBlockRecordsJSON(t *testing.T) {
	spec := SpiderIPBlockSpec{Pool: "p", PoolUID: "u", CIDR: "10.6.0.32/27", Records: BlockRecords{
		"10.6.0.33": {Pod: "ns/a", PodUID: "ua", Node: "n1"},
		"10.6.0.34": {Pod: "ns/b", PodUID: "ub"},
	}}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"records":"{\"10.6.0.33\":{\"pod\":\"ns/a\",\"podUid\":\"ua\",\"node\":\"n1\"}`) {
		t.Fatalf("records not encoded as a string: %s", b)
	}
	var back SpiderIPBlockSpec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec, back); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	b, _ = json.Marshal(SpiderIPBlockSpec{Pool: "p"})
	if strings.Contains(string(b), "records") {
		t.Fatalf("empty records encoded: %s", b)
	}
	for _, bad := range []string{`{"records":"{"}`, `{"records":"[1]"}`, `{"records":7}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
