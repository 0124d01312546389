package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/initjob"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// initConfig returns values for spiderpool-init whose objects no other test of the suite uses:
// a coordinator, dual-stack default pools with their subnets, and the cluster network in a
// namespace of the test's own. Cleanup deletes them; the pools must not stay default candidates
// for the agent tests that run later.
func initConfig(t *testing.T, prefix string, v4Subnet, v4Ranges, v6Subnet, v6Ranges string) initjob.Config {
	t.Helper()
	ns := prefix + "-ns"
	makeNamespace(t, ns, nil)
	c := initjob.DefaultConfig()
	c.Namespace = ns
	c.Timeout = time.Minute
	c.CNIConfDir = filepath.Join(t.TempDir(), "absent")
	c.Coordinator.Name = prefix + "-coordinator"
	c.IPv4Pool = initjob.PoolValues{Install: true, PoolName: prefix + "-v4-ippool", SubnetName: prefix + "-v4-subnet",
		Subnet: v4Subnet, IPRanges: []string{v4Ranges}, Gateway: strings.TrimSuffix(v4Subnet, "0/24") + "1"}
	c.IPv6Pool = initjob.PoolValues{Install: true, PoolName: prefix + "-v6-ippool", SubnetName: prefix + "-v6-subnet",
		Subnet: v6Subnet, IPRanges: []string{v6Ranges}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, obj := range []client.Object{
			&v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: c.Coordinator.Name}},
			&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.PoolName}},
			&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: c.IPv6Pool.PoolName}},
			&v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.SubnetName}},
			&v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: c.IPv6Pool.SubnetName}},
		} {
			deleteIgnoringFinalizers(ctx, t, obj)
		}
		if err := env.Client.DeleteAllOf(ctx, &v2beta1.SpiderMultusConfig{}, client.InNamespace(ns)); err != nil {
			t.Errorf("delete SpiderMultusConfigs of %s: %v", ns, err)
		}
	})
	return c
}

// runInit runs spiderpool-init in process against the suite's API server, with its log in the
// test output.
func runInit(t *testing.T, c initjob.Config) (*initjob.Result, error) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := initjob.Run(testContext(t), c, env.Config, log)
	t.Logf("spiderpool-init log:\n%s", logs.String())
	return res, err
}

type outcome struct{ kind, name, outcome string }

func outcomes(res *initjob.Result) []outcome {
	var out []outcome
	for _, a := range res.Actions {
		out = append(out, outcome{a.Kind, a.Name, a.Outcome})
	}
	return out
}

// resourceVersions reads the resourceVersion of every object the config describes.
func resourceVersions(t *testing.T, c initjob.Config, smc client.ObjectKey) map[string]string {
	t.Helper()
	ctx := testContext(t)
	out := map[string]string{}
	for key, obj := range map[string]client.Object{
		"coordinator": &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: c.Coordinator.Name}},
		"v4 pool":     &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.PoolName}},
		"v6 pool":     &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: c.IPv6Pool.PoolName}},
		"v4 subnet":   &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.SubnetName}},
		"v6 subnet":   &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: c.IPv6Pool.SubnetName}},
		"smc":         &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: smc.Namespace, Name: smc.Name}},
	} {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		out[key] = obj.GetResourceVersion()
	}
	return out
}

func TestInitCreatesThenIsANoop(t *testing.T) {
	c := initConfig(t, "init-first", "10.241.0.0/24", "10.241.0.10-10.241.0.20", "fd00:241::/120", "fd00:241::10-fd00:241::20")
	c.Coordinator.Mode = v2beta1.CoordinatorModeUnderlay
	c.Coordinator.HijackCIDR = []string{"169.254.0.0/16", "10.96.0.10"}
	c.Coordinator.PolicyRoutes = []v2beta1.Route{{Dst: "10.99.0.0/16", Gw: "10.241.0.1"}}
	c.Coordinator.VethLinkAddress = "169.254.100.1"
	c.Multus.DefaultCNICRName = "ipvlan-ens5"

	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []outcome{
		{"SpiderCoordinator", c.Coordinator.Name, initjob.Created},
		{"SpiderSubnet", c.IPv4Pool.SubnetName, initjob.Created},
		{"SpiderSubnet", c.IPv6Pool.SubnetName, initjob.Created},
		{"SpiderIPPool", c.IPv4Pool.PoolName, initjob.Created},
		{"SpiderIPPool", c.IPv6Pool.PoolName, initjob.Created},
		{"SpiderMultusConfig", "ipvlan-ens5", initjob.Created},
	}
	if diff := cmp.Diff(want, outcomes(res), cmp.AllowUnexported(outcome{})); diff != "" {
		t.Errorf("first run (-want +got):\n%s", diff)
	}
	if res.ClusterNetwork.String() != c.Namespace+"/ipvlan-ens5" {
		t.Errorf("cluster network = %q, want %s/ipvlan-ens5", res.ClusterNetwork, c.Namespace)
	}

	ctx := testContext(t)
	co := &v2beta1.SpiderCoordinator{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Coordinator.Name}, co); err != nil {
		t.Fatal(err)
	}
	wantSpec := v2beta1.CoordinatorSpec{
		Mode: new("underlay"), PodCIDRType: new("auto"), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10/32"},
		PolicyRoutes: []v2beta1.Route{{Dst: "10.99.0.0/16", Gw: "10.241.0.1"}}, TunePodRoutes: new(true),
		HostRuleTable: new(500), PodRPFilter: new(0), TxQueueLen: new(0), VethLinkAddress: new("169.254.100.1"),
		VethMTU: new(1500), DetectGateway: new(false), DetectIPConflict: new(false),
	}
	if diff := cmp.Diff(wantSpec, co.Spec); diff != "" {
		t.Errorf("coordinator spec (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name, subnet, ips, gateway string
	}{
		{c.IPv4Pool.PoolName, "10.241.0.0/24", "10.241.0.10-10.241.0.20", "10.241.0.1"},
		{c.IPv6Pool.PoolName, "fd00:241::/120", "fd00:241::10-fd00:241::20", ""},
	} {
		p := &v2beta1.SpiderIPPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: tc.name}, p); err != nil {
			t.Fatal(err)
		}
		if p.Spec.Default == nil || !*p.Spec.Default || p.Spec.Subnet != tc.subnet || !slices.Equal(p.Spec.IPs, []string{tc.ips}) ||
			(p.Spec.Gateway == nil) != (tc.gateway == "") || (tc.gateway != "" && *p.Spec.Gateway != tc.gateway) {
			t.Errorf("pool %s spec = %+v, want default, subnet %s, ips %s, gateway %q", tc.name, p.Spec, tc.subnet, tc.ips, tc.gateway)
		}
	}
	s := &v2beta1.SpiderSubnet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.IPv4Pool.SubnetName}, s); err != nil {
		t.Fatal(err)
	}
	if s.Spec.Subnet != "10.241.0.0/24" || !slices.Equal(s.Spec.IPs, []string{"10.241.0.10-10.241.0.20"}) {
		t.Errorf("subnet spec = %+v", s.Spec)
	}
	smc := &v2beta1.SpiderMultusConfig{}
	smcKey := client.ObjectKey{Namespace: c.Namespace, Name: "ipvlan-ens5"}
	if err := env.Client.Get(ctx, smcKey, smc); err != nil {
		t.Fatal(err)
	}
	if smc.Spec.CniType == nil || *smc.Spec.CniType != "custom" || smc.Spec.CustomCNIConfig == nil || *smc.Spec.CustomCNIConfig != "" {
		t.Errorf("SpiderMultusConfig spec = %+v, want cniType custom with an empty customCNI", smc.Spec)
	}

	before := resourceVersions(t, c, smcKey)
	res, err = runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].outcome = initjob.Unchanged
	}
	if diff := cmp.Diff(want, outcomes(res), cmp.AllowUnexported(outcome{})); diff != "" {
		t.Errorf("second run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, resourceVersions(t, c, smcKey)); diff != "" {
		t.Errorf("second run wrote objects; resourceVersions (-before +after):\n%s", diff)
	}
}

func TestInitUpdatesCoordinatorSpecOnly(t *testing.T) {
	c := initConfig(t, "init-mode", "10.242.0.0/24", "10.242.0.10-10.242.0.20", "fd00:242::/120", "fd00:242::10")
	c.IPv4Pool.Install, c.IPv6Pool.Install, c.Multus.Install = false, false, false
	if _, err := runInit(t, c); err != nil {
		t.Fatal(err)
	}
	// What the controller and a user did since: status written, a field without a Helm value set.
	ctx := testContext(t)
	co := &v2beta1.SpiderCoordinator{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Coordinator.Name}, co); err != nil {
		t.Fatal(err)
	}
	co.Status = v2beta1.CoordinatorStatus{Phase: v2beta1.CoordinatorPhaseSynced, OverlayPodCIDR: []string{"10.244.64.0/18"}, ServiceCIDR: []string{"10.233.0.0/18"}}
	if err := env.Client.Status().Update(ctx, co); err != nil {
		t.Fatal(err)
	}
	co.Spec.PodMACPrefix = new("0a:1b")
	if err := env.Client.Update(ctx, co); err != nil {
		t.Fatal(err)
	}

	c.Coordinator.Mode = v2beta1.CoordinatorModeOverlay
	c.Coordinator.TunePodRoutes = false
	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Outcome != initjob.Updated ||
		!strings.Contains(res.Actions[0].Detail, `mode: "auto" -> "overlay"`) {
		t.Errorf("actions = %+v, want the coordinator updated with its mode in the detail", res.Actions)
	}
	got := &v2beta1.SpiderCoordinator{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Coordinator.Name}, got); err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Mode != "overlay" || *got.Spec.TunePodRoutes || got.Spec.PodMACPrefix == nil || *got.Spec.PodMACPrefix != "0a:1b" {
		t.Errorf("spec = mode %s, tunePodRoutes %t, podMACPrefix %v; want overlay, false, the user's 0a:1b",
			*got.Spec.Mode, *got.Spec.TunePodRoutes, got.Spec.PodMACPrefix)
	}
	if diff := cmp.Diff(co.Status, got.Status); diff != "" {
		t.Errorf("status changed (-before +after):\n%s", diff)
	}
}

func TestInitNeverRewritesAnAllocatedPool(t *testing.T) {
	c := initConfig(t, "init-alloc", "10.243.0.0/24", "10.243.0.10-10.243.0.20", "fd00:243::/120", "fd00:243::10")
	c.IPv6Pool.Install, c.Multus.Install, c.Coordinator.Enabled, c.SpiderSubnetEnabled = false, false, false, false
	if _, err := runInit(t, c); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	pool := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.IPv4Pool.PoolName}, pool); err != nil {
		t.Fatal(err)
	}
	if err := pool.Status.SetAllocations(v2beta1.PoolIPAllocations{
		"10.243.0.15": {NamespacedName: "default/held", PodUID: "uid-held"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rv := pool.ResourceVersion

	// New values would drop the allocated 10.243.0.15 and move the gateway.
	c.IPv4Pool.IPRanges = []string{"10.243.0.100-10.243.0.110"}
	c.IPv4Pool.Gateway = "10.243.0.254"
	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Outcome != initjob.Differs ||
		!strings.Contains(res.Actions[0].Detail, "10.243.0.100-10.243.0.110") || !strings.Contains(res.Actions[0].Detail, "spec.gateway") {
		t.Errorf("actions = %+v, want the pool reported as differing in ips and gateway", res.Actions)
	}
	got := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.IPv4Pool.PoolName}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != rv {
		t.Errorf("pool rewritten: resourceVersion %s -> %s; spec %+v", rv, got.ResourceVersion, got.Spec)
	}
	allocs, err := got.Status.Allocations()
	if err != nil || allocs["10.243.0.15"].PodUID != "uid-held" {
		t.Errorf("allocations = %v, %v; want 10.243.0.15 still held by uid-held", allocs, err)
	}
}

func TestInitBadSubnetFailsNamingTheValue(t *testing.T) {
	c := initConfig(t, "init-bad", "10.244.250.0/24", "10.244.250.10", "fd00:244::/120", "fd00:244::10")
	c.IPv4Pool.Subnet = "10.244.250.7/33" // host bits alone are fine: upstream accepts them, the pool gets 10.244.250.0/24
	res, err := runInit(t, c)
	if err == nil {
		t.Fatalf("run succeeded (%+v), want an error", res)
	}
	for _, want := range []string{"clusterDefaultPool.ipv4Subnet", "SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET", `"10.244.250.7/33"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// Values are checked before anything is written.
	co := &v2beta1.SpiderCoordinator{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Name: c.Coordinator.Name}, co); err == nil {
		t.Errorf("coordinator %s was created by a run with invalid values", co.Name)
	}
}

func TestInitCNIConfDirFallback(t *testing.T) {
	c := initConfig(t, "init-cni", "10.246.0.0/24", "10.246.0.10", "fd00:246::/120", "fd00:246::10")
	c.IPv4Pool.Install, c.IPv6Pool.Install, c.Coordinator.Enabled = false, false, false

	dir := t.TempDir()
	calico := `{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico"}]}`
	for name, content := range map[string]string{
		"00-multus.conf":        `{"name":"multus-cni-network","type":"multus"}`,
		"10-calico.conflist":    calico,
		"20-flannel.conflist":   `{"name":"cbr0","plugins":[{"type":"flannel"}]}`,
		"calico-kubeconfig":     "not a CNI file",
		"05-notes.txt":          "not a CNI file either",
		"99-loopback.conf.bak1": "{}",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.CNIConfDir = dir
	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterNetwork.String() != c.Namespace+"/k8s-pod-network" {
		t.Errorf("cluster network = %q, want %s/k8s-pod-network", res.ClusterNetwork, c.Namespace)
	}
	smc := &v2beta1.SpiderMultusConfig{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: c.Namespace, Name: "k8s-pod-network"}, smc); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(calico)); err != nil {
		t.Fatal(err)
	}
	if *smc.Spec.CniType != "custom" || *smc.Spec.CustomCNIConfig != compact.String() {
		t.Errorf("SpiderMultusConfig spec = cniType %s, customCNI %s; want custom wrapping %s", *smc.Spec.CniType, *smc.Spec.CustomCNIConfig, compact.String())
	}

	// The file changed (Calico reconfigured): the SpiderMultusConfig init created follows it.
	calico2 := `{"name":"k8s-pod-network","cniVersion":"1.0.0","plugins":[{"type":"calico"},{"type":"bandwidth"}]}`
	if err := os.WriteFile(filepath.Join(dir, "10-calico.conflist"), []byte(calico2), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err = runInit(t, c); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); len(got) != 1 || got[0].outcome != initjob.Updated {
		t.Errorf("outcomes = %+v, want the SpiderMultusConfig updated", got)
	}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: c.Namespace, Name: "k8s-pod-network"}, smc); err != nil {
		t.Fatal(err)
	}
	if *smc.Spec.CustomCNIConfig != calico2 {
		t.Errorf("customCNI = %s, want %s", *smc.Spec.CustomCNIConfig, calico2)
	}

	// No configuration at all: the cluster network is "default".
	c.CNIConfDir = t.TempDir()
	if res, err = runInit(t, c); err != nil {
		t.Fatal(err)
	}
	if res.ClusterNetwork.String() != c.Namespace+"/default" {
		t.Errorf("cluster network = %q, want %s/default", res.ClusterNetwork, c.Namespace)
	}
}

// A SpiderMultusConfig of the cluster network's name that a user wrote is theirs.
func TestInitLeavesAUsersMultusConfig(t *testing.T) {
	c := initConfig(t, "init-user", "10.247.0.0/24", "10.247.0.10", "fd00:247::/120", "fd00:247::10")
	c.IPv4Pool.Install, c.IPv6Pool.Install, c.Coordinator.Enabled = false, false, false
	c.Multus.DefaultCNICRName = c.Namespace + "/ipvlan-ens5"
	user := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: "ipvlan-ens5"},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: new("ipvlan"),
			IPVlanConfig: &v2beta1.SpiderIPvlanCniConfig{Master: []string{"ens5"}}},
	}
	ctx := testContext(t)
	if err := env.Client.Create(ctx, user); err != nil {
		t.Fatal(err)
	}
	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); len(got) != 1 || got[0].outcome != initjob.Differs {
		t.Errorf("outcomes = %+v, want the user's SpiderMultusConfig reported and left alone", got)
	}
	got := &v2beta1.SpiderMultusConfig{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(user), got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != user.ResourceVersion {
		t.Errorf("user's SpiderMultusConfig rewritten: %+v", got.Spec)
	}
	if res.ClusterNetwork.String() != c.Namespace+"/ipvlan-ens5" {
		t.Errorf("cluster network = %q", res.ClusterNetwork)
	}
}

// The API server is unreachable: the run waits, logging, and fails at its timeout with the reason.
func TestInitTimesOutWithoutAPIServer(t *testing.T) {
	c := initjob.DefaultConfig()
	c.Timeout = 2 * time.Second
	cfg := *env.Config
	cfg.Host = "https://127.0.0.1:1" // nothing listens there
	_, err := initjob.Run(context.Background(), c, &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "API server") || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("error = %v, want the API server wait to give up", err)
	}
}

// With the admission webhooks serving, what init writes is accepted, and the webhooks' defaulting
// leaves nothing for a second run to change.
func TestInitThroughWebhooks(t *testing.T) {
	c := initConfig(t, "init-hook", "10.248.0.0/24", "10.248.0.10-10.248.0.20", "fd00:248::/120", "fd00:248::10-fd00:248::20")
	startWebhooks(t) // after initConfig: its cleanup removes the webhooks before the objects go
	c.Coordinator.HijackCIDR = []string{"10.96.0.10"}
	c.Multus.DefaultCNICRName = "init-hook-default"
	res, err := runInit(t, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Actions {
		if a.Outcome != initjob.Created {
			t.Errorf("%s %s: %s, want created", a.Kind, a.Name, a.Outcome)
		}
	}
	smcKey := client.ObjectKey{Namespace: c.Namespace, Name: "init-hook-default"}
	before := resourceVersions(t, c, smcKey)
	if res, err = runInit(t, c); err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Actions {
		if a.Outcome != initjob.Unchanged {
			t.Errorf("second run: %s %s: %s (%s), want unchanged", a.Kind, a.Name, a.Outcome, a.Detail)
		}
	}
	if diff := cmp.Diff(before, resourceVersions(t, c, smcKey)); diff != "" {
		t.Errorf("second run wrote objects; resourceVersions (-before +after):\n%s", diff)
	}
}

// A webhook that is registered but not serving (the controller is still starting) is waited for,
// not taken as a refusal: the run keeps retrying and, here, gives up at its timeout saying why.
func TestInitWaitsForAnUnreachableWebhook(t *testing.T) {
	c := initConfig(t, "init-nohook", "10.249.128.0/24", "10.249.128.10", "fd00:249::/120", "fd00:249::10")
	c.IPv4Pool.Install, c.IPv6Pool.Install, c.Multus.Install = false, false, false
	c.Timeout = 3 * time.Second
	w := startWebhooks(t)
	w.stop(t) // the configurations stay registered with nobody behind them
	start := time.Now()
	_, err := runInit(t, c)
	if err == nil || !strings.Contains(err.Error(), "gave up") || !strings.Contains(err.Error(), "webhook") {
		t.Fatalf("error = %v, want the run to give up retrying the webhook call", err)
	}
	if elapsed := time.Since(start); elapsed < 2*time.Second {
		t.Errorf("gave up after %s, before the 3s timeout: the webhook failure was not retried", elapsed)
	}
}

// The command itself, configured the way the chart's Job configures it: environment variables
// only. It exits 0 and prints the cluster network; bad values exit non-zero naming the variable.
func TestInitCommandFromEnvironment(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "spiderpool-init")
	build := exec.Command("go", "build", "-o", bin, "./cmd/spiderpool-init")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build spiderpool-init: %v: %s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeConfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	c := initConfig(t, "init-cmd", "10.249.200.0/24", "10.249.200.10-10.249.200.20", "fd00:24a::/120", "fd00:24a::10")
	environ := []string{
		"KUBECONFIG=" + kubeconfig,
		"SPIDERPOOL_INIT_NAMESPACE=" + c.Namespace,
		"SPIDERPOOL_INIT_TIMEOUT=1m",
		"SPIDERPOOL_INIT_COORDINATOR_NAME=" + c.Coordinator.Name,
		"SPIDERPOOL_INIT_COORDINATOR_MODE=overlay",
		"SPIDERPOOL_INIT_COORDINATOR_HIJACK_CIDR=169.254.0.0/16,10.96.0.0/12",
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV4_IPPOOL=true",
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IPPOOL_NAME=" + c.IPv4Pool.PoolName,
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET_NAME=" + c.IPv4Pool.SubnetName,
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET=10.249.200.0/24",
		`SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_IP_RANGES=["10.249.200.10-10.249.200.20"]`,
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_GATEWAY=10.249.200.1",
		"SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_INSTALL_IPV6_IPPOOL=false",
		"SPIDERPOOL_INIT_IPAM_SPIDER_SUBNET_ENABLE=true",
		"SPIDERPOOL_INIT_MULTUS_INSTALL=true",
		"SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME=" + c.Namespace + "/calico",
	}
	run := func(extra ...string) (string, string, error) {
		cmd := exec.Command(bin)
		cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, environ...), extra...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	stdout, stderr, err := run()
	if err != nil {
		t.Fatalf("spiderpool-init: %v\n%s", err, stderr)
	}
	// Multus's keys, the name apart from the namespace: "namespace/name" as clusterNetwork would
	// be read as a file path.
	if want := "multus clusterNetwork: calico, multusNamespace: " + c.Namespace + "\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	ctx := testContext(t)
	co := &v2beta1.SpiderCoordinator{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Coordinator.Name}, co); err != nil {
		t.Fatal(err)
	}
	if *co.Spec.Mode != "overlay" || !slices.Equal(co.Spec.HijackCIDR, []string{"169.254.0.0/16", "10.96.0.0/12"}) {
		t.Errorf("coordinator spec mode %s hijackCIDR %q", *co.Spec.Mode, co.Spec.HijackCIDR)
	}
	for _, obj := range []client.Object{
		&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.PoolName}},
		&v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: c.IPv4Pool.SubnetName}},
		&v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: "calico"}},
	} {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Errorf("%T %s: %v", obj, obj.GetName(), err)
		}
	}

	_, stderr, err = run("SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET=10.249.200.0/33")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 ||
		!strings.Contains(stderr, "SPIDERPOOL_INIT_CLUSTER_DEFAULT_POOL_IPV4_SUBNET") || !strings.Contains(stderr, "10.249.200.0/33") {
		t.Errorf("bad subnet: err %v, stderr %q; want a non-zero exit naming the variable and the value", err, stderr)
	}
}
