package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

const (
	// DefaultCoordinatorName is the SpiderCoordinator every cluster has (Helm coordinator.name).
	DefaultCoordinatorName = "default"
	// DefaultCNIConfigDir is where podCIDRType auto looks for the main CNI's config.
	DefaultCNIConfigDir = "/etc/cni/net.d"

	coordinatorResync = 60 * time.Second

	kubeadmConfigName    = "kubeadm-config"
	kubeadmConfigKey     = "ClusterConfiguration"
	controllerManagerKey = "component"
	controllerManagerVal = "kube-controller-manager"
)

// DefaultCiliumConfigMap is Helm's global.ciliumConfigMap.
var DefaultCiliumConfigMap = types.NamespacedName{Namespace: metav1.NamespaceSystem, Name: "cilium-config"}

var (
	calicoIPPoolGVK = schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "IPPool"}
	// ciliumPodIPPoolGK is looked up without a version: Cilium has served it as v2alpha1 and later v2.
	ciliumPodIPPoolGK = schema.GroupKind{Group: "cilium.io", Kind: "CiliumPodIPPool"}
	serviceCIDRGK     = schema.GroupKind{Group: networkingv1.GroupName, Kind: "ServiceCIDR"}
)

// errNotReady marks failures the user has to fix in the cluster (a missing ConfigMap, an
// unsupported mode). They become the status reason and are retried on the next event or resync
// instead of with error backoff, which would only add log noise.
var errNotReady = errors.New("coordinator not ready")

// errNoClusterSource is the reason shown when neither place that knows the cluster CIDRs exists.
// It carries the kubeadm-config workaround of the Calico-overlay guide so that the user need not look it up.
var errNoClusterSource = fmt.Errorf("%w: Neither kubeadm-config ConfigMap nor kube-controller-manager Pod can be found; "+
	"create ConfigMap kube-system/kubeadm-config with key ClusterConfiguration holding networking.podSubnet and networking.serviceSubnet", errNotReady)

// CoordinatorReconciler keeps SpiderCoordinator status (overlayPodCIDR, serviceCIDR, phase, reason)
// in step with the cluster's networks (docs/design/behaviour.md#spidercoordinator-status).
type CoordinatorReconciler struct {
	client client.Client
	// reader reads the sources uncached: they are watched as metadata only (see SetupWithManager), so
	// the cache holds no data for them, and a cluster's many ConfigMaps and Pods are not cached in full.
	reader client.Reader
	mapper meta.RESTMapper

	// DefaultName is the coordinator that source events are mapped to.
	DefaultName string
	// CNIConfigDir is read to resolve podCIDRType auto.
	CNIConfigDir string
	// CiliumConfigMap holds Cilium's IPAM settings.
	CiliumConfigMap types.NamespacedName
	// Recorder gets a Warning event when the coordinator turns NotReady (reasons ClusterNotReady,
	// CalicoNotReady, CiliumNotReady, CoordinatorNotReady as upstream names them); nil records none.
	Recorder events.EventRecorder
}

// Event reasons of a NotReady coordinator, named after the source that failed.
const (
	reasonClusterNotReady     = "ClusterNotReady"
	reasonCalicoNotReady      = "CalicoNotReady"
	reasonCiliumNotReady      = "CiliumNotReady"
	reasonCoordinatorNotReady = "CoordinatorNotReady"
)

var _ reconcile.Reconciler = &CoordinatorReconciler{}

// NewCoordinatorReconciler returns a reconciler with the upstream defaults; change the exported fields
// before SetupWithManager. reader should be uncached (mgr.GetAPIReader()).
func NewCoordinatorReconciler(c client.Client, reader client.Reader) *CoordinatorReconciler {
	return &CoordinatorReconciler{
		client:          c,
		reader:          reader,
		mapper:          c.RESTMapper(),
		DefaultName:     DefaultCoordinatorName,
		CNIConfigDir:    DefaultCNIConfigDir,
		CiliumConfigMap: DefaultCiliumConfigMap,
	}
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidercoordinators,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidercoordinators/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidercoordinators/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=get;list;watch
// +kubebuilder:rbac:groups=crd.projectcalico.org,resources=ippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumpodippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile adds or removes the finalizer and recomputes the status of one SpiderCoordinator.
func (r *CoordinatorReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var coord v2beta1.SpiderCoordinator
	if err := r.client.Get(ctx, req.NamespacedName, &coord); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !coord.DeletionTimestamp.IsZero() {
		// Nothing else refers to the coordinator's status, so there is nothing to wait for.
		if controllerutil.RemoveFinalizer(&coord, v2beta1.Finalizer) {
			if err := r.client.Update(ctx, &coord); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
		}
		return reconcile.Result{}, nil
	}
	if controllerutil.AddFinalizer(&coord, v2beta1.Finalizer) {
		if err := r.client.Update(ctx, &coord); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer to SpiderCoordinator %q: %w", coord.Name, err)
		}
	}

	status, eventReason, err := r.computeStatus(ctx, &coord)
	if err != nil && !errors.Is(err, errNotReady) {
		// A failed read of the API is not the cluster's state: keep the last status and back off.
		return reconcile.Result{}, err
	}
	if !statusEqual(coord.Status, status) {
		coord.Status = status
		if err := r.client.Status().Update(ctx, &coord); err != nil {
			return reconcile.Result{}, fmt.Errorf("update status of SpiderCoordinator %q: %w", coord.Name, err)
		}
		// Only on a change: the 60 s resync would otherwise repeat the same warning forever.
		if status.Phase == v2beta1.CoordinatorPhaseNotReady && r.Recorder != nil {
			r.Recorder.Eventf(&coord, nil, corev1.EventTypeWarning, eventReason, "SyncStatus", "%s", status.Reason)
		}
	}
	// Sources without events (the CNI config directory) and a ServiceCIDR API appearing after an
	// upgrade are only noticed by polling.
	return reconcile.Result{RequeueAfter: coordinatorResync}, nil
}

// computeStatus returns the status for coord and, when NotReady, the event reason. An error
// wrapping errNotReady is also reflected in the returned NotReady status; any other error is a
// failed API call.
func (r *CoordinatorReconciler) computeStatus(ctx context.Context, coord *v2beta1.SpiderCoordinator) (v2beta1.CoordinatorStatus, string, error) {
	eventReason := reasonClusterNotReady
	notReady := func(err error) (v2beta1.CoordinatorStatus, string, error) {
		// Empty lists rather than stale CIDRs: the coordinator plugin must not route by CIDRs that
		// may no longer be true.
		return v2beta1.CoordinatorStatus{
			Phase:          v2beta1.CoordinatorPhaseNotReady,
			Reason:         notReadyReason(err),
			OverlayPodCIDR: []string{},
			ServiceCIDR:    []string{},
		}, eventReason, err
	}

	// The cluster source is required for every podCIDRType, as upstream does: the Calico-overlay
	// guide's kubeadm-config workaround exists because a calico coordinator stays NotReady without it.
	clusterPod, clusterSvc, err := r.clusterCIDRs(ctx)
	if err != nil {
		return notReady(err)
	}

	podCIDRType := v2beta1.PodCIDRTypeAuto
	if coord.Spec.PodCIDRType != nil {
		podCIDRType = *coord.Spec.PodCIDRType
	}
	eventReason = reasonCoordinatorNotReady
	if podCIDRType, err = resolvePodCIDRType(podCIDRType, r.CNIConfigDir); err != nil {
		return notReady(fmt.Errorf("%w: %w", errNotReady, err))
	}

	var overlay []string
	switch podCIDRType {
	case v2beta1.PodCIDRTypeCluster:
		eventReason = reasonClusterNotReady
		if len(clusterPod) == 0 {
			return notReady(fmt.Errorf("%w: podCIDRType cluster: no pod CIDR found: set networking.podSubnet in ConfigMap kube-system/kubeadm-config or --cluster-cidr of kube-controller-manager", errNotReady))
		}
		overlay = clusterPod
	case v2beta1.PodCIDRTypeCalico:
		eventReason = reasonCalicoNotReady
		if overlay, err = r.calicoCIDRs(ctx); err != nil {
			return notReady(err)
		}
	case v2beta1.PodCIDRTypeCilium:
		eventReason = reasonCiliumNotReady
		if overlay, err = r.ciliumCIDRs(ctx, clusterPod); err != nil {
			return notReady(err)
		}
	case v2beta1.PodCIDRTypeNone:
	default:
		return notReady(fmt.Errorf("%w: unknown podCIDRType %q", errNotReady, podCIDRType))
	}

	eventReason = reasonClusterNotReady
	svc, err := r.serviceCIDRs(ctx, clusterSvc)
	if err != nil {
		return notReady(err)
	}
	return v2beta1.CoordinatorStatus{
		Phase:          v2beta1.CoordinatorPhaseSynced,
		OverlayPodCIDR: nonNil(overlay),
		ServiceCIDR:    nonNil(svc),
	}, "", nil
}

// notReadyReason is the user-facing text of err without the errNotReady marker.
func notReadyReason(err error) string {
	s, _ := strings.CutPrefix(err.Error(), errNotReady.Error()+": ")
	return s
}

// clusterCIDRs reads the pod and service CIDRs from kubeadm-config and, for whichever of the two it
// lacks, from the kube-controller-manager pod's flags.
func (r *CoordinatorReconciler) clusterCIDRs(ctx context.Context) (pod, svc []string, err error) {
	var cm corev1.ConfigMap
	found := false
	err = r.reader.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceSystem, Name: kubeadmConfigName}, &cm)
	switch {
	case err == nil:
		found = true
		if pod, svc, err = parseKubeadmClusterConfiguration(cm.Data[kubeadmConfigKey]); err != nil {
			return nil, nil, fmt.Errorf("%w: ConfigMap kube-system/kubeadm-config: %w", errNotReady, err)
		}
		if len(pod) > 0 && len(svc) > 0 {
			return pod, svc, nil
		}
	case !apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("get ConfigMap kube-system/kubeadm-config: %w", err)
	}

	var pods corev1.PodList
	if err := r.reader.List(ctx, &pods, client.InNamespace(metav1.NamespaceSystem),
		client.MatchingLabels{controllerManagerKey: controllerManagerVal}); err != nil {
		return nil, nil, fmt.Errorf("list kube-controller-manager pods: %w", err)
	}
	if len(pods.Items) > 0 && len(pods.Items[0].Spec.Containers) > 0 {
		found = true
		c := pods.Items[0].Spec.Containers[0]
		kcmPod, kcmSvc := parseControllerManagerFlags(append(slices.Clone(c.Command), c.Args...))
		if len(pod) == 0 {
			pod = kcmPod
		}
		if len(svc) == 0 {
			svc = kcmSvc
		}
	}
	if !found {
		return nil, nil, errNoClusterSource
	}
	return pod, svc, nil
}

// calicoCIDRs returns spec.cidr of the Calico IPPools that can still hand out addresses, oldest
// first so that the order is stable across resyncs.
func (r *CoordinatorReconciler) calicoCIDRs(ctx context.Context) ([]string, error) {
	notInstalled := fmt.Errorf("%w: podCIDRType calico: the Calico IPPool API (crd.projectcalico.org/v1) is not installed: install Calico or set podCIDRType", errNotReady)
	if _, err := r.mapper.RESTMapping(calicoIPPoolGVK.GroupKind(), calicoIPPoolGVK.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, notInstalled
		}
		return nil, fmt.Errorf("look up Calico IPPool API: %w", err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(calicoIPPoolGVK.GroupVersion().WithKind(calicoIPPoolGVK.Kind + "List"))
	if err := r.reader.List(ctx, list); err != nil {
		// The CRD may have been removed since the mapper looked.
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, notInstalled
		}
		return nil, fmt.Errorf("list Calico IPPools: %w", err)
	}
	var out []string
	for _, p := range sortedLive(list.Items) {
		if disabled, _, _ := unstructured.NestedBool(p.Object, "spec", "disabled"); disabled {
			continue
		}
		cidr, _, _ := unstructured.NestedString(p.Object, "spec", "cidr")
		if cidr != "" && !slices.Contains(out, cidr) {
			out = append(out, cidr)
		}
	}
	return out, nil
}

// ciliumCIDRs reads the cilium-config ConfigMap.
func (r *CoordinatorReconciler) ciliumCIDRs(ctx context.Context, clusterPod []string) ([]string, error) {
	var cm corev1.ConfigMap
	if err := r.reader.Get(ctx, r.CiliumConfigMap, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: podCIDRType cilium: ConfigMap %s not found: install Cilium or point global.ciliumConfigMap at its ConfigMap", errNotReady, r.CiliumConfigMap)
		}
		return nil, fmt.Errorf("get ConfigMap %s: %w", r.CiliumConfigMap, err)
	}
	cidrs, err := ciliumCIDRs(cm.Data, clusterPod)
	if errors.Is(err, errCiliumMultiPool) {
		return r.ciliumPoolCIDRs(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: ConfigMap %s: %w", errNotReady, r.CiliumConfigMap, err)
	}
	if cm.Data["ipam"] == "kubernetes" && len(cidrs) == 0 {
		return nil, fmt.Errorf("%w: Cilium ipam kubernetes: no cluster pod CIDR found: set networking.podSubnet in ConfigMap kube-system/kubeadm-config", errNotReady)
	}
	return cidrs, nil
}

// ciliumPoolCIDRs returns spec.ipv4.cidrs and spec.ipv6.cidrs of every CiliumPodIPPool, oldest pool
// first, for Cilium's multi-pool IPAM.
func (r *CoordinatorReconciler) ciliumPoolCIDRs(ctx context.Context) ([]string, error) {
	mapping, err := r.mapper.RESTMapping(ciliumPodIPPoolGK)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("%w: Cilium ipam multi-pool: the CiliumPodIPPool API (cilium.io) is not installed", errNotReady)
		}
		return nil, fmt.Errorf("look up CiliumPodIPPool API: %w", err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(mapping.GroupVersionKind.GroupVersion().WithKind(mapping.GroupVersionKind.Kind + "List"))
	if err := r.reader.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list CiliumPodIPPools: %w", err)
	}
	var out []string
	for _, p := range sortedLive(list.Items) {
		for _, family := range []string{"ipv4", "ipv6"} {
			cidrs, _, _ := unstructured.NestedStringSlice(p.Object, "spec", family, "cidrs")
			for _, c := range cidrs {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	return out, nil
}

// sortedLive returns the objects not being deleted, oldest first and then by name, so that the
// CIDRs in the status keep their order across resyncs.
func sortedLive(items []unstructured.Unstructured) []unstructured.Unstructured {
	out := slices.DeleteFunc(slices.Clone(items), func(u unstructured.Unstructured) bool { return u.GetDeletionTimestamp() != nil })
	slices.SortStableFunc(out, func(a, b unstructured.Unstructured) int {
		if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		return cmp.Compare(a.GetName(), b.GetName())
	})
	return out
}

// serviceCIDRs prefers the ServiceCIDR objects: they are what the apiserver allocates ClusterIPs
// from, including ranges added after install that kubeadm-config never learns about. Without that
// API, or with no usable object, the cluster source's service CIDR is used.
func (r *CoordinatorReconciler) serviceCIDRs(ctx context.Context, clusterSvc []string) ([]string, error) {
	served, err := r.serviceCIDRServed()
	if err != nil {
		return nil, err
	}
	if served {
		var list networkingv1.ServiceCIDRList
		if err := r.reader.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("list ServiceCIDRs: %w", err)
		}
		items := slices.Clone(list.Items)
		slices.SortStableFunc(items, func(a, b networkingv1.ServiceCIDR) int {
			if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		var out []string
		for _, s := range items {
			if s.DeletionTimestamp != nil {
				continue
			}
			for _, c := range s.Spec.CIDRs {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	if len(clusterSvc) == 0 {
		return nil, fmt.Errorf("%w: no service CIDR found: set networking.serviceSubnet in ConfigMap kube-system/kubeadm-config or --service-cluster-ip-range of kube-controller-manager", errNotReady)
	}
	return clusterSvc, nil
}

func (r *CoordinatorReconciler) serviceCIDRServed() (bool, error) {
	_, err := r.mapper.RESTMapping(serviceCIDRGK, networkingv1.SchemeGroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("look up ServiceCIDR API: %w", err)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// statusEqual treats nil and empty lists alike: the apiserver may return either for [].
func statusEqual(a, b v2beta1.CoordinatorStatus) bool {
	return a.Phase == b.Phase && a.Reason == b.Reason &&
		slices.Equal(a.OverlayPodCIDR, b.OverlayPodCIDR) && slices.Equal(a.ServiceCIDR, b.ServiceCIDR)
}

// SetupWithManager registers the reconciler. Every source is watched as metadata only and mapped to
// the default coordinator: the reconciler reads the data itself, so the cache need not hold every
// ConfigMap and Pod of the cluster.
func (r *CoordinatorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toDefault := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: r.DefaultName}}}
	})
	isConfigMap := predicate.NewPredicateFuncs(func(o client.Object) bool {
		key := client.ObjectKeyFromObject(o)
		return key == types.NamespacedName{Namespace: metav1.NamespaceSystem, Name: kubeadmConfigName} || key == r.CiliumConfigMap
	})
	isControllerManager := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == metav1.NamespaceSystem && o.GetLabels()[controllerManagerKey] == controllerManagerVal
	})

	b := ctrl.NewControllerManagedBy(mgr).
		Named("spidercoordinator").
		For(&v2beta1.SpiderCoordinator{}).
		Watches(&corev1.ConfigMap{}, toDefault, builder.OnlyMetadata, builder.WithPredicates(isConfigMap)).
		Watches(&corev1.Pod{}, toDefault, builder.OnlyMetadata, builder.WithPredicates(isControllerManager))

	mapper := mgr.GetRESTMapper()
	if _, err := mapper.RESTMapping(serviceCIDRGK, networkingv1.SchemeGroupVersion.Version); err == nil {
		b = b.Watches(&networkingv1.ServiceCIDR{}, toDefault, builder.OnlyMetadata)
	} else if !meta.IsNoMatchError(err) {
		return fmt.Errorf("look up ServiceCIDR API: %w", err)
	}
	// Watching a kind that is not served would fail the manager's start, so Calico IPPools and
	// CiliumPodIPPools are only watched when installed; installing the CNI later needs a controller
	// restart for events (the 60 s resync still picks the pools up).
	if _, err := mapper.RESTMapping(calicoIPPoolGVK.GroupKind(), calicoIPPoolGVK.Version); err == nil {
		pools := &unstructured.Unstructured{}
		pools.SetGroupVersionKind(calicoIPPoolGVK)
		b = b.Watches(pools, toDefault)
	} else if !meta.IsNoMatchError(err) {
		return fmt.Errorf("look up Calico IPPool API: %w", err)
	}
	if mapping, err := mapper.RESTMapping(ciliumPodIPPoolGK); err == nil {
		pools := &unstructured.Unstructured{}
		pools.SetGroupVersionKind(mapping.GroupVersionKind)
		b = b.Watches(pools, toDefault)
	} else if !meta.IsNoMatchError(err) {
		return fmt.Errorf("look up CiliumPodIPPool API: %w", err)
	}
	if err := b.Complete(r); err != nil {
		return fmt.Errorf("set up SpiderCoordinator controller: %w", err)
	}
	return nil
}
