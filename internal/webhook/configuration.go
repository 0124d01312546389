package webhook

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// ConfigurationName names both webhook configurations (docs/design/behaviour.md#webhook-registration-and-certificates).
const ConfigurationName = "spiderpool-controller"

// hookedKind is a kind served by a defaulter and a validator.
type hookedKind struct {
	kind     string // SpiderIPPool
	resource string // spiderippools
	scope    admissionregistrationv1.ScopeType
}

var hookedKinds = []hookedKind{
	{"SpiderIPPool", "spiderippools", admissionregistrationv1.ClusterScope},
	{"SpiderSubnet", "spidersubnets", admissionregistrationv1.ClusterScope},
	{"SpiderReservedIP", "spiderreservedips", admissionregistrationv1.ClusterScope},
	{"SpiderMultusConfig", "spidermultusconfigs", admissionregistrationv1.NamespacedScope},
	{"SpiderCoordinator", "spidercoordinators", admissionregistrationv1.ClusterScope},
}

// webhookName is "<kind>.spiderpool.spidernet.io" with the kind in lower case.
func (k hookedKind) webhookName() string { return strings.ToLower(k.kind) + "." + v2beta1.GroupName }

// MutatePath and ValidatePath are the paths controller-runtime's builder serves a kind on, and the
// ones of docs/design/behaviour.md#webhook-registration-and-certificates: /mutate-spiderpool-spidernet-io-v2beta1-spiderippool.
func MutatePath(kind string) string   { return "/mutate-" + pathSuffix(kind) }
func ValidatePath(kind string) string { return "/validate-" + pathSuffix(kind) }

func pathSuffix(kind string) string {
	gv := v2beta1.SchemeGroupVersion
	return strings.ReplaceAll(gv.Group, ".", "-") + "-" + gv.Version + "-" + strings.ToLower(kind)
}

// clientConfigFor says how the apiserver reaches the server: through the Service in cluster, or at
// a URL when the controller runs outside the cluster (tests, the sandbox).
type clientConfigFor struct {
	serviceNamespace, serviceName string
	servicePort                   int32
	url                           string // https://host:port, without path
}

func (c clientConfigFor) build(path string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	if c.url != "" {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(c.url + path), CABundle: caBundle}
	}
	return admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{
			Namespace: c.serviceNamespace,
			Name:      c.serviceName,
			Path:      ptr.To(path),
			Port:      ptr.To(c.servicePort),
		},
		CABundle: caBundle,
	}
}

// rulesFor lists only the main resource, never "<resource>/status": status writes (allocation by the
// agents, counts by the controller) must keep working while the controller is down. DELETE is not
// listed either: a pool with allocations may be deleted, its finalizer holds it until released.
func rulesFor(k hookedKind) []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{v2beta1.GroupName},
			APIVersions: []string{v2beta1.SchemeGroupVersion.Version},
			Resources:   []string{k.resource},
			Scope:       ptr.To(k.scope),
		},
	}}
}

func mutatingConfiguration(cc clientConfigFor, caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}}
	// NoneOnDryRun: the SpiderIPPool validator writes fences into SpiderIPBlocks (blockstore.Fence),
	// except on a dry run.
	for _, k := range hookedKinds {
		cfg.Webhooks = append(cfg.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name:                    k.webhookName(),
			ClientConfig:            cc.build(MutatePath(k.kind), caBundle),
			Rules:                   rulesFor(k),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		})
	}
	return cfg
}

func validatingConfiguration(cc clientConfigFor, caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}}
	for _, k := range hookedKinds {
		cfg.Webhooks = append(cfg.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:                    k.webhookName(),
			ClientConfig:            cc.build(ValidatePath(k.kind), caBundle),
			Rules:                   rulesFor(k),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return cfg
}

// applyConfigurations creates or replaces both configurations. The webhooks list is ours alone, so
// it is overwritten as a whole (a webhook removed from hookedKinds disappears from the cluster).
//
// caBundle is called for each configuration after reading it and before writing it back, and is
// to read the Secret then. The write is conditional on the resourceVersion read, so a replica cannot
// put a bundle from before another replica's rotation over the rotated one: the rotating replica
// writes the Secret before the configurations, so either this read of a configuration comes after
// its write and the Secret read that follows sees the rotation, or its write comes after this read
// and this update fails on the conflict (and is retried within retryInterval).
func applyConfigurations(ctx context.Context, c client.Client, cc clientConfigFor, caBundle func(context.Context) ([]byte, error)) error {
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}}
	if err := upsert(ctx, c, mut, caBundle, func(ca []byte) { mut.Webhooks = mutatingConfiguration(cc, ca).Webhooks }); err != nil {
		return fmt.Errorf("apply MutatingWebhookConfiguration %s: %w", ConfigurationName, err)
	}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName}}
	if err := upsert(ctx, c, val, caBundle, func(ca []byte) { val.Webhooks = validatingConfiguration(cc, ca).Webhooks }); err != nil {
		return fmt.Errorf("apply ValidatingWebhookConfiguration %s: %w", ConfigurationName, err)
	}
	return nil
}

// upsert reads obj, sets its webhooks with the CA bundle read after it, and creates or updates it.
func upsert(ctx context.Context, c client.Client, obj client.Object, caBundle func(context.Context) ([]byte, error), set func(caBundle []byte)) error {
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	exists := err == nil
	ca, err := caBundle(ctx)
	if err != nil {
		return err
	}
	set(ca)
	if !exists {
		return c.Create(ctx, obj)
	}
	return c.Update(ctx, obj)
}

// urlBase formats https://host:port, bracketing IPv6 literals.
func urlBase(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "https://" + host + ":" + strconv.Itoa(port)
}
