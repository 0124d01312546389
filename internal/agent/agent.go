package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
)

// This file is the only one that knows kubestore: everything else is
// tested with ipamtest's store.
var _ kubestore.Observer = (*Metrics)(nil)

// readHeaderTimeout guards the TCP listeners against slow clients.
const readHeaderTimeout = 10 * time.Second

// Run runs the agent until ctx is cancelled: it starts the informer cache,
// serves the API on cfg.SocketPath (answering NotReady until the cache has
// synced), the probes on cfg.HealthAddr and the metrics on
// cfg.MetricsAddr. On cancellation it stops accepting, lets in-flight
// requests finish for up to cfg.ShutdownTimeout, removes the socket and
// returns nil. It returns an error when a listener cannot be opened or a
// server fails.
func Run(ctx context.Context, cfg Config, restConfig *rest.Config) error {
	if err := cfg.complete(); err != nil {
		return err
	}
	restConfig = rest.CopyConfig(restConfig)
	if restConfig.QPS == 0 {
		restConfig.QPS = cfg.KubeAPIQPS
	}
	if restConfig.Burst == 0 {
		restConfig.Burst = cfg.KubeAPIBurst
	}
	// Every pool write reaches every agent's informer as a watch event carrying the whole pool,
	// records included (hundreds of kilobytes for a large pool). Compressing that per watcher costs
	// the apiserver far more CPU than the bytes cost the cluster network, so ask for it plain.
	restConfig.DisableCompression = true
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	if err := v2beta1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	if err := ipblockv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}

	live, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create API client: %w", err)
	}
	// A chart upgraded with helm does not upgrade or add CRDs: run without blocks until the
	// SpiderIPBlock kind is served, rather than not at all.
	_, blocksErr := live.IsObjectNamespaced(&ipblockv1alpha1.SpiderIPBlock{})
	if blocksErr != nil {
		cfg.Logger.Warn("SpiderIPBlocks are not served: pools in block format cannot be allocated from until the chart's CRDs are installed", "error", blocksErr)
	}
	// The same for the SpiderEndpoint field selector: without it the agent caches every node's
	// endpoints, as before, and every endpoint write reaches every agent.
	endpointsErr := live.List(ctx, &v2beta1.SpiderEndpointList{}, client.Limit(1), client.MatchingFields{endpointNodeField: cfg.NodeName})
	if endpointsErr != nil {
		cfg.Logger.Warn("SpiderEndpoints cannot be selected by node: caching every node's, until the chart's CRDs are installed", "error", endpointsErr)
	}
	informers, err := newCache(ctx, restConfig, scheme, cfg.NodeName, blocksErr == nil, endpointsErr == nil)
	if err != nil {
		return err
	}

	metrics := NewMetrics(MetricsOptions{Debug: cfg.DebugMetrics})
	statusStore := kubestore.New(informers, live, kubestore.Options{
		NodeName:  cfg.NodeName,
		Unbatched: cfg.Unbatched,
		Observer:  metrics,
	})
	var blockStore *blockstore.Store
	if blocksErr == nil {
		if blockStore, err = blockstore.New(informers, informers, live, blockstore.Options{
			NodeName: cfg.NodeName,
			Observer: metrics,
		}); err != nil {
			return err
		}
	}
	// Each pool's updates go to the store of its format (docs/design/ipam-blocks.md).
	store := blockstore.NewRouter(blockStore, statusStore)
	metrics.CollectPools(store)
	// The requests' pool updates, measured (queue wait, lost races) on their way to the store.
	observed := metrics.ObserveStore(store)
	icfg := cfg.ipamConfig()
	icfg.SearchOffset = store.SearchOffset
	icfg.Quarantine = ipam.NewQuarantine(cfg.ConflictQuarantine)
	srv, err := NewServer(cfg, Deps{
		Cache:      informers,
		Live:       live,
		IPAM:       ipam.New(observed, icfg),
		Store:      observed,
		Metrics:    metrics,
		Quarantine: icfg.Quarantine,
	})
	if err != nil {
		return err
	}
	if blockStore != nil {
		go blockStore.ReturnEmptyBlocks(ctx, cfg.Logger)
	}
	return serve(ctx, &cfg, srv, metrics, informers)
}

// endpointNodeField selects the SpiderEndpoints whose current pod runs on a node (the CRD's
// selectable field).
const endpointNodeField = "status.current.node"

// newCache builds the informer cache of everything the handlers read.
// Pods are cached for this node only and nodes for this one only, and so are
// SpiderEndpoints with endpointsByNode (an endpoint found elsewhere, such as
// a StatefulSet pod's that another node wrote, is read live);
// reading any other kind through the cache is an error rather than a
// silently started cluster-wide informer.
func newCache(ctx context.Context, restConfig *rest.Config, scheme *runtime.Scheme, nodeName string, withBlocks, endpointsByNode bool) (cache.Cache, error) {
	byObject := map[client.Object]cache.ByObject{
		&corev1.Pod{}:  {Field: fields.OneTermEqualSelector("spec.nodeName", nodeName)},
		&corev1.Node{}: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
	}
	if endpointsByNode {
		byObject[&v2beta1.SpiderEndpoint{}] = cache.ByObject{Field: fields.OneTermEqualSelector(endpointNodeField, nodeName)}
	}
	if withBlocks {
		// This node's blocks and the blocks holding its pods' records: never the whole cluster's.
		byObject[&ipblockv1alpha1.SpiderIPBlock{}] = cache.ByObject{Label: blockstore.NodeSelector(nodeName)}
	}
	c, err := cache.New(restConfig, cache.Options{
		Scheme:                      scheme,
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject:                    byObject,
	})
	if err != nil {
		return nil, fmt.Errorf("create informer cache: %w", err)
	}
	if err := c.IndexField(ctx, &v2beta1.SpiderEndpoint{}, endpointUIDIndex, indexEndpointUID); err != nil {
		return nil, fmt.Errorf("index SpiderEndpoints by pod UID: %w", err)
	}
	kinds := []client.Object{
		&corev1.Pod{}, &corev1.Namespace{}, &corev1.Node{},
		&v2beta1.SpiderIPPool{}, &v2beta1.SpiderReservedIP{},
		&v2beta1.SpiderEndpoint{}, &v2beta1.SpiderCoordinator{},
	}
	if withBlocks {
		kinds = append(kinds, &ipblockv1alpha1.SpiderIPBlock{})
	}
	for _, obj := range kinds {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("create informer for %T: %w", obj, err)
		}
	}
	return c, nil
}

// serve runs the cache and the servers until ctx is done, then shuts down.
func serve(ctx context.Context, cfg *Config, srv *Server, metrics *Metrics, informers cache.Cache) error {
	log := cfg.Logger
	// In-flight requests keep using the cache and their own contexts after
	// ctx is cancelled; both are stopped only once the servers are down.
	cacheCtx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCache()
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()

	unixLn, err := ListenUnix(cfg.SocketPath)
	if err != nil {
		return err
	}
	defer func() {
		if err := os.Remove(cfg.SocketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("remove socket", keySocket, cfg.SocketPath, keyError, err)
		}
	}()

	type endpoint struct {
		name string
		ln   net.Listener
		srv  *http.Server
	}
	base := func(net.Listener) context.Context { return reqCtx }
	eps := []endpoint{{"api", unixLn, &http.Server{Handler: srv.Handler(), BaseContext: base, ReadHeaderTimeout: readHeaderTimeout}}}
	listen := func(name, addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s for %s: %w", addr, name, err)
		}
		eps = append(eps, endpoint{name, ln, &http.Server{Handler: h, BaseContext: base, ReadHeaderTimeout: readHeaderTimeout}})
		return nil
	}
	err = listen("health", cfg.HealthAddr, srv.HealthHandler())
	if err == nil && cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		err = listen("metrics", cfg.MetricsAddr, mux)
	}
	if err != nil {
		for _, e := range eps {
			_ = e.ln.Close()
		}
		return err
	}

	cacheDone := make(chan error, 1)
	go func() { cacheDone <- informers.Start(cacheCtx) }()
	go func() {
		if informers.WaitForCacheSync(ctx) {
			srv.SetReady()
			log.Info("caches synced, serving", keyNode, cfg.NodeName, keySocket, cfg.SocketPath)
		}
	}()

	failed := make(chan error, len(eps))
	for _, e := range eps {
		go func() {
			if err := e.srv.Serve(e.ln); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("serve %s: %w", e.name, err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	case err := <-cacheDone:
		runErr = fmt.Errorf("informer cache stopped: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	for _, e := range eps {
		if err := e.srv.Shutdown(shutdownCtx); err != nil {
			// In-flight requests outlived the bound: cancel them and cut the connections.
			cancelRequests()
			_ = e.srv.Close()
			log.Warn("shutdown cut in-flight requests", keyServer, e.name, keyError, err)
		}
	}
	stopCache()
	log.Info("stopped", keyNode, cfg.NodeName)
	return runErr
}
