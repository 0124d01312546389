package v2beta1

// DefaultSpiderSubnet does for a SpiderSubnet what DefaultSpiderIPPool does for a pool
// ("2002::ac0f:0/64" becomes "2002::/64").
func DefaultSpiderSubnet(subnet *SpiderSubnet) {
	spec := &subnet.Spec
	defaultAddresses(&subnet.ObjectMeta, LabelSubnetCIDR, &spec.IPVersion, &spec.Subnet, &spec.IPs, &spec.ExcludeIPs, spec.Routes)
}
