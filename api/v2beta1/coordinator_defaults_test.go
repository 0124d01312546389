package v2beta1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestDefaultCoordinatorSpec(t *testing.T) {
	t.Run("schema defaults", func(t *testing.T) {
		var s v2beta1.CoordinatorSpec
		v2beta1.DefaultCoordinatorSpec(&s)
		jsonDiff(t, v2beta1.CoordinatorSpec{Mode: new("auto"), TunePodRoutes: new(true), HostRuleTable: new(500), PodRPFilter: new(0), TxQueueLen: new(0)}, s)
	})
	t.Run("set values kept", func(t *testing.T) {
		s := v2beta1.CoordinatorSpec{Mode: new("overlay"), TunePodRoutes: new(false), HostRuleTable: new(1000), PodRPFilter: new(-1), TxQueueLen: new(5)}
		want := *s.DeepCopy()
		v2beta1.DefaultCoordinatorSpec(&s)
		jsonDiff(t, want, s)
	})
	t.Run("SpiderCoordinator webhook defaults", func(t *testing.T) {
		c := &v2beta1.SpiderCoordinator{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: v2beta1.CoordinatorSpec{PodCIDRType: new("auto"), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10", "fd00::0:1"},
				PolicyRoutes: []v2beta1.Route{{"10.7.0.1", "10.6.0.1"}, {"bad", "10.6.0.1"}}},
		}
		v2beta1.DefaultSpiderCoordinator(c)
		want := &v2beta1.SpiderCoordinator{
			ObjectMeta: metav1.ObjectMeta{Name: "default", Finalizers: []string{v2beta1.Finalizer}},
			Spec: v2beta1.CoordinatorSpec{Mode: new("auto"), PodCIDRType: new("auto"), TunePodRoutes: new(true), HostRuleTable: new(500), PodRPFilter: new(0), TxQueueLen: new(0),
				VethLinkAddress: new(""), VethMTU: new(1500), HijackCIDR: []string{"169.254.0.0/16", "10.96.0.10/32", "fd00::1/128"},
				PolicyRoutes: []v2beta1.Route{{"10.7.0.1/32", "10.6.0.1"}, {"bad", "10.6.0.1"}}},
		}
		jsonDiff(t, want, c)
	})
}
