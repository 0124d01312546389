package ipamtest

import (
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// PoolBuilder builds a SpiderIPPool for tests:
//
//	MakeIPPool("p").Subnet("10.6.0.0/16").IPs("10.6.0.10-10.6.0.20").NodeName("master").Default().Obj()
type PoolBuilder struct {
	pool  v2beta1.SpiderIPPool
	alloc v2beta1.PoolIPAllocations
}

// MakeIPPool starts a pool named name.
func MakeIPPool(name string) *PoolBuilder {
	return &PoolBuilder{pool: v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}}
}

// Subnet sets spec.subnet.
func (b *PoolBuilder) Subnet(cidr string) *PoolBuilder { b.pool.Spec.Subnet = cidr; return b }

// IPVersion sets spec.ipVersion; without it Obj derives it from the subnet
// as the webhook does.
func (b *PoolBuilder) IPVersion(v int64) *PoolBuilder { b.pool.Spec.IPVersion = &v; return b }

// IPs appends to spec.ips.
func (b *PoolBuilder) IPs(ips ...string) *PoolBuilder {
	b.pool.Spec.IPs = append(b.pool.Spec.IPs, ips...)
	return b
}

// ExcludeIPs appends to spec.excludeIPs.
func (b *PoolBuilder) ExcludeIPs(ips ...string) *PoolBuilder {
	b.pool.Spec.ExcludeIPs = append(b.pool.Spec.ExcludeIPs, ips...)
	return b
}

// Gateway sets spec.gateway.
func (b *PoolBuilder) Gateway(gw string) *PoolBuilder { b.pool.Spec.Gateway = &gw; return b }

// Route appends to spec.routes.
func (b *PoolBuilder) Route(dst, gw string) *PoolBuilder {
	b.pool.Spec.Routes = append(b.pool.Spec.Routes, v2beta1.Route{Dst: dst, Gw: gw})
	return b
}

// NodeName appends to spec.nodeName.
func (b *PoolBuilder) NodeName(nodes ...string) *PoolBuilder {
	b.pool.Spec.NodeName = append(b.pool.Spec.NodeName, nodes...)
	return b
}

// NodeAffinity sets spec.nodeAffinity.
func (b *PoolBuilder) NodeAffinity(sel *metav1.LabelSelector) *PoolBuilder {
	b.pool.Spec.NodeAffinity = sel
	return b
}

// NamespaceName appends to spec.namespaceName.
func (b *PoolBuilder) NamespaceName(ns ...string) *PoolBuilder {
	b.pool.Spec.NamespaceName = append(b.pool.Spec.NamespaceName, ns...)
	return b
}

// NamespaceAffinity sets spec.namespaceAffinity.
func (b *PoolBuilder) NamespaceAffinity(sel *metav1.LabelSelector) *PoolBuilder {
	b.pool.Spec.NamespaceAffinity = sel
	return b
}

// PodAffinity sets spec.podAffinity.
func (b *PoolBuilder) PodAffinity(sel *metav1.LabelSelector) *PoolBuilder {
	b.pool.Spec.PodAffinity = sel
	return b
}

// MultusName appends to spec.multusName.
func (b *PoolBuilder) MultusName(names ...string) *PoolBuilder {
	b.pool.Spec.MultusName = append(b.pool.Spec.MultusName, names...)
	return b
}

// Default sets spec.default.
func (b *PoolBuilder) Default() *PoolBuilder { b.pool.Spec.Default = new(true); return b }

// Disable sets spec.disable.
func (b *PoolBuilder) Disable() *PoolBuilder { b.pool.Spec.Disable = new(true); return b }

// Terminating sets a deletion timestamp, as a pool deleted while it still
// holds records (its finalizer keeps it) has.
func (b *PoolBuilder) Terminating() *PoolBuilder {
	b.pool.DeletionTimestamp = &metav1.Time{}
	b.pool.Finalizers = append(b.pool.Finalizers, v2beta1.Finalizer)
	return b
}

// Label sets a label.
func (b *PoolBuilder) Label(key, value string) *PoolBuilder {
	if b.pool.Labels == nil {
		b.pool.Labels = map[string]string{}
	}
	b.pool.Labels[key] = value
	return b
}

// Allocated records addr for the pod "namespace/name" with podUID.
func (b *PoolBuilder) Allocated(addr, pod, podUID string) *PoolBuilder {
	if b.alloc == nil {
		b.alloc = v2beta1.PoolIPAllocations{}
	}
	b.alloc[addr] = v2beta1.PoolIPAllocation{NamespacedName: pod, PodUID: podUID}
	return b
}

// Obj returns the pool. It panics on an encoding failure, which only a
// broken test can cause.
func (b *PoolBuilder) Obj() *v2beta1.SpiderIPPool {
	p := b.pool.DeepCopy()
	if p.Spec.IPVersion == nil {
		if pfx, err := netip.ParsePrefix(p.Spec.Subnet); err == nil {
			v := v2beta1.IPv4
			if pfx.Addr().Is6() {
				v = v2beta1.IPv6
			}
			p.Spec.IPVersion = &v
		}
	}
	if b.alloc != nil {
		if err := p.Status.SetAllocations(b.alloc); err != nil {
			panic(err)
		}
	}
	return p
}

// ReservedIPBuilder builds a SpiderReservedIP for tests.
type ReservedIPBuilder struct {
	r v2beta1.SpiderReservedIP
}

// MakeReservedIP starts a SpiderReservedIP named name.
func MakeReservedIP(name string) *ReservedIPBuilder {
	return &ReservedIPBuilder{r: v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: name}}}
}

// IPVersion sets spec.ipVersion.
func (b *ReservedIPBuilder) IPVersion(v int64) *ReservedIPBuilder { b.r.Spec.IPVersion = &v; return b }

// IPs appends to spec.ips.
func (b *ReservedIPBuilder) IPs(ips ...string) *ReservedIPBuilder {
	b.r.Spec.IPs = append(b.r.Spec.IPs, ips...)
	return b
}

// Obj returns the SpiderReservedIP.
func (b *ReservedIPBuilder) Obj() *v2beta1.SpiderReservedIP { return b.r.DeepCopy() }

// Selector returns a label selector matching the key/value pairs kv.
func Selector(kv ...string) *metav1.LabelSelector {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// PublicCloudPools are the four default pools of the public-cloud guide (SPEC.md 12(a)): one per
// node and NIC, told apart by nodeName and multusName. Each call returns new objects.
func PublicCloudPools() []*v2beta1.SpiderIPPool {
	return []*v2beta1.SpiderIPPool{
		MakeIPPool("master-172").Default().IPs("172.31.199.185-172.31.199.189").Subnet("172.31.192.0/20").
			Gateway("172.31.207.253").NodeName("master").MultusName("kube-system/ipvlan-eth0").Obj(),
		MakeIPPool("master-192").Default().IPs("192.168.0.156-192.168.0.160").Subnet("192.168.0.0/24").
			Gateway("192.168.0.253").NodeName("master").MultusName("kube-system/ipvlan-eth1").Obj(),
		MakeIPPool("worker-172").Default().IPs("172.31.199.190-172.31.199.194").Subnet("172.31.192.0/20").
			Gateway("172.31.207.253").NodeName("worker").MultusName("kube-system/ipvlan-eth0").Obj(),
		MakeIPPool("worker-192").Default().IPs("192.168.0.161-192.168.0.165").Subnet("192.168.0.0/24").
			Gateway("192.168.0.253").NodeName("worker").MultusName("kube-system/ipvlan-eth1").Obj(),
	}
}
