package chart

import "testing"

// TestChartDebugMetrics: prometheus.enabledDebugMetric reaches each daemon as --debug-metrics, and
// only while its metrics are served at all.
func TestChartDebugMetrics(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		agent, ctrl string // value of --debug-metrics; "" for absent
	}{
		{name: "metrics off", args: []string{
			"--set", "spiderpoolAgent.prometheus.enabledDebugMetric=true",
			"--set", "spiderpoolController.prometheus.enabledDebugMetric=true"}},
		{name: "metrics on, debug off", args: []string{
			"--set", "spiderpoolAgent.prometheus.enabled=true",
			"--set", "spiderpoolController.prometheus.enabled=true"},
			agent: "false", ctrl: "false"},
		{name: "agent debug", args: []string{
			"--set", "spiderpoolAgent.prometheus.enabled=true", "--set", "spiderpoolAgent.prometheus.enabledDebugMetric=true",
			"--set", "spiderpoolController.prometheus.enabled=true"},
			agent: "true", ctrl: "false"},
		{name: "controller debug", args: []string{
			"--set", "spiderpoolAgent.prometheus.enabled=true",
			"--set", "spiderpoolController.prometheus.enabled=true", "--set", "spiderpoolController.prometheus.enabledDebugMetric=true"},
			agent: "false", ctrl: "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.args...)
			for name, want := range map[string]string{agent: tc.agent, controller: tc.ctrl} {
				var f map[string]string
				if name == agent {
					f = flags(t, container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent))
				} else {
					f = flags(t, container(t, m.deployment(t, controller).Spec.Template.Spec, controller))
				}
				got, ok := f["debug-metrics"]
				switch {
				case want == "" && ok:
					t.Errorf("%s: --debug-metrics=%s rendered while its metrics are off", name, got)
				case want != "" && got != want:
					t.Errorf("%s: --debug-metrics=%q (present %v), want %q", name, got, ok, want)
				}
			}
		})
	}
}
