package metricsinfo

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func str(s string) *string { return &s }

func family(name, help string, typ dto.MetricType, labels ...string) *dto.MetricFamily {
	m := &dto.Metric{}
	for _, l := range labels {
		m.Label = append(m.Label, &dto.LabelPair{Name: str(l), Value: str("x")})
	}
	return &dto.MetricFamily{Name: str(name), Help: str(help), Type: typ.Enum(), Metric: []*dto.Metric{m}}
}

func TestMismatch(t *testing.T) {
	gathered := []*dto.MetricFamily{
		family("spiderpool_a", "A.", dto.MetricType_COUNTER),
		family("spiderpool_b", "B.", dto.MetricType_GAUGE, "pool"),
		family("go_goroutines", "ignored", dto.MetricType_GAUGE),
	}
	for _, tc := range []struct {
		name      string
		described []Family
		want      []string // substrings; none means no mismatch
	}{
		{"equal (order of labels and debug ignored)", []Family{
			{Name: "spiderpool_a", Type: "counter", Help: "A."},
			{Name: "spiderpool_b", Type: "gauge", Help: "B.", Labels: []string{"pool"}, Debug: true},
		}, nil},
		{"missing, extra, different and twice", []Family{
			{Name: "spiderpool_a", Type: "gauge", Help: "A."},
			{Name: "spiderpool_c", Type: "counter", Help: "C."},
			{Name: "spiderpool_c", Type: "counter", Help: "C."},
		}, []string{"spiderpool_a: described", "described, not gathered: spiderpool_c", "gathered, not described: spiderpool_b", "described twice: spiderpool_c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Mismatch(tc.described, gathered)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("Mismatch = %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Mismatch = %q, lacks %q", got, w)
				}
			}
		})
	}
}
