package build

import (
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Pool makes the SpiderIPPool name of subnet. Its ipVersion is taken from subnet, as the mutating
// webhook does; Version sets another, NoVersion leaves it unset as a raw manifest does.
func Pool(name, subnet string, opts ...Option) *v2beta1.SpiderIPPool {
	spec := v2beta1.IPPoolSpec{Subnet: subnet, IPVersion: versionOf(subnet)}
	return made(&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, opts)
}

// Subnet makes the SpiderSubnet name of subnet, with ipVersion taken from subnet as Pool does.
func Subnet(name, subnet string, opts ...Option) *v2beta1.SpiderSubnet {
	spec := v2beta1.SubnetSpec{Subnet: subnet, IPVersion: versionOf(subnet)}
	return made(&v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, opts)
}

// ReservedIP makes the SpiderReservedIP name. Its ipVersion is unset unless Version sets it.
func ReservedIP(name string, opts ...Option) *v2beta1.SpiderReservedIP {
	return made(&v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts)
}

// versionOf is the family of subnet, or nil when it is no CIDR.
func versionOf(subnet string) *int64 {
	p, err := netip.ParsePrefix(subnet)
	switch {
	case err != nil:
		return nil
	case p.Addr().Is6():
		return new(v2beta1.IPv6)
	default:
		return new(v2beta1.IPv4)
	}
}

// Version sets spec.ipVersion of a pool, subnet or reserved IP.
func Version(v int64) Option {
	return func(obj metav1.Object) { *ipVersionOf("Version", obj) = &v }
}

// NoVersion leaves spec.ipVersion of a pool, subnet or reserved IP unset.
func NoVersion() Option {
	return func(obj metav1.Object) { *ipVersionOf("NoVersion", obj) = nil }
}

func ipVersionOf(option string, obj metav1.Object) **int64 {
	switch o := obj.(type) {
	case *v2beta1.SpiderIPPool:
		return &o.Spec.IPVersion
	case *v2beta1.SpiderSubnet:
		return &o.Spec.IPVersion
	case *v2beta1.SpiderReservedIP:
		return &o.Spec.IPVersion
	}
	panic(misuse(option, obj))
}

// IPs sets spec.ips of a pool, subnet or reserved IP.
func IPs(ips ...string) Option {
	return func(obj metav1.Object) {
		switch o := obj.(type) {
		case *v2beta1.SpiderIPPool:
			o.Spec.IPs = ips
		case *v2beta1.SpiderSubnet:
			o.Spec.IPs = ips
		case *v2beta1.SpiderReservedIP:
			o.Spec.IPs = ips
		default:
			panic(misuse("IPs", obj))
		}
	}
}

// ExcludeIPs sets spec.excludeIPs of a pool or subnet.
func ExcludeIPs(ips ...string) Option {
	return func(obj metav1.Object) { *addrOf("ExcludeIPs", obj).excludeIPs = ips }
}

// Gateway sets spec.gateway of a pool or subnet.
func Gateway(gw string) Option {
	return func(obj metav1.Object) { *addrOf("Gateway", obj).gateway = &gw }
}

// Route appends the route to dst via gw to spec.routes of a pool or subnet.
func Route(dst, gw string) Option {
	return func(obj metav1.Object) {
		r := addrOf("Route", obj).routes
		*r = append(*r, v2beta1.Route{Dst: dst, Gw: gw})
	}
}

// addrFields points at the fields pools and subnets share.
type addrFields struct {
	excludeIPs *[]string
	gateway    **string
	routes     *[]v2beta1.Route
}

func addrOf(option string, obj metav1.Object) addrFields {
	switch o := obj.(type) {
	case *v2beta1.SpiderIPPool:
		return addrFields{&o.Spec.ExcludeIPs, &o.Spec.Gateway, &o.Spec.Routes}
	case *v2beta1.SpiderSubnet:
		return addrFields{&o.Spec.ExcludeIPs, &o.Spec.Gateway, &o.Spec.Routes}
	}
	panic(misuse(option, obj))
}

// NodeName sets spec.nodeName of a pool.
func NodeName(nodes ...string) Option {
	return only("NodeName", func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = nodes })
}

// NamespaceName sets spec.namespaceName of a pool.
func NamespaceName(namespaces ...string) Option {
	return only("NamespaceName", func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceName = namespaces })
}

// MultusName sets spec.multusName of a pool.
func MultusName(names ...string) Option {
	return only("MultusName", func(p *v2beta1.SpiderIPPool) { p.Spec.MultusName = names })
}

// PodAffinity sets spec.podAffinity of a pool.
func PodAffinity(sel *metav1.LabelSelector) Option {
	return only("PodAffinity", func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = sel })
}

// NodeAffinity sets spec.nodeAffinity of a pool.
func NodeAffinity(sel *metav1.LabelSelector) Option {
	return only("NodeAffinity", func(p *v2beta1.SpiderIPPool) { p.Spec.NodeAffinity = sel })
}

// NamespaceAffinity sets spec.namespaceAffinity of a pool.
func NamespaceAffinity(sel *metav1.LabelSelector) Option {
	return only("NamespaceAffinity", func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceAffinity = sel })
}

// Default sets spec.default of a pool to true: a cluster default pool.
func Default() Option {
	return only("Default", func(p *v2beta1.SpiderIPPool) { p.Spec.Default = new(true) })
}

// Disable sets spec.disable of a pool to true.
func Disable() Option {
	return only("Disable", func(p *v2beta1.SpiderIPPool) { p.Spec.Disable = new(true) })
}

// Allocated adds to a pool's status the record of addr held by pod ("namespace/name") with podUID.
func Allocated(addr, pod, podUID string) Option {
	return only("Allocated", func(p *v2beta1.SpiderIPPool) {
		a, err := p.Status.Allocations()
		if err != nil {
			panic(err)
		}
		a[addr] = v2beta1.PoolIPAllocation{NamespacedName: pod, PodUID: podUID}
		if err := p.Status.SetAllocations(a); err != nil {
			panic(err)
		}
	})
}

// Allocations sets a pool's status to the records a, which may be empty: allocatedIPCount is then
// 0, as a pool that has given back all its addresses shows.
func Allocations(a v2beta1.PoolIPAllocations) Option {
	return only("Allocations", func(p *v2beta1.SpiderIPPool) {
		if err := p.Status.SetAllocations(a); err != nil {
			panic(err)
		}
	})
}

// AllocatedRaw sets a pool's status.allocatedIPs to raw as written, valid JSON or not.
func AllocatedRaw(raw string) Option {
	return only("AllocatedRaw", func(p *v2beta1.SpiderIPPool) { p.Status.AllocatedIPs = &raw })
}

// Controlled adds to a subnet's status the addresses ips handed to pool.
func Controlled(pool string, ips ...string) Option {
	return only("Controlled", func(s *v2beta1.SpiderSubnet) {
		c, err := s.Status.ControlledPools()
		if err != nil {
			panic(err)
		}
		c[pool] = v2beta1.PoolIPPreAllocation{IPs: ips}
		if err := s.Status.SetControlledPools(c); err != nil {
			panic(err)
		}
	})
}

// ControlledRaw sets a subnet's status.controlledIPPools to raw as written, valid JSON or not.
func ControlledRaw(raw string) Option {
	return only("ControlledRaw", func(s *v2beta1.SpiderSubnet) { s.Status.ControlledIPPools = &raw })
}
