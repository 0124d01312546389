package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
	"github.com/spiderpool-go/spiderpool/internal/webhook"
)

// webhookNamespace holds the certificate Secret of the in-process controller.
const webhookNamespace = "default"

// runningWebhooks is a manager serving our webhooks on 127.0.0.1, registered with the apiserver by
// URL the way the sandbox runs an out-of-cluster controller.
type runningWebhooks struct {
	port int
	// cache reads what the validators read: the manager's cache.
	cache   client.Reader
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	created []client.Object
}

// startWebhooks serves the webhooks until the test ends. Its cleanup removes the webhook
// configurations before anything else: a Fail-policy webhook left registered with its server gone
// would refuse every later write of our kinds in this package.
func startWebhooks(t *testing.T) *runningWebhooks {
	t.Helper()
	return startWebhooksWith(t, env.Config)
}

// startWebhooksWith is startWebhooks with the manager talking to the apiserver through restConfig.
func startWebhooksWith(t *testing.T, restConfig *rest.Config) *runningWebhooks {
	t.Helper()
	port := freePort(t)
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    "127.0.0.1",
			Port:    port,
			CertDir: filepath.Join(t.TempDir(), "certs"),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &runningWebhooks{port: port, cache: mgr.GetClient(), done: make(chan error, 1)}
	t.Cleanup(func() { w.cleanup(t) })
	err = webhook.Setup(mgr, webhook.Options{
		Namespace:  webhookNamespace,
		URLHost:    "127.0.0.1",
		EnableIPv4: true,
		EnableIPv6: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- mgr.Start(ctx) }()
	waitForWebhooks(t)
	return w
}

// stop stops the manager and with it the webhook server; the configurations stay registered.
func (w *runningWebhooks) stop(t *testing.T) {
	t.Helper()
	if w.stopped {
		return
	}
	w.stopped = true
	w.cancel()
	if err := <-w.done; err != nil {
		t.Errorf("manager: %v", err)
	}
}

// cached waits until the manager's cache holds obj. The validators compare a new object with the
// others in that cache, which may trail a create by a moment.
func (w *runningWebhooks) cached(t *testing.T, obj client.Object) {
	t.Helper()
	got := obj.DeepCopyObject().(client.Object)
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		err := w.cache.Get(ctx, client.ObjectKeyFromObject(obj), got)
		return err == nil && got.GetUID() == obj.GetUID(), nil
	})
	if err != nil {
		t.Fatalf("%T %s never reached the webhooks' cache", obj, obj.GetName())
	}
}

// track records an object the test created so that cleanup deletes it.
func (w *runningWebhooks) track(obj client.Object) { w.created = append(w.created, obj) }

func (w *runningWebhooks) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := env.Client
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ConfigurationName}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ConfigurationName}},
	} {
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete %T: %v", obj, err)
		}
	}
	if w.cancel != nil {
		w.stop(t)
	}
	for i := len(w.created) - 1; i >= 0; i-- {
		deleteIgnoringFinalizers(ctx, t, w.created[i])
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: webhookNamespace, Name: webhook.DefaultSecretName}}
	if err := c.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		t.Errorf("delete Secret: %v", err)
	}
}

// deleteIgnoringFinalizers deletes obj and then clears its finalizers. In that order: the
// mutating webhook adds the finalizer back to any object not yet being deleted.
func deleteIgnoringFinalizers(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		t.Errorf("delete %T %s: %v", obj, obj.GetName(), err)
		return
	}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	if err := env.Client.Patch(ctx, obj, patch); client.IgnoreNotFound(err) != nil {
		t.Errorf("clear finalizers of %T %s: %v", obj, obj.GetName(), err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitForWebhooks waits until the apiserver really calls both webhooks: a dry run of a pool with a
// gateway outside its subnet (which only the validator knows) is refused, and a dry run of a valid
// pool comes back defaulted. Dry runs call webhooks whose sideEffects are NoneOnDryRun and persist nothing.
func waitForWebhooks(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		bad := rawPool("webhook-probe", "10.254.0.0/24", build.Gateway("10.254.1.1"))
		last = env.Client.Create(ctx, bad, client.DryRunAll)
		if last == nil || !strings.Contains(last.Error(), "spec.gateway") {
			return false, nil
		}
		good := rawPool("webhook-probe", "10.254.0.0/24")
		if last = env.Client.Create(ctx, good, client.DryRunAll); last != nil {
			return false, nil
		}
		return good.Spec.IPVersion != nil, nil
	})
	if err != nil {
		t.Fatalf("webhooks never answered the apiserver: last result %v", last)
	}
}

// rawPool is the SpiderIPPool name of subnet as a user writes it: without the ipVersion the
// mutating webhook derives.
func rawPool(name, subnet string, opts ...build.Option) *v2beta1.SpiderIPPool {
	return build.Pool(name, subnet, append([]build.Option{build.NoVersion()}, opts...)...)
}

// wantRejected checks that err is the apiserver refusing the request as Invalid (or Forbidden, for
// admission) with a message containing every part, and logs the message as kubectl would show it.
func wantRejected(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection naming %q", parts)
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("error %v is not Invalid (reason %s)", err, apierrors.ReasonForError(err))
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("rejection %q does not contain %q", err, p)
		}
	}
	t.Logf("rejected: %v", err)
}

func TestWebhooks(t *testing.T) {
	w := startWebhooks(t)
	ctx := testContext(t)
	c := env.Client

	create := func(t *testing.T, obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
		w.track(obj)
		w.cached(t, obj)
	}

	t.Run("Configurations", func(t *testing.T) {
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: webhookNamespace, Name: webhook.DefaultSecretName}, &secret); err != nil {
			t.Fatalf("certificate Secret: %v", err)
		}
		ca := secret.Data["ca.crt"]
		if len(ca) == 0 || len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 {
			t.Fatalf("Secret keys incomplete: %d %d %d bytes", len(ca), len(secret.Data["tls.crt"]), len(secret.Data["tls.key"]))
		}
		var mut admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: webhook.ConfigurationName}, &mut); err != nil {
			t.Fatal(err)
		}
		var val admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: webhook.ConfigurationName}, &val); err != nil {
			t.Fatal(err)
		}
		base := fmt.Sprintf("https://127.0.0.1:%d", w.port)
		type hook struct {
			name, url string
			ca        []byte
			rules     []admissionregistrationv1.RuleWithOperations
		}
		var hooks []hook
		for _, h := range mut.Webhooks {
			hooks = append(hooks, hook{h.Name, ptr.Deref(h.ClientConfig.URL, ""), h.ClientConfig.CABundle, h.Rules})
		}
		for _, h := range val.Webhooks {
			hooks = append(hooks, hook{h.Name, ptr.Deref(h.ClientConfig.URL, ""), h.ClientConfig.CABundle, h.Rules})
		}
		if len(hooks) != 10 {
			t.Errorf("%d webhooks, want 5 mutating and 5 validating", len(hooks))
		}
		for _, h := range hooks {
			kind := strings.TrimSuffix(h.name, ".spiderpool.spidernet.io")
			if h.url != base+"/mutate-spiderpool-spidernet-io-v2beta1-"+kind && h.url != base+"/validate-spiderpool-spidernet-io-v2beta1-"+kind {
				t.Errorf("%s: URL %q", h.name, h.url)
			}
			if string(h.ca) != string(ca) {
				t.Errorf("%s: caBundle is not the Secret's CA", h.name)
			}
			for _, r := range h.rules {
				for _, res := range r.Resources {
					if strings.Contains(res, "/") || res == "*" {
						t.Errorf("%s: rule covers %q", h.name, res)
					}
				}
			}
		}
	})

	t.Run("PoolDefaulting", func(t *testing.T) {
		pool := rawPool("webhook-default", "10.251.0.0/16",
			build.IPs("10.251.0.20-10.251.0.30", "10.251.0.10", "10.251.0.11-10.251.0.19", "10.251.0.25"))
		create(t, pool)
		var got v2beta1.SpiderIPPool
		if err := c.Get(ctx, client.ObjectKeyFromObject(pool), &got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.IPVersion == nil || *got.Spec.IPVersion != 4 {
			t.Errorf("ipVersion %v, want 4", got.Spec.IPVersion)
		}
		if want := []string{"10.251.0.10-10.251.0.30"}; fmt.Sprint(got.Spec.IPs) != fmt.Sprint(want) {
			t.Errorf("ips %q, want %q", got.Spec.IPs, want)
		}
		if got.Spec.Default == nil || *got.Spec.Default || got.Spec.Disable == nil || *got.Spec.Disable {
			t.Errorf("default %v disable %v, want false and false", got.Spec.Default, got.Spec.Disable)
		}
		if fmt.Sprint(got.Finalizers) != "["+v2beta1.Finalizer+"]" {
			t.Errorf("finalizers %q, want [%s]", got.Finalizers, v2beta1.Finalizer)
		}
		if l := got.Labels[v2beta1.LabelIPPoolCIDR]; l != "10-251-0-0-16" {
			t.Errorf("label %s = %q, want 10-251-0-0-16", v2beta1.LabelIPPoolCIDR, l)
		}
	})

	t.Run("PoolRules", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			pool  *v2beta1.SpiderIPPool
			parts []string
		}{
			{"ip outside subnet", rawPool("webhook-bad", "10.252.0.0/24", build.IPs("10.252.1.5")), []string{"spec.ips[0]", "10.252.1.5"}},
			{"gateway outside subnet", rawPool("webhook-bad", "10.252.0.0/24", build.Gateway("10.252.9.1")), []string{"spec.gateway"}},
			{"gateway among ips", rawPool("webhook-bad", "10.252.0.0/24", build.IPs("10.252.0.1-10.252.0.9"), build.Gateway("10.252.0.5")), []string{"spec.gateway"}},
			{"default route", rawPool("webhook-bad", "10.252.0.0/24", build.Route("0.0.0.0/0", "10.252.0.1")), []string{"spec.routes[0].dst"}},
			{"route gw outside subnet", rawPool("webhook-bad", "10.252.0.0/24", build.Route("10.9.0.0/16", "10.252.5.1")), []string{"spec.routes[0].gw"}},
			{"excludeIPs of other family", rawPool("webhook-bad", "10.252.0.0/24", build.IPs("10.252.0.2"), build.ExcludeIPs("fd00::1")), []string{"spec.excludeIPs[0]"}},
			{"overlapping subnet", rawPool("webhook-bad", "10.251.128.0/17"), []string{"spec.subnet", `"webhook-default"`}},
			{"shared ips", rawPool("webhook-bad", "10.251.0.0/16", build.IPs("10.251.0.25-10.251.0.40")), []string{"spec.ips", `"webhook-bad"`, `"webhook-default"`, "10.251.0.25-10.251.0.30"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantRejected(t, c.Create(ctx, tc.pool), tc.parts...)
			})
		}
		// The same subnet with disjoint IPs is what the node-topology guides do.
		create(t, rawPool("webhook-neighbour", "10.251.0.0/16", build.IPs("10.251.0.31-10.251.0.40")))
	})

	t.Run("PoolUpdate", func(t *testing.T) {
		var pool v2beta1.SpiderIPPool
		if err := c.Get(ctx, client.ObjectKey{Name: "webhook-default"}, &pool); err != nil {
			t.Fatal(err)
		}
		moved := pool.DeepCopy()
		moved.Spec.Subnet = "10.250.0.0/16"
		moved.Spec.IPs = []string{"10.250.0.10"}
		// The CRD's CEL rule answers before the validating webhook; either way the field is named.
		wantRejected(t, c.Update(ctx, moved), "spec.subnet", "not changeable")

		// Allocation state is written through the status subresource, which no webhook sees.
		pool.Status.AllocatedIPs = ptr.To(`{"10.251.0.12":{"pod":"default/web-0","podUid":"uid-web-0"}}`)
		if err := c.Status().Update(ctx, &pool); err != nil {
			t.Fatalf("status update: %v", err)
		}
		shrunk := pool.DeepCopy()
		shrunk.Spec.IPs = []string{"10.251.0.20-10.251.0.30"}
		wantRejected(t, c.Update(ctx, shrunk), "spec.ips", "10.251.0.12", "default/web-0")
		excluded := pool.DeepCopy()
		excluded.Spec.ExcludeIPs = []string{"10.251.0.12"}
		wantRejected(t, c.Update(ctx, excluded), "spec.excludeIPs", "10.251.0.12")
		// Growing the pool is fine and comes back merged.
		grown := pool.DeepCopy()
		grown.Spec.IPs = append(grown.Spec.IPs, "10.251.0.9")
		if err := c.Update(ctx, grown); err != nil {
			t.Fatalf("grow pool: %v", err)
		}
		if fmt.Sprint(grown.Spec.IPs) != "[10.251.0.9-10.251.0.30]" {
			t.Errorf("ips after update %q, want [10.251.0.9-10.251.0.30]", grown.Spec.IPs)
		}
	})

	t.Run("Subnet", func(t *testing.T) {
		subnet := &v2beta1.SpiderSubnet{
			ObjectMeta: metav1.ObjectMeta{Name: "webhook-subnet"},
			Spec:       v2beta1.SubnetSpec{Subnet: "10.253.0.0/16", IPs: []string{"10.253.0.1-10.253.0.50"}},
		}
		create(t, subnet)
		if subnet.Spec.IPVersion == nil || *subnet.Spec.IPVersion != 4 {
			t.Errorf("subnet ipVersion %v, want 4", subnet.Spec.IPVersion)
		}
		overlapping := &v2beta1.SpiderSubnet{
			ObjectMeta: metav1.ObjectMeta{Name: "webhook-subnet-2"},
			Spec:       v2beta1.SubnetSpec{Subnet: "10.253.0.0/24"},
		}
		wantRejected(t, c.Create(ctx, overlapping), "spec.subnet", `"webhook-subnet"`)
		outside := rawPool("webhook-in-subnet", "10.253.0.0/16", build.IPs("10.253.0.100"))
		wantRejected(t, c.Create(ctx, outside), "spec.ips", `"webhook-subnet"`, "10.253.0.100")
		create(t, rawPool("webhook-in-subnet", "10.253.0.0/16", build.IPs("10.253.0.10-10.253.0.20")))
	})

	t.Run("ReservedIP", func(t *testing.T) {
		rip := &v2beta1.SpiderReservedIP{
			ObjectMeta: metav1.ObjectMeta{Name: "webhook-rip"},
			Spec:       v2beta1.ReservedIPSpec{IPs: []string{"fd00::2", "fd00::1"}},
		}
		create(t, rip)
		if rip.Spec.IPVersion == nil || *rip.Spec.IPVersion != 6 || fmt.Sprint(rip.Spec.IPs) != "[fd00::1-fd00::2]" {
			t.Errorf("reserved IP defaulted to version %v ips %q, want 6 [fd00::1-fd00::2]", rip.Spec.IPVersion, rip.Spec.IPs)
		}
		mixed := &v2beta1.SpiderReservedIP{
			ObjectMeta: metav1.ObjectMeta{Name: "webhook-rip-bad"},
			Spec:       v2beta1.ReservedIPSpec{IPs: []string{"10.0.0.1", "fd00::1"}},
		}
		wantRejected(t, c.Create(ctx, mixed, client.DryRunAll), "spec.ips[1]")
	})

	t.Run("MultusConfig", func(t *testing.T) {
		two := &v2beta1.SpiderMultusConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "webhook-two-cni"},
			Spec: v2beta1.MultusCNIConfigSpec{
				CniType:       ptr.To("macvlan"),
				MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}},
				IPVlanConfig:  &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth0"}},
			},
		}
		wantRejected(t, c.Create(ctx, two), "spec.ipvlan", "only supports spec.macvlan")

		first := &v2beta1.SpiderMultusConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "webhook-nad"},
			Spec: v2beta1.MultusCNIConfigSpec{
				CniType:       ptr.To("macvlan"),
				MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth0"}},
			},
		}
		create(t, first)
		if first.Spec.EnableCoordinator == nil || !*first.Spec.EnableCoordinator {
			t.Errorf("enableCoordinator %v, want defaulted to true", first.Spec.EnableCoordinator)
		}
		clash := first.DeepCopy()
		clash.ResourceVersion, clash.UID = "", ""
		clash.Name = "webhook-nad-2"
		clash.Annotations = map[string]string{v2beta1.AnnoMultusConfigName: "webhook-nad"}
		wantRejected(t, c.Create(ctx, clash), "metadata.annotations["+v2beta1.AnnoMultusConfigName+"]", `"webhook-nad"`)

		// A NAD generated by another SpiderMultusConfig (its controller owner) is not taken over; a
		// NAD nobody generated is.
		for _, n := range []struct {
			name  string
			owned bool
		}{{"webhook-owned-nad", true}, {"webhook-free-nad", false}} {
			var owner []build.Option
			if n.owned {
				owner = append(owner, build.ControlledBy(v2beta1.SchemeGroupVersion.String(), "SpiderMultusConfig", first.Name, string(first.UID)))
			}
			create(t, build.NAD("default", n.name, owner...))
			taker := clash.DeepCopy()
			taker.Name = "webhook-taker"
			taker.Annotations = map[string]string{v2beta1.AnnoMultusConfigName: n.name}
			err := c.Create(ctx, taker, client.DryRunAll)
			if n.owned {
				wantRejected(t, err, "metadata.annotations["+v2beta1.AnnoMultusConfigName+"]", `controlled by SpiderMultusConfig "webhook-nad"`)
			} else if err != nil {
				t.Errorf("taking over an unowned NAD refused: %v", err)
			}
		}
	})

	t.Run("Coordinator", func(t *testing.T) {
		coord := build.Coordinator("webhook-coordinator", build.PodCIDRType("auto"),
			build.With(func(co *v2beta1.SpiderCoordinator) { co.Spec.PodMACPrefix = ptr.To("03:00") }))
		wantRejected(t, c.Create(ctx, coord, client.DryRunAll), "spec.podMACPrefix")
		coord.Spec.PodMACPrefix = ptr.To("0a:1b")
		if err := c.Create(ctx, coord, client.DryRunAll); err != nil {
			t.Fatalf("valid coordinator refused: %v", err)
		}
	})

	t.Run("GuideManifests", func(t *testing.T) {
		for _, f := range []string{"public-cloud.yaml", "aws.yaml", "calico-overlay.yaml"} {
			t.Run(f, func(t *testing.T) {
				objs := loadManifests(t, filepath.Join("testdata", f))
				var created []client.Object
				for _, o := range objs {
					o := o.DeepCopy()
					if o.GetNamespace() == "" && namespaced(o.GetKind()) {
						o.SetNamespace("default")
					}
					created = append(created, o)
				}
				defer func() {
					for i := len(created) - 1; i >= 0; i-- {
						deleteIgnoringFinalizers(ctx, t, created[i])
					}
				}()
				if err := applyStrict(ctx, c, objs); err != nil {
					t.Fatal(err)
				}
			})
		}
	})

	t.Run("StatusNotIntercepted", func(t *testing.T) {
		pool := rawPool("webhook-status", "10.249.0.0/24", build.IPs("10.249.0.10-10.249.0.19"))
		create(t, pool)
		w.stop(t)

		// With the server gone, writes of the main resource fail closed...
		labelled := pool.DeepCopy()
		labelled.Labels["webhook-test"] = "x"
		err := c.Update(ctx, labelled)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Fatalf("spec update with the webhook server down: %v, want failed calling webhook", err)
		}
		// ...but allocation, which only writes status, keeps working.
		pool.Status.AllocatedIPs = ptr.To(`{"10.249.0.10":{"pod":"default/p","podUid":"u"}}`)
		pool.Status.AllocatedIPCount = ptr.To[int64](1)
		if err := c.Status().Update(ctx, pool); err != nil {
			t.Fatalf("status update with the webhook server down: %v", err)
		}
	})
}

// controller.Run as the binary runs out of cluster: self-managed certificates, webhooks registered
// by URL, the apiserver calling them over TLS.
func TestControllerRunServesWebhooks(t *testing.T) {
	cfg := controller.DefaultConfig()
	cfg.EnsureCoordinator = false // other suites create and delete SpiderCoordinator "default"
	cfg.HealthAddr, cfg.MetricsAddr = "0", "0"
	cfg.LeaderElection = false
	cfg.SkipNameValidation = true
	cfg.Logger = quietLogger()
	cfg.WebhookHost, cfg.WebhookURLHost = "127.0.0.1", "127.0.0.1"
	cfg.WebhookPort = freePort(t)
	cfg.WebhookCertDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx, cfg, env.Config) }()
	w := &runningWebhooks{}
	t.Cleanup(func() {
		w.cleanup(t) // configurations first: a Fail-policy webhook without its server breaks every later test
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller.Run: %v", err)
		}
	})
	waitForWebhooks(t)
	bad := rawPool("run-webhook-bad", "10.249.0.0/24", build.IPs("10.249.1.5"))
	wantRejected(t, env.Client.Create(testContext(t), bad), "spec.ips[0]", "10.249.1.5")
}

// TestWebhookCARotationKeepsOldReplicaTrusted: a replica that has not yet reloaded the rotated
// Secret keeps serving the old certificate, and the apiserver must still trust it. Replica A
// finds a certificate 25 days from expiry and rotates it; replica B still serves the old one. With
// A stopped and the configurations pointed at B (as the Service would send a request there), the
// apiserver must still complete the TLS handshake: caBundle carries the old CA next to the new.
func TestWebhookCARotationKeepsOldReplicaTrusted(t *testing.T) {
	ctx := testContext(t)
	c := env.Client
	secretKey := client.ObjectKey{Namespace: webhookNamespace, Name: webhook.DefaultSecretName}
	hosts := append(webhook.ServiceHosts(webhook.DefaultServiceName, webhookNamespace), "127.0.0.1")
	old, err := webhook.GenerateCerts(hosts, time.Now().Add(-340*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretKey.Namespace, Name: secretKey.Name}}); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secretKey.Namespace, Name: secretKey.Name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"ca.crt": old.CACert, "tls.crt": old.Cert, "tls.key": old.Key},
	}); err != nil {
		t.Fatal(err)
	}

	// Replica B serves the old pair and registers nothing. Its cleanup is registered before A's, so
	// it runs after A's has removed the configurations.
	portB := freePort(t)
	dirB := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": old.Cert, "tls.key": old.Key} {
		if err := os.WriteFile(filepath.Join(dirB, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mgrB, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		WebhookServer:          crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: portB, CertDir: dirB}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Setup(mgrB, webhook.Options{Mode: webhook.ModeProvided, EnableIPv4: true, EnableIPv6: true}); err != nil {
		t.Fatal(err)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- mgrB.Start(ctxB) }()
	t.Cleanup(func() {
		cancelB()
		if err := <-doneB; err != nil {
			t.Errorf("replica B: %v", err)
		}
	})

	w := startWebhooks(t)
	var secret corev1.Secret
	if err := c.Get(ctx, secretKey, &secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["ca.crt"]) == string(old.CACert) {
		t.Fatal("replica A did not rotate a certificate 25 days from expiry")
	}
	w.stop(t)

	base := fmt.Sprintf("https://127.0.0.1:%d", w.port)
	toB := func(cc *admissionregistrationv1.WebhookClientConfig) {
		cc.URL = ptr.To(strings.Replace(ptr.Deref(cc.URL, ""), base, fmt.Sprintf("https://127.0.0.1:%d", portB), 1))
	}
	var mut admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: webhook.ConfigurationName}, &mut); err != nil {
		t.Fatal(err)
	}
	for i := range mut.Webhooks {
		toB(&mut.Webhooks[i].ClientConfig)
	}
	if err := c.Update(ctx, &mut); err != nil {
		t.Fatal(err)
	}
	var val admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: webhook.ConfigurationName}, &val); err != nil {
		t.Fatal(err)
	}
	for i := range val.Webhooks {
		toB(&val.Webhooks[i].ClientConfig)
	}
	if err := c.Update(ctx, &val); err != nil {
		t.Fatal(err)
	}

	// Until the apiserver has seen the new URLs it calls A, which is gone; afterwards B must answer.
	var last error
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := c.Create(ctx, rawPool("webhook-rotation", "10.238.0.0/24", build.Gateway("10.238.1.1")), client.DryRunAll)
		if ctx.Err() == nil {
			last = err
		}
		return err != nil && strings.Contains(err.Error(), "spec.gateway"), nil
	})
	if err != nil {
		t.Fatalf("the apiserver does not reach the replica serving the pre-rotation certificate: last result %v", last)
	}
}

// TestWebhookValidationReadsCache: the validators of pools and subnets read the other pools and
// subnets from the manager's informers, not with a LIST on the apiserver per admission request.
func TestWebhookValidationReadsCache(t *testing.T) {
	var lists atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			p := req.URL.Path
			if req.Method == http.MethodGet && req.URL.Query().Get("watch") != "true" &&
				(strings.HasSuffix(p, "/spiderippools") || strings.HasSuffix(p, "/spidersubnets")) {
				lists.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	w := startWebhooksWith(t, cfg)
	ctx := testContext(t)
	c := env.Client

	existing := rawPool("webhook-cache", "10.240.0.0/16", build.IPs("10.240.0.10-10.240.0.20"))
	if err := c.Create(ctx, existing); err != nil {
		t.Fatal(err)
	}
	w.track(existing)
	w.cached(t, existing)

	before := lists.Load()
	const calls = 10
	for i := range calls {
		var err error
		if i%2 == 0 {
			err = c.Create(ctx, rawPool(fmt.Sprintf("webhook-cache-%d", i), "10.240.0.0/16", build.IPs(fmt.Sprintf("10.240.1.%d", i))), client.DryRunAll)
		} else {
			err = c.Create(ctx, &v2beta1.SpiderSubnet{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("webhook-cache-%d", i)},
				Spec:       v2beta1.SubnetSpec{Subnet: "10.239.0.0/16", IPs: []string{"10.239.0.1"}},
			}, client.DryRunAll)
		}
		if err != nil {
			t.Fatalf("admission call %d: %v", i, err)
		}
	}
	// An informer may relist once after a broken watch; a LIST per request would be >= calls.
	if n := lists.Load() - before; n > 2 {
		t.Errorf("%d LISTs of pools and subnets on the apiserver for %d admission calls, want them served from the cache", n, calls)
	}

	// The rules still see the other pools, through the cache.
	wantRejected(t, c.Create(ctx, rawPool("webhook-cache-bad", "10.240.0.0/16", build.IPs("10.240.0.15")), client.DryRunAll),
		"spec.ips", `"webhook-cache"`)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
