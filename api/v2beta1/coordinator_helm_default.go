package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HelmDefaultCoordinator is the SpiderCoordinator of the Helm chart's coordinator.* defaults
// (docs/design/behaviour.md#spiderpool-init (values: docs/reference/helm-values.md#coordinator)): what spiderpool-init creates without overrides, and what the controller creates
// when none of that name exists.
func HelmDefaultCoordinator(name string) *SpiderCoordinator {
	c := &SpiderCoordinator{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: CoordinatorSpec{
			Mode:            new(CoordinatorModeAuto),
			PodCIDRType:     new(PodCIDRTypeAuto),
			HijackCIDR:      []string{"169.254.0.0/16"},
			TunePodRoutes:   new(true),
			VethLinkAddress: new(""),
			VethMTU:         new(1500),
		},
	}
	DefaultSpiderCoordinator(c)
	return c
}
