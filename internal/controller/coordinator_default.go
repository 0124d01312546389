package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// DefaultCoordinator is the SpiderCoordinator the controller creates when none of that name exists:
// the Helm chart's coordinator.* defaults (SPEC.md 9). spiderpool-init normally creates it with the
// installation's values first; this keeps a cluster installed without it (or after the object was
// deleted) working, since the agent fails coordinator requests while the object is missing.
func DefaultCoordinator(name string) *v2beta1.SpiderCoordinator {
	c := &v2beta1.SpiderCoordinator{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.CoordinatorSpec{
			Mode:            new(v2beta1.CoordinatorModeAuto),
			PodCIDRType:     new(v2beta1.PodCIDRTypeAuto),
			HijackCIDR:      []string{"169.254.0.0/16"},
			TunePodRoutes:   new(true),
			VethLinkAddress: new(""),
			VethMTU:         new(1500),
		},
	}
	v2beta1.DefaultSpiderCoordinator(c)
	return c
}

// ensureDefaultCoordinator creates the default SpiderCoordinator if it is missing, retrying until
// it exists or ctx ends. An existing object is never changed: its spec is the user's.
type ensureDefaultCoordinator struct {
	client client.Client
	name   string
}

var _ manager.Runnable = (*ensureDefaultCoordinator)(nil)

// Start implements manager.Runnable; it runs on the leader only.
func (e *ensureDefaultCoordinator) Start(ctx context.Context) error {
	for {
		err := e.client.Create(ctx, DefaultCoordinator(e.name))
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		// Retried: right after start the webhook that defaults the object may not serve yet.
		select {
		case <-ctx.Done():
			return nil // shutting down; the next leader tries again
		case <-time.After(5 * time.Second):
		}
	}
}
