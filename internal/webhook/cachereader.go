package webhook

import (
	"context"
	"errors"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cacheStartPoll is how often a read retries while the manager's cache has not started.
const cacheStartPoll = 50 * time.Millisecond

// cacheReader reads through the manager's cache-backed client once the cache has started. The
// manager starts its webhook server before its caches, and a read in between fails with
// ErrCacheNotStarted; a request arriving then waits the few milliseconds until the start instead
// of being refused. After the start, the informer cache itself makes a read wait until the kind's
// informer has synced, so no rule ever judges against an empty list.
type cacheReader struct {
	client.Reader
}

var _ client.Reader = cacheReader{}

// Get implements client.Reader.
func (r cacheReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return untilCacheStarted(ctx, func() error { return r.Reader.Get(ctx, key, obj, opts...) })
}

// List implements client.Reader.
func (r cacheReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return untilCacheStarted(ctx, func() error { return r.Reader.List(ctx, list, opts...) })
}

func untilCacheStarted(ctx context.Context, read func() error) error {
	for {
		err := read()
		var notStarted *cache.ErrCacheNotStarted
		if !errors.As(err, &notStarted) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(cacheStartPoll):
		}
	}
}
