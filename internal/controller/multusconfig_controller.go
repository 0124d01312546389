package controller

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	agentv1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// NADGVK is the Multus NetworkAttachmentDefinition kind. NADs are handled as unstructured objects so
// that the controller needs no client library of the Network Plumbing Working Group.
var NADGVK = schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}

// Event reasons of the SpiderMultusConfig reconciler.
const (
	ReasonInvalidMultusConfig = "InvalidConfig"
	ReasonNADConflict         = "NADConflict"
	ReasonNADGenerated        = "NADGenerated"
)

const (
	// multusConfigResync is upstream's resync period (docs/design/behaviour.md#controller-reconcilers). Owned NADs already trigger a
	// reconcile when they change, so this only matters for a NAD that loses its owner reference
	// and for NADs created by others under the name a SpiderMultusConfig wants.
	multusConfigResync = 60 * time.Second
	// nadDeletionPoll is how often a NAD that is being deleted is looked at again.
	nadDeletionPoll = 2 * time.Second
)

// MultusConfigReconciler generates, for every SpiderMultusConfig, the NetworkAttachmentDefinition
// of docs/design/behaviour.md#nad-generation and keeps it in step: same namespace, name from the cr-name annotation or the
// SpiderMultusConfig, annotations copied, config from NADConfig, and a controller reference so that
// the NAD is garbage-collected with its SpiderMultusConfig.
type MultusConfigReconciler struct {
	client client.Client
	// recorder may be nil: events are a courtesy to the user, never part of the outcome.
	recorder events.EventRecorder
	// IPAMSocketPath is the agent's socket on the nodes (Helm global.ipamUNIXSocketHostPath),
	// written into generated NADs when it is not the plugin's default; "" means the default.
	IPAMSocketPath string
}

var _ reconcile.Reconciler = &MultusConfigReconciler{}

// NewMultusConfigReconciler returns a reconciler writing through c and reporting to recorder
// (mgr.GetEventRecorder(...), or nil for no events).
func NewMultusConfigReconciler(c client.Client, recorder events.EventRecorder) *MultusConfigReconciler {
	return &MultusConfigReconciler{client: c, recorder: recorder}
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidermultusconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidermultusconfigs/finalizers,verbs=update
// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile creates or updates the NAD of one SpiderMultusConfig.
func (r *MultusConfigReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var smc v2beta1.SpiderMultusConfig
	if err := r.client.Get(ctx, req.NamespacedName, &smc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !smc.DeletionTimestamp.IsZero() {
		// The garbage collector removes the NAD through its owner reference.
		return reconcile.Result{}, nil
	}

	// Upstream generates from objects the mutating webhook has defaulted, and the generated JSON
	// depends on which fields are set (a SpiderMultusConfig without spec.coordinator yields
	// {"tunePodRoutes":true,"mode":"auto",...} only after defaulting). Defaulting a copy here makes
	// the NAD the same whether or not the webhook ran, e.g. for objects stored before it was
	// registered or with failurePolicy Ignore; on an already defaulted object it changes nothing.
	defaulted := smc.DeepCopy()
	v2beta1.DefaultSpiderMultusConfig(defaulted)
	if errs := v2beta1.ValidateSpiderMultusConfig(defaulted); len(errs) > 0 {
		// Retrying cannot help: the next change of the object brings it back here.
		r.event(&smc, corev1.EventTypeWarning, ReasonInvalidMultusConfig, "NAD not generated: %s", errs.ToAggregate().Error())
		return reconcile.Result{}, nil
	}
	config, err := NADConfig(defaulted, cmp.Or(r.IPAMSocketPath, agentv1.DefaultSocketPath))
	if err != nil {
		r.event(&smc, corev1.EventTypeWarning, ReasonInvalidMultusConfig, "NAD not generated: %s", err.Error())
		return reconcile.Result{}, nil
	}

	key := client.ObjectKey{Namespace: smc.Namespace, Name: NADName(&smc)}
	want := desiredNAD(&smc, key, config)
	// The manager's client does not cache unstructured objects unless told to, so this reads the
	// NAD from the API server: a NAD just created by an earlier pass is never missed, and the
	// owned-NAD watch still triggers reconciles.
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	err = r.client.Get(ctx, key, nad)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.client.Create(ctx, want); err != nil {
			return reconcile.Result{}, fmt.Errorf("create NetworkAttachmentDefinition %s: %w", key, err)
		}
		r.event(&smc, corev1.EventTypeNormal, ReasonNADGenerated, "created NetworkAttachmentDefinition %s", key.Name)
		return reconcile.Result{RequeueAfter: multusConfigResync}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("get NetworkAttachmentDefinition %s: %w", key, err)
	}

	if !nad.GetDeletionTimestamp().IsZero() {
		// A NAD cannot be revived; wait until it is gone and create it anew.
		return reconcile.Result{RequeueAfter: nadDeletionPoll}, nil
	}
	if owner := metav1.GetControllerOf(nad); owner != nil && owner.UID != smc.UID {
		foreign, err := r.ownedByOtherMultusConfig(ctx, nad.GetNamespace(), owner)
		if err != nil {
			return reconcile.Result{}, err
		}
		if foreign {
			// The validating webhook refuses this; objects that got past it (no webhook, or both
			// created at once) must not make two SpiderMultusConfigs overwrite each other's NAD.
			r.event(&smc, corev1.EventTypeWarning, ReasonNADConflict,
				"NetworkAttachmentDefinition %s is controlled by SpiderMultusConfig %s; not overwritten", key.Name, owner.Name)
			return reconcile.Result{RequeueAfter: multusConfigResync}, nil
		}
	}
	if !nadNeedsUpdate(nad, want, &smc) {
		return reconcile.Result{RequeueAfter: multusConfigResync}, nil
	}

	// A NAD that no live SpiderMultusConfig controls is taken over (docs/design/behaviour.md#nad-generation), including one
	// left by a deleted SpiderMultusConfig of the same name that the garbage collector has not
	// removed yet. Owner references of other kinds that do not control the NAD are kept.
	nad.SetAnnotations(want.GetAnnotations())
	if config == "" {
		unstructured.RemoveNestedField(nad.Object, "spec", "config")
	} else if err := unstructured.SetNestedField(nad.Object, config, "spec", "config"); err != nil {
		return reconcile.Result{}, fmt.Errorf("set spec.config of NetworkAttachmentDefinition %s: %w", key, err)
	}
	nad.SetOwnerReferences(withController(nad.GetOwnerReferences(), want.GetOwnerReferences()[0]))
	// Update carries the resourceVersion just read: a concurrent change makes it fail with a
	// conflict and the request is retried against the new state.
	if err := r.client.Update(ctx, nad); err != nil {
		return reconcile.Result{}, fmt.Errorf("update NetworkAttachmentDefinition %s: %w", key, err)
	}
	r.event(&smc, corev1.EventTypeNormal, ReasonNADGenerated, "updated NetworkAttachmentDefinition %s", key.Name)
	return reconcile.Result{RequeueAfter: multusConfigResync}, nil
}

// ownedByOtherMultusConfig reports whether owner, the controller of a NAD, is a SpiderMultusConfig
// that still exists. A controller of another kind, or a SpiderMultusConfig that is gone (only its
// UID differs from a namesake recreated since), does not protect the NAD.
func (r *MultusConfigReconciler) ownedByOtherMultusConfig(ctx context.Context, namespace string, owner *metav1.OwnerReference) (bool, error) {
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil || gv.Group != v2beta1.GroupName || owner.Kind != "SpiderMultusConfig" {
		return false, nil
	}
	var other v2beta1.SpiderMultusConfig
	err = r.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner.Name}, &other)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get SpiderMultusConfig %s/%s controlling a NAD: %w", namespace, owner.Name, err)
	}
	return other.UID == owner.UID, nil
}

// desiredNAD is the NAD generated for smc: docs/design/behaviour.md#nad-generation's name, annotations, owner and config.
func desiredNAD(smc *v2beta1.SpiderMultusConfig, key client.ObjectKey, config string) *unstructured.Unstructured {
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	nad.SetNamespace(key.Namespace)
	nad.SetName(key.Name)
	// Every annotation is copied, kubectl's last-applied-configuration included, as upstream does.
	annotations := maps.Clone(smc.Annotations)
	if rn := NADResourceName(smc); rn != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[v2beta1.AnnoNADResourceName] = rn
	}
	nad.SetAnnotations(annotations)
	nad.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion:         v2beta1.SchemeGroupVersion.String(),
		Kind:               "SpiderMultusConfig",
		Name:               smc.Name,
		UID:                smc.UID,
		Controller:         new(true),
		BlockOwnerDeletion: new(true),
	}})
	if config != "" {
		nad.Object["spec"] = map[string]any{"config": config}
	}
	return nad
}

// nadNeedsUpdate reports whether the annotations, spec.config or controller reference of the
// existing NAD differ from the generated one.
func nadNeedsUpdate(existing, want *unstructured.Unstructured, smc *v2beta1.SpiderMultusConfig) bool {
	// maps.Equal treats nil and empty alike, as the API server does.
	if !maps.Equal(existing.GetAnnotations(), want.GetAnnotations()) {
		return true
	}
	got, _, _ := unstructured.NestedString(existing.Object, "spec", "config")
	wantConfig, _, _ := unstructured.NestedString(want.Object, "spec", "config")
	if got != wantConfig {
		return true
	}
	owner := metav1.GetControllerOf(existing)
	return owner == nil || owner.UID != smc.UID || owner.BlockOwnerDeletion == nil || !*owner.BlockOwnerDeletion
}

// withController returns refs with every controller reference replaced by ctrlRef; an object can
// have only one controller.
func withController(refs []metav1.OwnerReference, ctrlRef metav1.OwnerReference) []metav1.OwnerReference {
	out := make([]metav1.OwnerReference, 0, len(refs)+1)
	for _, ref := range refs {
		if (ref.Controller != nil && *ref.Controller) || ref.UID == ctrlRef.UID {
			continue
		}
		out = append(out, ref)
	}
	return append(out, ctrlRef)
}

func (r *MultusConfigReconciler) event(smc *v2beta1.SpiderMultusConfig, eventType, reason, note string, args ...any) {
	if r.recorder == nil {
		return
	}
	r.recorder.Eventf(smc, nil, eventType, reason, "GenerateNAD", note, args...)
}

// SetupWithManager registers the reconciler for SpiderMultusConfigs and the NADs they control, so
// that a NAD edited or deleted by hand is put back at once.
func (r *MultusConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(NADGVK)
	err := ctrl.NewControllerManagedBy(mgr).
		Named("spidermultusconfig").
		For(&v2beta1.SpiderMultusConfig{}).
		Owns(nad).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up SpiderMultusConfig controller: %w", err)
	}
	return nil
}
