package webhook

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

var (
	_ admission.Defaulter[*v2beta1.SpiderSubnet] = (*SubnetWebhook)(nil)
	_ admission.Validator[*v2beta1.SpiderSubnet] = (*SubnetWebhook)(nil)
)

// SubnetWebhook defaults and validates SpiderSubnets.
type SubnetWebhook struct {
	// Reader lists subnets and pools; like IPPoolWebhook.Reader it may be a cache (see Setup).
	Reader                 client.Reader
	EnableIPv4, EnableIPv6 bool
}

// Default implements admission.Defaulter.
func (w *SubnetWebhook) Default(_ context.Context, subnet *v2beta1.SpiderSubnet) error {
	v2beta1.DefaultSpiderSubnet(subnet)
	return nil
}

// ValidateCreate implements admission.Validator. A new subnet must not overlap another subnet and
// must hold every address of the pools it is about to control.
func (w *SubnetWebhook) ValidateCreate(ctx context.Context, subnet *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	errs := v2beta1.ValidateSpiderSubnet(subnet, w.EnableIPv4, w.EnableIPv6)
	if len(errs) != 0 {
		return nil, invalid(subnet, errs)
	}
	var subnets v2beta1.SpiderSubnetList
	if err := w.Reader.List(ctx, &subnets); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list SpiderSubnets: %w", err))
	}
	errs = v2beta1.ValidateSubnetOverlap(subnet, subnets.Items)
	var pools v2beta1.SpiderIPPoolList
	if err := w.Reader.List(ctx, &pools); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list SpiderIPPools: %w", err))
	}
	errs = append(errs, v2beta1.ValidateSubnetPools(subnet, pools.Items)...)
	return nil, invalid(subnet, errs)
}

// ValidateUpdate implements admission.Validator. The subnet CIDR is immutable, so overlap cannot
// change; what an update can break is an address a controlled pool holds, which
// ValidateSpiderSubnetUpdate checks against the stored status.
func (w *SubnetWebhook) ValidateUpdate(_ context.Context, oldSubnet, newSubnet *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	if apiequality.Semantic.DeepEqual(oldSubnet.Spec, newSubnet.Spec) {
		return nil, nil
	}
	return nil, invalid(newSubnet, v2beta1.ValidateSpiderSubnetUpdate(newSubnet, oldSubnet, w.EnableIPv4, w.EnableIPv6))
}

// ValidateDelete implements admission.Validator; see IPPoolWebhook.ValidateDelete.
func (w *SubnetWebhook) ValidateDelete(context.Context, *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	return nil, nil
}
