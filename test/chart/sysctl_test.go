package chart

import (
	"slices"
	"testing"
)

// TestChartTuneSysctl: spiderpoolAgent.tuneSysctlConfig adds the agent's privileged tune-sysctl
// init container, for the enabled families, and it is the only privileged container the chart
// renders.
func TestChartTuneSysctl(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string // the init container's command; nil when absent
	}{
		{nil, []string{"/usr/bin/spiderpool-agent", "tune-sysctl", "--enable-ipv4=true", "--enable-ipv6=true"}},
		{[]string{"--set", "ipam.enableIPv6=false"}, []string{"/usr/bin/spiderpool-agent", "tune-sysctl", "--enable-ipv4=true", "--enable-ipv6=false"}},
		{[]string{"--set", "spiderpoolAgent.tuneSysctlConfig=false"}, nil},
	} {
		m := render(t, c.args...)
		spec := m.daemonSet(t, agent).Spec.Template.Spec
		if c.want == nil {
			if hasContainer(spec, "tune-sysctl") {
				t.Errorf("%v: tune-sysctl rendered", c.args)
			}
		} else {
			got := container(t, spec, "tune-sysctl")
			if !slices.Equal(got.Command, c.want) {
				t.Errorf("%v: tune-sysctl command %q, want %q", c.args, got.Command, c.want)
			}
			if got.SecurityContext == nil || got.SecurityContext.Privileged == nil || !*got.SecurityContext.Privileged {
				t.Errorf("%v: tune-sysctl is not privileged; /proc/sys is read-only to it", c.args)
			}
		}
		for name, spec := range m.podSpecs(t) {
			for _, ct := range slices.Concat(spec.InitContainers, spec.Containers) {
				if ct.Name == "tune-sysctl" {
					continue
				}
				if sc := ct.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%v: %s container %s is privileged", c.args, name, ct.Name)
				}
			}
		}
	}
}
