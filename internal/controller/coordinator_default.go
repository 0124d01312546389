package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// ensureDefaultCoordinator creates the default SpiderCoordinator (the Helm defaults) if it is missing, retrying until
// it exists or ctx ends. An existing object is never changed: its spec is the user's.
type ensureDefaultCoordinator struct {
	client client.Client
	name   string
}

var _ manager.Runnable = (*ensureDefaultCoordinator)(nil)

// Start implements manager.Runnable; it runs on the leader only.
func (e *ensureDefaultCoordinator) Start(ctx context.Context) error {
	for {
		err := e.client.Create(ctx, v2beta1.HelmDefaultCoordinator(e.name))
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
