package build

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Coordinator makes the SpiderCoordinator name as a user writes it, before the mutating webhook's
// defaults (v2beta1.DefaultSpiderCoordinator).
func Coordinator(name string, opts ...Option) *v2beta1.SpiderCoordinator {
	return made(&v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts)
}

// PodCIDRType sets spec.podCIDRType of a SpiderCoordinator: where the controller learns the
// cluster's pod CIDRs from.
func PodCIDRType(t string) Option {
	return only("PodCIDRType", func(c *v2beta1.SpiderCoordinator) { c.Spec.PodCIDRType = &t })
}
