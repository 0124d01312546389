package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller/httpapi"
	"github.com/spiderpool-go/spiderpool/internal/webhook"
)

// Defaults of Config (docs/reference/flags.md#spiderpool-controller).
const (
	DefaultHealthAddr       = ":5720"
	DefaultMetricsAddr      = ":5721"
	DefaultInstallNamespace = "kube-system"
	DefaultLeaseName        = "spiderpool-controller-lease"
)

// Config is what spiderpool-controller needs; start from DefaultConfig.
type Config struct {
	// InstallNamespace is Spiderpool's namespace; the leader-election lease lives there.
	InstallNamespace string
	// HealthAddr serves /healthz and /readyz, and the HTTP API when HTTPAPI is set; "0" disables.
	HealthAddr string
	// HTTPAPI serves POST /v1/ipam/gc_ips, GET /v1/ipam/status and PUT /v1/ipam/ip
	// (internal/controller/httpapi) on HealthAddr next to the probes: the controller's one HTTP
	// port (spiderpoolController.httpPort).
	HTTPAPI bool
	// MetricsAddr serves /metrics; "0" disables.
	MetricsAddr string
	// DebugMetrics exports the spiderpool_debug_ metric families too
	// (spiderpoolController.prometheus.enabledDebugMetric).
	DebugMetrics bool
	// LeaderElection makes one replica of several do the work.
	LeaderElection bool
	// Logger receives the controller's logs and controller-runtime's; nil means slog.Default().
	Logger *slog.Logger
	// CoordinatorName is the SpiderCoordinator whose status is maintained (Helm coordinator.name).
	CoordinatorName string
	// EnsureCoordinator creates CoordinatorName with the Helm defaults when it does not exist.
	EnsureCoordinator bool
	// CNIConfigDir is where podCIDRType auto finds the cluster network's CNI configuration.
	CNIConfigDir string
	// IPAMSocketPath is the agent's socket on the nodes (Helm global.ipamUNIXSocketHostPath),
	// written into generated NADs when it is not the default; "" means the default.
	IPAMSocketPath string
	// CiliumConfigMap is "namespace/name" of Cilium's ConfigMap (Helm global.ciliumConfigMap).
	CiliumConfigMap string
	// WebhookPort serves the admission webhooks (Helm spiderpoolController.webhookPort); 0 disables them.
	WebhookPort int
	// WebhookHost is the webhook server's bind address; "" means all addresses.
	WebhookHost string
	// WebhookCertDir holds the serving certificate (written there in auto mode).
	WebhookCertDir string
	// WebhookTLSMethod is Helm's spiderpoolController.tls.method: auto, provided or certmanager.
	WebhookTLSMethod string
	// WebhookURLHost, when set, registers the webhooks by URL https://<host>:<port>/... instead of
	// through the Service: how the controller runs out of cluster (tests, the sandbox).
	WebhookURLHost string
	// EnableIPv4 and EnableIPv6 are ipam.enableIPv4 / ipam.enableIPv6, enforced by the pool webhooks.
	EnableIPv4, EnableIPv6 bool
	// GCEnabled is ipam.gc.enabled: reclaim IPs whose pods are gone (env SPIDERPOOL_GC_IP_ENABLED).
	GCEnabled bool
	// GCInterval is ipam.gc.gcAll.intervalInSecond, the period of the full scan.
	GCInterval time.Duration
	// GCDeletingTimeoutDelay is ipam.gc.gcDeletingTimeOutPodDelay.
	GCDeletingTimeoutDelay time.Duration
	// EnableStatefulSet is ipam.enableStatefulSet: StatefulSet members keep their IPs.
	EnableStatefulSet bool
	// GCZombieOnReadyNode and GCZombieOnNotReadyNode are ipam.gc.statelessPod.zombieOnReadyNode and
	// zombieOnNotReadyNode: whether a pod terminating past its window gives its IPs back when its
	// node is Ready, and when it is not.
	GCZombieOnReadyNode, GCZombieOnNotReadyNode bool
	// GCCleanOutdatedEndpoints is ipam.enableCleanOutdatedEndpoint (GCOptions.CleanOutdatedEndpoints).
	GCCleanOutdatedEndpoints bool
	// EnableKubevirtStaticIP is ipam.enableKubevirtStaticIP (GCOptions.EnableKubevirtStaticIP).
	EnableKubevirtStaticIP bool
	// EnableSpiderSubnet is ipam.spiderSubnet.enable: SpiderSubnet status and auto pools run.
	EnableSpiderSubnet bool
	// EnableAutoPool is ipam.spiderSubnet.autoPool.enable: workloads naming a SpiderSubnet get
	// auto pools (only with EnableSpiderSubnet).
	EnableAutoPool bool
	// AutoPoolDefaultRedundant is ipam.spiderSubnet.autoPool.defaultRedundantIPNumber: an auto
	// pool without ipam.spidernet.io/ippool-ip-number holds replicas + this many IPs.
	AutoPoolDefaultRedundant int
	// IPAMBlocks is ipam.enableIPBlocks: every SpiderIPPool is converted to block format
	// (docs/design/ipam-blocks.md) once AgentDaemonSet's rollout is complete.
	IPAMBlocks bool
	// AgentDaemonSet is "namespace/name" of the spiderpool-agent DaemonSet; "" skips the wait for
	// its rollout (agents run out of cluster: tests, the sandbox).
	AgentDaemonSet string
	// SkipNameValidation allows several managers in one process (tests, the sandbox); controller
	// names are otherwise process-wide unique.
	SkipNameValidation bool
}

// DefaultConfig returns the Helm defaults.
func DefaultConfig() Config {
	return Config{
		InstallNamespace:         DefaultInstallNamespace,
		HealthAddr:               DefaultHealthAddr,
		HTTPAPI:                  true,
		MetricsAddr:              DefaultMetricsAddr,
		LeaderElection:           true,
		CoordinatorName:          "default",
		EnsureCoordinator:        true,
		CNIConfigDir:             DefaultCNIConfigDir,
		CiliumConfigMap:          DefaultCiliumConfigMap.String(),
		WebhookPort:              webhook.DefaultPort,
		WebhookCertDir:           "/tmp/k8s-webhook-server/serving-certs",
		WebhookTLSMethod:         "auto",
		EnableIPv4:               true,
		IPAMBlocks:               true,
		EnableIPv6:               true,
		GCEnabled:                true,
		GCInterval:               DefaultGCInterval,
		EnableStatefulSet:        true,
		EnableKubevirtStaticIP:   true,
		GCZombieOnReadyNode:      true,
		GCZombieOnNotReadyNode:   true,
		EnableSpiderSubnet:       true,
		EnableAutoPool:           true,
		AutoPoolDefaultRedundant: 1,
	}
}

// NewScheme returns the scheme of every kind the controller reads or writes.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblockv1alpha1.AddToScheme(s))
	return s
}

// Run runs the controller until ctx is cancelled.
func Run(ctx context.Context, cfg Config, restConfig *rest.Config) error {
	if cfg.InstallNamespace == "" {
		return errors.New("controller config: install namespace is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}

	// With the HTTP API on, its server answers the probes on the same port: controller-runtime's
	// probe server cannot serve other paths.
	serveAPI := cfg.HTTPAPI && cfg.HealthAddr != "" && cfg.HealthAddr != "0"
	probeAddr := cfg.HealthAddr
	if serveAPI {
		probeAddr = "0"
	}
	// The coordinator watches two ConfigMaps (kubeadm-config, Cilium's); the cache holds
	// ConfigMaps of their namespaces only, so that the controller needs no cluster-wide right to
	// read ConfigMaps (the chart grants it in those namespaces).
	configMapNS := map[string]cache.Config{metav1.NamespaceSystem: {}}
	if ns, _, ok := strings.Cut(cfg.CiliumConfigMap, "/"); ok && ns != "" {
		configMapNS[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        NewScheme(),
		Cache:                         cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {Namespaces: configMapNS}}},
		Logger:                        logr.FromSlogHandler(log.Handler()), // this manager's, not the process-wide one
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                cfg.LeaderElection,
		LeaderElectionID:              DefaultLeaseName,
		LeaderElectionNamespace:       cfg.InstallNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptrDuration(15 * time.Second),
		Controller:                    config.Controller{SkipNameValidation: &cfg.SkipNameValidation},
		WebhookServer:                 crwebhook.NewServer(crwebhook.Options{Host: cfg.WebhookHost, Port: cfg.WebhookPort, CertDir: cfg.WebhookCertDir}),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	var gc *GCReconciler
	if err := setup(mgr, cfg, &gc); err != nil {
		return err
	}
	if cfg.MetricsAddr != "0" {
		// controller-runtime serves its process-wide registry: the gauges, bound to this manager's
		// cache, leave it when Run returns.
		unregister, err := RegisterMetrics(ctrlmetrics.Registry, mgr.GetCache(), MetricsOptions{Debug: cfg.DebugMetrics})
		if err != nil {
			return err
		}
		defer unregister()
	}
	liveness := map[string]healthz.Checker{"ping": healthz.Ping}
	readiness := map[string]healthz.Checker{"ping": healthz.Ping}
	// Webhooks are set up here rather than in Setup so that tests running the reconcilers in
	// process do not register admission webhooks for the whole test apiserver.
	if cfg.WebhookPort != 0 {
		mode := webhook.ModeAuto
		switch cfg.WebhookTLSMethod {
		case "auto":
		case "provided", "certmanager":
			mode = webhook.ModeProvided
		default:
			return fmt.Errorf("webhook TLS method %q: want auto, provided or certmanager", cfg.WebhookTLSMethod)
		}
		if err := webhook.Setup(mgr, webhook.Options{Namespace: cfg.InstallNamespace, Mode: mode, URLHost: cfg.WebhookURLHost,
			CertDir: cfg.WebhookCertDir, EnableIPv4: cfg.EnableIPv4, EnableIPv6: cfg.EnableIPv6, EnableSpiderSubnet: cfg.EnableSpiderSubnet}); err != nil {
			return fmt.Errorf("set up webhooks: %w", err)
		}
		readiness["webhook"] = mgr.GetWebhookServer().StartedChecker()
	}
	if serveAPI {
		// PUT /v1/ipam/ip must see what the cache may not have yet.
		live, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("API client for the HTTP API: %w", err)
		}
		opts := httpapi.Options{Addr: cfg.HealthAddr, Elected: mgr.Elected(), Reader: mgr.GetClient(), Live: live,
			EnableStatefulSet: cfg.EnableStatefulSet, Liveness: liveness, Readiness: readiness, Logger: log}
		if gc != nil {
			opts.GC = gc
		}
		if err := mgr.Add(httpapi.NewServer(opts)); err != nil {
			return fmt.Errorf("add HTTP API: %w", err)
		}
	} else {
		for name, check := range liveness {
			if err := mgr.AddHealthzCheck(name, check); err != nil {
				return fmt.Errorf("add health check %s: %w", name, err)
			}
		}
		for name, check := range readiness {
			if err := mgr.AddReadyzCheck(name, check); err != nil {
				return fmt.Errorf("add readiness check %s: %w", name, err)
			}
		}
	}
	log.Info("starting spiderpool-controller", "namespace", cfg.InstallNamespace, "leaderElection", cfg.LeaderElection)
	return mgr.Start(ctx)
}

// Setup registers every reconciler with mgr. Tests call it to run the whole controller in process.
func Setup(mgr ctrl.Manager, cfg Config) error {
	return setup(mgr, cfg, new(*GCReconciler))
}

// setup is Setup that also stores the IP GC in gcOut (nil when disabled): the HTTP API triggers it.
func setup(mgr ctrl.Manager, cfg Config, gcOut **GCReconciler) error {
	recorder := mgr.GetEventRecorder("spiderpool-controller")
	bf, err := blockFormat(mgr, cfg)
	if err != nil {
		return err
	}
	if err := NewIPPoolReconciler(mgr.GetClient(), bf).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up SpiderIPPool reconciler: %w", err)
	}
	if cfg.EnableSpiderSubnet {
		if err := NewSubnetReconciler(mgr.GetClient()).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up SpiderSubnet reconciler: %w", err)
		}
	}
	if cfg.EnableSpiderSubnet && cfg.EnableAutoPool {
		if cfg.AutoPoolDefaultRedundant < 0 || cfg.AutoPoolDefaultRedundant > MaxAutoPoolIPs {
			return fmt.Errorf("auto-pool default redundant IP number %d: want 0 to %d", cfg.AutoPoolDefaultRedundant, MaxAutoPoolIPs)
		}
		auto := NewAutoPoolReconciler(mgr.GetClient(), mgr.GetAPIReader())
		auto.DefaultRedundant = cfg.AutoPoolDefaultRedundant
		auto.Recorder = recorder
		if err := auto.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up auto-pool reconciler: %w", err)
		}
	}
	mc := NewMultusConfigReconciler(mgr.GetClient(), recorder)
	mc.IPAMSocketPath = cfg.IPAMSocketPath
	if err := mc.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up SpiderMultusConfig reconciler: %w", err)
	}
	coord := NewCoordinatorReconciler(mgr.GetClient(), mgr.GetAPIReader())
	coord.Recorder = recorder
	if cfg.CoordinatorName != "" {
		coord.DefaultName = cfg.CoordinatorName
	}
	if cfg.CNIConfigDir != "" {
		coord.CNIConfigDir = cfg.CNIConfigDir
	}
	if cfg.CiliumConfigMap != "" {
		ns, name, ok := strings.Cut(cfg.CiliumConfigMap, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("cilium ConfigMap %q: want namespace/name", cfg.CiliumConfigMap)
		}
		coord.CiliumConfigMap = types.NamespacedName{Namespace: ns, Name: name}
	}
	if err := coord.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up SpiderCoordinator reconciler: %w", err)
	}
	if cfg.EnsureCoordinator {
		if err := mgr.Add(&ensureDefaultCoordinator{client: mgr.GetClient(), name: coord.DefaultName}); err != nil {
			return fmt.Errorf("add default SpiderCoordinator creation: %w", err)
		}
	}
	if cfg.GCEnabled {
		// The store re-reads a pool from the API after a lost race: it needs a client that does
		// not read from the cache, unlike the manager's.
		live, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("API client for IP GC: %w", err)
		}
		// Each pool's releases go to the store of its format (docs/design/ipam-blocks.md): an
		// AllBlocks block store over the manager's cache for pools in block format.
		store, blocks, err := NewGCStore(mgr, live)
		if err != nil {
			return fmt.Errorf("store for IP GC: %w", err)
		}
		if !blocks {
			mgr.GetLogger().Info("SpiderIPBlocks are not served: the IP GC leaves pools in block format alone until the chart's CRDs are installed")
		}
		gc := NewGCReconciler(mgr.GetClient(), mgr.GetAPIReader(), store, GCOptions{
			Interval: cfg.GCInterval, DeletingTimeoutDelay: cfg.GCDeletingTimeoutDelay, EnableStatefulSet: cfg.EnableStatefulSet,
			KeepTerminatingOnReadyNode: !cfg.GCZombieOnReadyNode, KeepTerminatingOnNotReadyNode: !cfg.GCZombieOnNotReadyNode,
			CleanOutdatedEndpoints: cfg.GCCleanOutdatedEndpoints, EnableKubevirtStaticIP: cfg.EnableKubevirtStaticIP,
			BlockRecords: blocks})
		if err := gc.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up IP GC: %w", err)
		}
		*gcOut = gc
	}
	return nil
}

func ptrDuration(d time.Duration) *time.Duration { return &d }
