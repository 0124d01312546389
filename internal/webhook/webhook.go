package webhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Mode says who provides the serving certificate and the webhook configurations (Helm
// spiderpoolController.tls.method).
type Mode string

const (
	// ModeAuto: the controller issues its own CA and certificate, keeps them in the Secret, rotates
	// them, and writes both webhook configurations with that CA.
	ModeAuto Mode = "auto"
	// ModeProvided: certificate files are mounted into CertDir and the configurations come from the
	// chart (tls.method provided or certmanager); the controller only serves.
	ModeProvided Mode = "provided"
)

// Defaults of Options (docs/design/behaviour.md#webhook-registration-and-certificates (values: docs/reference/helm-values.md#spiderpoolcontroller) and Helm spiderpoolController.*).
const (
	DefaultServiceName = "spiderpool-controller"
	DefaultPort        = 5722
	DefaultSecretName  = "spiderpool-controller-server-certs"
	// checkInterval is how often ModeAuto re-checks the stored certificate; far below renewBefore,
	// so a certificate is rotated weeks before it expires even if the controller never restarts,
	// and every replica copies a pair another replica rotated in long before the caBundles stop
	// trusting the old one (Certs.CABundle).
	checkInterval = 12 * time.Hour
	retryInterval = 10 * time.Second
)

// Options configures Setup.
type Options struct {
	// Namespace is Spiderpool's install namespace: the Secret and the Service live there.
	Namespace string
	// Mode defaults to ModeAuto.
	Mode Mode
	// ServiceName and ServicePort are how the apiserver reaches an in-cluster controller.
	ServiceName string
	ServicePort int32
	// URLHost, when set, makes the configurations point at https://URLHost:<server port>/<path>
	// instead of the Service: a controller running outside the cluster (tests, the sandbox).
	URLHost string
	// ExtraHosts are additional DNS names or IP addresses for the certificate (URLHost is added
	// automatically).
	ExtraHosts []string
	// CertDir is where the serving pair is written (ModeAuto) or read (ModeProvided); empty means
	// the manager's webhook server's CertDir. The two must agree.
	CertDir string
	// SecretName defaults to DefaultSecretName.
	SecretName string
	// EnableIPv4 and EnableIPv6 are the Helm values ipam.enableIPv4/ipam.enableIPv6.
	EnableIPv4, EnableIPv6 bool
	// EnableSpiderSubnet is ipam.spiderSubnet.enable (IPPoolWebhook.EnableSpiderSubnet).
	EnableSpiderSubnet bool
}

// +kubebuilder:rbac:groups=core,resources=secrets,verbs=get;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=create
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;update,resourceNames=spiderpool-controller
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spidersubnets;spidermultusconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,verbs=get

// Setup registers the defaulters and validators of every kind with mgr's webhook server and, in
// ModeAuto, provisions the certificate before returning (the server loads it when the manager
// starts) and adds a runnable that registers the webhook configurations once the server answers
// and keeps the certificate fresh.
func Setup(mgr ctrl.Manager, opts Options) error {
	opts, err := opts.complete(mgr.GetWebhookServer())
	if err != nil {
		return err
	}
	// The validators read the other pools, subnets and SpiderMultusConfigs from the manager's
	// informers rather than LISTing them on the apiserver for every request, a cost that grew with
	// the cluster on every write. (NADs are read unstructured, which the manager's client does not
	// cache: one GET.) An informer trails a write by a moment, so two pools, subnets or multus
	// configs created back to back may both pass a rule that compares them. Live reads never closed
	// that race either, since two requests admitted at once do not see each other, and so each rule
	// is enforced again where it matters: allocation applies the pool overlap rule ordered by age
	// (internal/ipam/overlap.go), a subnet never takes over a pool another subnet controls nor
	// counts a pool's addresses outside its own, and a SpiderMultusConfig never overwrites a NAD
	// another one controls (internal/controller). The other way round, an object deleted a moment
	// ago may still be compared with, so its overlapping replacement under another name can be
	// refused once; a retry passes.
	reader := cacheReader{mgr.GetClient()}
	ipv4, ipv6 := opts.EnableIPv4, opts.EnableIPv6
	pool := &IPPoolWebhook{Reader: reader, EnableIPv4: ipv4, EnableIPv6: ipv6, EnableSpiderSubnet: opts.EnableSpiderSubnet, BlockReader: mgr.GetAPIReader(), BlockWriter: mgr.GetClient()}
	subnet := &SubnetWebhook{Reader: reader, EnableIPv4: ipv4, EnableIPv6: ipv6}
	rip := &ReservedIPWebhook{EnableIPv4: ipv4, EnableIPv6: ipv6}
	smc := &MultusConfigWebhook{Reader: reader}
	coord := &CoordinatorWebhook{}
	if err := errors.Join(
		ctrl.NewWebhookManagedBy(mgr, &v2beta1.SpiderIPPool{}).WithDefaulter(pool).WithValidator(pool).Complete(),
		ctrl.NewWebhookManagedBy(mgr, &v2beta1.SpiderSubnet{}).WithDefaulter(subnet).WithValidator(subnet).Complete(),
		ctrl.NewWebhookManagedBy(mgr, &v2beta1.SpiderReservedIP{}).WithDefaulter(rip).WithValidator(rip).Complete(),
		ctrl.NewWebhookManagedBy(mgr, &v2beta1.SpiderMultusConfig{}).WithDefaulter(smc).WithValidator(smc).Complete(),
		ctrl.NewWebhookManagedBy(mgr, &v2beta1.SpiderCoordinator{}).WithDefaulter(coord).WithValidator(coord).Complete(),
	); err != nil {
		return fmt.Errorf("register webhooks: %w", err)
	}
	if opts.Mode == ModeProvided {
		return nil
	}

	// An uncached client: a cache would start cluster-wide informers on Secrets and on webhook
	// configurations just to read two objects twice a day.
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return fmt.Errorf("webhook certificate client: %w", err)
	}
	p := &provisioner{client: c, opts: opts, server: mgr.GetWebhookServer(), now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.ensureCerts(ctx); err != nil {
		return err
	}
	if err := mgr.Add(p); err != nil {
		return fmt.Errorf("add webhook provisioner: %w", err)
	}
	return nil
}

func (o Options) complete(server crwebhook.Server) (Options, error) {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.Mode != ModeAuto && o.Mode != ModeProvided {
		return o, fmt.Errorf("webhook mode %q: want %q or %q", o.Mode, ModeAuto, ModeProvided)
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.ServicePort == 0 {
		o.ServicePort = DefaultPort
	}
	if o.SecretName == "" {
		o.SecretName = DefaultSecretName
	}
	ds, _ := server.(*crwebhook.DefaultServer)
	if o.CertDir == "" && ds != nil {
		o.CertDir = ds.Options.CertDir
	}
	if o.Mode == ModeAuto {
		if o.Namespace == "" {
			return o, errors.New("webhook options: namespace is required")
		}
		if o.CertDir == "" {
			return o, errors.New("webhook options: certificate directory is required (set it on the webhook server)")
		}
		if ds != nil && ds.Options.CertDir != "" && ds.Options.CertDir != o.CertDir {
			return o, fmt.Errorf("webhook options: certificate directory %s differs from the webhook server's %s", o.CertDir, ds.Options.CertDir)
		}
		if o.URLHost != "" && (ds == nil || ds.Options.Port == 0) {
			return o, errors.New("webhook options: a URL needs the webhook server's port")
		}
	}
	return o, nil
}

// provisioner keeps the certificate and the webhook configurations of ModeAuto up to date. Every
// replica runs one. The replica that rotates the Secret serves the new pair at once; the others copy
// it at their next check (ensureCerts writes CertDir, whose certificate watcher reloads within
// seconds), and until then the caBundles keep trusting the pair they serve (Certs.CABundle).
type provisioner struct {
	client client.Client
	opts   Options
	server crwebhook.Server
	now    func() time.Time
}

func (p *provisioner) hosts() []string {
	return hostsWith(ServiceHosts(p.opts.ServiceName, p.opts.Namespace), append([]string{p.opts.URLHost}, p.opts.ExtraHosts...))
}

func (p *provisioner) secretKey() client.ObjectKey {
	return client.ObjectKey{Namespace: p.opts.Namespace, Name: p.opts.SecretName}
}

// ensureCerts makes sure the Secret holds a pair good for a while and serves that pair.
func (p *provisioner) ensureCerts(ctx context.Context) error {
	certs, err := ensureSecretCerts(ctx, p.client, p.secretKey(), p.hosts(), p.now())
	if err != nil {
		return err
	}
	return writeServingFiles(p.opts.CertDir, certs)
}

// caBundle reads the CA bundle of the Secret as it is now; applyConfigurations says why it is not
// taken from ensureCerts.
func (p *provisioner) caBundle(ctx context.Context) ([]byte, error) {
	var secret corev1.Secret
	if err := p.client.Get(ctx, p.secretKey(), &secret); err != nil {
		return nil, fmt.Errorf("get Secret %s: %w", p.secretKey(), err)
	}
	bundle, err := certsFromSecret(&secret).CABundle(p.now())
	if err != nil {
		return nil, fmt.Errorf("CA bundle of Secret %s: %w", p.secretKey(), err)
	}
	return bundle, nil
}

// sync is one check: rotate the pair if due, serve it, and register the configurations.
func (p *provisioner) sync(ctx context.Context) error {
	if err := p.ensureCerts(ctx); err != nil {
		return err
	}
	return applyConfigurations(ctx, p.client, p.clientConfig(), p.caBundle)
}

func (p *provisioner) clientConfig() clientConfigFor {
	if p.opts.URLHost != "" {
		return clientConfigFor{url: urlBase(p.opts.URLHost, p.server.(*crwebhook.DefaultServer).Options.Port)}
	}
	return clientConfigFor{serviceNamespace: p.opts.Namespace, serviceName: p.opts.ServiceName, servicePort: p.opts.ServicePort}
}

// NeedLeaderElection is false: every replica serves webhooks, and they all write the same
// configurations from the same Secret.
func (p *provisioner) NeedLeaderElection() bool { return false }

// Start registers the configurations once the local server answers TLS, so that the apiserver is
// not pointed at a port nobody listens on yet, then re-checks the certificate periodically.
func (p *provisioner) Start(ctx context.Context) error {
	started := p.server.StartedChecker()
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		return started(nil) == nil, nil
	}); err != nil {
		return nil // the manager is stopping
	}
	log := ctrl.LoggerFrom(ctx).WithName("webhook-provisioner")
	for {
		// The configurations are re-applied on every check, not only on rotation, so that one
		// edited or deleted by hand is repaired within checkInterval.
		interval := checkInterval
		if err := p.sync(ctx); err != nil {
			log.Error(err, "provision webhook certificate and configurations")
			interval = retryInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// kindOf recovers the GroupVersionKind of one of our objects from its Go type.
func kindOf(obj client.Object) schema.GroupVersionKind {
	t := reflect.TypeOf(obj)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return v2beta1.SchemeGroupVersion.WithKind(t.Name())
}
