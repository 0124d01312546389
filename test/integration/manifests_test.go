package integration

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// The user guides' manifests must apply unchanged, under kubectl's strict field validation, and read
// back with the values the guides rely on (explicit ones kept, CRD defaults filled in).
func TestGuideManifestsApplyUnchanged(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T)
	}{
		{file: "testdata/public-cloud.yaml", check: checkPublicCloud},
		{file: "testdata/aws.yaml", check: checkAWS},
		{file: "testdata/calico-overlay.yaml", check: checkCalicoOverlay},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ctx := testContext(t)
			objs := loadManifests(t, tt.file)
			t.Cleanup(func() { deleteAll(testContext(t), t, env.Client, objs) })
			if err := applyStrict(ctx, env.Client, objs); err != nil {
				t.Fatalf("apply: %v", err)
			}
			tt.check(t)
		})
	}
}

func getPool(t *testing.T, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	var p v2beta1.SpiderIPPool
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatalf("get pool %s: %v", name, err)
	}
	return &p
}

func getSMC(t *testing.T, ns, name string) *v2beta1.SpiderMultusConfig {
	t.Helper()
	var s v2beta1.SpiderMultusConfig
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("get SpiderMultusConfig %s/%s: %v", ns, name, err)
	}
	return &s
}

func checkPublicCloud(t *testing.T) {
	p := getPool(t, "master-172")
	want := v2beta1.IPPoolSpec{
		Subnet:     "172.31.192.0/20",
		IPs:        []string{"172.31.199.185-172.31.199.189"},
		Gateway:    ptr.To("172.31.207.253"),
		NodeName:   []string{"master"},
		MultusName: []string{"kube-system/ipvlan-eth0"},
		Default:    ptr.To(true),
		Disable:    ptr.To(false), // CRD default
	}
	if diff := cmp.Diff(want, p.Spec); diff != "" {
		t.Errorf("master-172 spec (-want +got):\n%s", diff)
	}
	for _, name := range []string{"master-192", "worker-172", "worker-192"} {
		if p := getPool(t, name); p.Spec.Default == nil || !*p.Spec.Default || len(p.Spec.MultusName) != 1 {
			t.Errorf("pool %s: default/multusName not kept: %+v", name, p.Spec)
		}
	}
	smc := getSMC(t, "kube-system", "ipvlan-eth0")
	if got := ptr.Deref(smc.Spec.CniType, ""); got != "ipvlan" {
		t.Errorf("cniType = %q, want ipvlan", got)
	}
	if !ptr.Deref(smc.Spec.EnableCoordinator, false) {
		t.Errorf("enableCoordinator lost")
	}
	if smc.Spec.IPVlanConfig == nil || !cmp.Equal(smc.Spec.IPVlanConfig.Master, []string{"eth0"}) {
		t.Errorf("ipvlan.master = %+v, want [eth0]", smc.Spec.IPVlanConfig)
	}
	if got := ptr.Deref(smc.Spec.IPVlanConfig.MTU, -1); got != 0 {
		t.Errorf("ipvlan.mtu default = %d, want 0", got)
	}
	if got := ptr.Deref(smc.Spec.DisableIPAM, true); got {
		t.Errorf("disableIPAM default = true, want false")
	}
}

func checkAWS(t *testing.T) {
	// The AWS guide's SpiderMultusConfigs do not say enableCoordinator: the CRD default turns it on.
	for _, name := range []string{"ipvlan-ens5", "ipvlan-ens6"} {
		smc := getSMC(t, "default", name)
		if !ptr.Deref(smc.Spec.EnableCoordinator, false) {
			t.Errorf("%s: enableCoordinator default = false, want true", name)
		}
	}
	p := getPool(t, "worker1-v4-ens5")
	if p.Spec.Subnet != "180.17.16.0/24" || !cmp.Equal(p.Spec.MultusName, []string{"default/ipvlan-ens5"}) || !cmp.Equal(p.Spec.NodeName, []string{"worker1"}) {
		t.Errorf("worker1-v4-ens5 spec not kept: %+v", p.Spec)
	}
}

func checkCalicoOverlay(t *testing.T) {
	p := getPool(t, "10-6-v4")
	if ptr.Deref(p.Spec.Disable, true) || ptr.Deref(p.Spec.Gateway, "") != "10.6.0.1" || ptr.Deref(p.Spec.Default, true) {
		t.Errorf("10-6-v4 spec: %+v", p.Spec)
	}
	smc := getSMC(t, "default", "macvlan-ens192")
	mv := smc.Spec.MacvlanConfig
	if mv == nil || !cmp.Equal(mv.Master, []string{"ens192"}) || ptr.Deref(mv.VlanID, -1) != 0 ||
		mv.SpiderpoolConfigPools == nil || !cmp.Equal(mv.SpiderpoolConfigPools.IPv4IPPool, []string{"10-6-v4"}) {
		t.Errorf("macvlan-ens192 macvlan config: %+v", mv)
	}

	var scc v2beta1.SpiderCoordinator
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: "default"}, &scc); err != nil {
		t.Fatal(err)
	}
	want := v2beta1.CoordinatorSpec{
		Mode:               ptr.To("auto"),
		PodCIDRType:        ptr.To("calico"),
		HijackCIDR:         []string{"169.254.0.0/16"},
		PodMACPrefix:       ptr.To(""),
		TunePodRoutes:      ptr.To(true),
		PodDefaultRouteNIC: ptr.To(""),
		HostRuleTable:      ptr.To(500),
		PodRPFilter:        ptr.To(0),
		TxQueueLen:         ptr.To(0), // CRD default
		DetectIPConflict:   ptr.To(false),
		DetectGateway:      ptr.To(false),
		HostRPFilter:       ptr.To(0),
	}
	if diff := cmp.Diff(want, scc.Spec); diff != "" {
		t.Errorf("SpiderCoordinator spec (-want +got):\n%s", diff)
	}
	// The status in the manifest is ignored on create: the controller owns it through /status.
	if scc.Status.Phase != "" {
		t.Errorf("status.phase = %q after create, want empty (status subresource)", scc.Status.Phase)
	}
}
