package agent

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Defaults of SpiderCoordinator fields a hand-made object may leave unset
// (the CRD defaults most of them; Helm sets vethMTU).
const (
	defaultHostRuleTable = 500
	defaultVethMTU       = 1500
)

// coordinatorConfig answers GET /v1/coordinator/config (docs/design/behaviour.md#coordinator-configuration): the
// SpiderCoordinator's spec with defaults, the CIDRs of its status, and the
// pod's default-route-nic annotation in place of spec.podDefaultRouteNIC.
// A missing or not Synced SpiderCoordinator fails with NotReady, which
// fails the pod's creation until the controller has found the cluster's
// CIDRs.
func (s *Server) coordinatorConfig(ctx context.Context, args *v1.CoordinatorConfigArgs) (*v1.CoordinatorConfig, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	name := s.cfg.CoordinatorName
	scc := &v2beta1.SpiderCoordinator{}
	if err := s.cache.Get(ctx, client.ObjectKey{Name: name}, scc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &reasonError{ErrNotReady, fmt.Sprintf("SpiderCoordinator %s not found", name)}
		}
		return nil, fmt.Errorf("get SpiderCoordinator %s: %w", name, err)
	}
	if scc.Status.Phase != v2beta1.CoordinatorPhaseSynced {
		reason := scc.Status.Reason
		if reason == "" {
			reason = fmt.Sprintf("phase is %q", scc.Status.Phase)
		}
		return nil, &reasonError{ErrNotReady, fmt.Sprintf("SpiderCoordinator %s is not ready: %s", name, reason)}
	}

	pod := &corev1.Pod{}
	if err := s.getCachedOrLive(ctx, client.ObjectKey{Namespace: args.PodNamespace, Name: args.PodName}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &reasonError{ErrNotFound, fmt.Sprintf("pod %s/%s not found", args.PodNamespace, args.PodName)}
		}
		return nil, fmt.Errorf("get pod %s/%s: %w", args.PodNamespace, args.PodName, err)
	}
	return mergeCoordinator(&scc.Spec, &scc.Status, pod.Annotations[v2beta1.AnnoDefaultRouteInterface]), nil
}

// mergeCoordinator applies the defaults to spec and adds the status CIDRs
// and the pod's default route NIC (empty: keep the spec's).
func mergeCoordinator(spec *v2beta1.CoordinatorSpec, status *v2beta1.CoordinatorStatus, podDefaultRouteNIC string) *v1.CoordinatorConfig {
	cc := &v1.CoordinatorConfig{
		Mode:               v2beta1.CoordinatorModeAuto,
		OverlayPodCIDR:     nonNil(status.OverlayPodCIDR),
		ServiceCIDR:        nonNil(status.ServiceCIDR),
		HijackCIDR:         spec.HijackCIDR,
		PodMACPrefix:       deref(spec.PodMACPrefix),
		TunePodRoutes:      true,
		PodDefaultRouteNIC: deref(spec.PodDefaultRouteNIC),
		HostRuleTable:      defaultHostRuleTable,
		VethLinkAddress:    deref(spec.VethLinkAddress),
		VethMTU:            defaultVethMTU,
	}
	if spec.Mode != nil && *spec.Mode != "" {
		cc.Mode = *spec.Mode
	}
	if spec.TunePodRoutes != nil {
		cc.TunePodRoutes = *spec.TunePodRoutes
	}
	if spec.HostRuleTable != nil {
		cc.HostRuleTable = *spec.HostRuleTable
	}
	if spec.PodRPFilter != nil {
		cc.PodRPFilter = *spec.PodRPFilter
	}
	if spec.TxQueueLen != nil {
		cc.TxQueueLen = *spec.TxQueueLen
	}
	if spec.VethMTU != nil && *spec.VethMTU > 0 {
		cc.VethMTU = *spec.VethMTU
	}
	for _, r := range spec.PolicyRoutes {
		cc.PolicyRoutes = append(cc.PolicyRoutes, v1.Route{Dst: r.Dst, Gw: r.Gw})
	}
	if podDefaultRouteNIC != "" {
		cc.PodDefaultRouteNIC = podDefaultRouteNIC
	}
	return cc
}

// nonNil keeps required list fields from being encoded as null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
