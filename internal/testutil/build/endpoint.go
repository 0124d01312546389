package build

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Endpoint makes the SpiderEndpoint ns/name, the record of the pod of that name.
func Endpoint(ns, name string, opts ...Option) *v2beta1.SpiderEndpoint {
	return made(&v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, opts)
}

// PodUID sets status.current.uid of an endpoint: the UID of the pod it records.
func PodUID(uid string) Option {
	return only("PodUID", func(ep *v2beta1.SpiderEndpoint) { ep.Status.Current.UID = uid })
}

// TopController sets the kind and name of the top controller of an endpoint's pod.
func TopController(kind, name string) Option {
	return only("TopController", func(ep *v2beta1.SpiderEndpoint) {
		ep.Status.OwnerControllerType, ep.Status.OwnerControllerName = kind, name
	})
}

// IPv4 gives interface nic of an endpoint the address cidr ("10.6.212.145/16") from pool, adding
// the interface when the endpoint does not list it yet.
func IPv4(nic, cidr, pool string) Option {
	return only("IPv4", func(ep *v2beta1.SpiderEndpoint) {
		d := iface(ep, nic)
		d.IPv4, d.IPv4Pool = &cidr, &pool
	})
}

// IPv4Gateway gives interface nic of an endpoint the IPv4 gateway gw, adding the interface when
// the endpoint does not list it yet.
func IPv4Gateway(nic, gw string) Option {
	return only("IPv4Gateway", func(ep *v2beta1.SpiderEndpoint) { iface(ep, nic).IPv4Gateway = &gw })
}

// IPv6 is IPv4 for an IPv6 address.
func IPv6(nic, cidr, pool string) Option {
	return only("IPv6", func(ep *v2beta1.SpiderEndpoint) {
		d := iface(ep, nic)
		d.IPv6, d.IPv6Pool = &cidr, &pool
	})
}

func iface(ep *v2beta1.SpiderEndpoint, nic string) *v2beta1.IPAllocationDetail {
	ips := &ep.Status.Current.IPs
	for i := range *ips {
		if (*ips)[i].NIC == nic {
			return &(*ips)[i]
		}
	}
	*ips = append(*ips, v2beta1.IPAllocationDetail{NIC: nic})
	return &(*ips)[len(*ips)-1]
}
