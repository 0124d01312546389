package v2beta1

// DefaultSpiderIPPool fills ipVersion from the subnet, the default/disable flags, the finalizer and
// the ippool-cidr label, rewrites spec.subnet and routes[].dst into canonical network form
// ("10.6.0.1/16" becomes "10.6.0.0/16"), and ips and excludeIPs into their merged canonical form
// ("10.6.0.1", "10.6.0.2-10.6.0.9" become "10.6.0.1-10.6.0.9").
func DefaultSpiderIPPool(pool *SpiderIPPool) {
	spec := &pool.Spec
	if spec.Default == nil {
		spec.Default = new(false)
	}
	if spec.Disable == nil {
		spec.Disable = new(false)
	}
	defaultAddresses(&pool.ObjectMeta, LabelIPPoolCIDR, &spec.IPVersion, &spec.Subnet, &spec.IPs, &spec.ExcludeIPs, spec.Routes)
}
