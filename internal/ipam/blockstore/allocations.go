package blockstore

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// Allocations returns the records of pool wherever they live, in the shape of its status: for a
// pool in block format (ipblock.InBlocks) the union of its SpiderIPBlocks read through reader
// (Records: reader must hold every block of the pool, such as the controller's informer or a live
// client), and for any other pool its status.allocatedIPs decoded, reading nothing. A block-format
// pool's status is the controller's mirror, which lags and is left out past its bound, so code
// that decides about records calls this rather than IPPoolStatus.Allocations. Errors are
// Allocations' and Records' own.
func Allocations(ctx context.Context, reader client.Reader, pool *v2beta1.SpiderIPPool) (v2beta1.PoolIPAllocations, error) {
	if !ipblock.InBlocks(pool) {
		return pool.Status.Allocations()
	}
	recs, err := Records(ctx, reader, pool)
	if err != nil {
		return nil, err
	}
	out := make(v2beta1.PoolIPAllocations, len(recs))
	for a, r := range recs {
		out[ip.FormatAddr(a)] = v2beta1.PoolIPAllocation{NamespacedName: r.Pod, PodUID: r.PodUID}
	}
	return out, nil
}
