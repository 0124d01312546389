package agent

import (
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
)

// TestConfigClusterDefaultNAD checks that the agent takes --cluster-default-nad as the chart
// gives it (defaultCniCRName, raw) and means by it the NetworkAttachmentDefinition that Multus's
// configuration, written by `spiderpool-agent multus-config` from the same value, names.
func TestConfigClusterDefaultNAD(t *testing.T) {
	for _, tc := range []struct {
		raw, installNS, want string
	}{
		{"ipvlan-eth0", "kube-system", "kube-system/ipvlan-eth0"},
		{"ipvlan-eth0", "spiderpool", "spiderpool/ipvlan-eth0"},
		{"default/ipvlan-ens5", "kube-system", "default/ipvlan-ens5"},
	} {
		t.Run(tc.raw+" in "+tc.installNS, func(t *testing.T) {
			cfg := DefaultConfig("node1")
			cfg.InstallNamespace, cfg.ClusterDefaultNAD = tc.installNS, tc.raw
			if err := cfg.complete(); err != nil {
				t.Fatal(err)
			}
			icfg := cfg.ipamConfig()
			got, err := ipam.ResolveNAD(&ipam.Request{PodNamespace: "app", PodName: "p", IfName: "eth0"}, &icfg)
			if err != nil || got != tc.want {
				t.Fatalf("eth0's NAD %q, %v; want %q", got, err, tc.want)
			}
			o, err := multusconf.NodeConf{ClusterNetwork: tc.raw, Namespace: tc.installNS}.Options()
			if err != nil {
				t.Fatal(err)
			}
			if multus := o.MultusNamespace + "/" + o.ClusterNetwork; multus != got {
				t.Errorf("Multus is configured with %s, the agent filters pools by %s", multus, got)
			}
		})
	}

	cfg := DefaultConfig("node1")
	cfg.ClusterDefaultNAD = "a/b/c"
	err := cfg.complete()
	if err == nil || !strings.Contains(err.Error(), `multus.multusCNI.defaultCniCRName): cluster network "a/b/c"`) {
		t.Fatalf("got %v, want the value refused at start", err)
	}
}
