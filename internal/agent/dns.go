package agent

import (
	corev1 "k8s.io/api/core/v1"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// podDNS returns the resolver settings of pod's ipam.spidernet.io/dns annotation (ipam.ParseDNS),
// the zero DNS when the pod has none. An ADD checks it before allocating anything, so that a
// malformed annotation fails the ADD with nothing to undo.
func podDNS(pod *corev1.Pod) (v1.DNS, error) {
	value, ok := pod.Annotations[v2beta1.AnnoPodDNS]
	if !ok {
		return v1.DNS{}, nil
	}
	d, err := ipam.ParseDNS(value)
	if err != nil {
		return v1.DNS{}, err
	}
	return v1.DNS{Nameservers: d.NameserverStrings(), Domain: d.Domain, Search: d.Search, Options: d.Options}, nil
}

// withDNS puts the DNS of pod's annotation into resp, the answer to an ADD whose pod passed
// podDNS. Every interface of the pod gets the same settings.
func withDNS(resp *v1.IpamAddResponse, pod *corev1.Pod) *v1.IpamAddResponse {
	// Checked before the allocation; the pod object has not changed since.
	resp.DNS, _ = podDNS(pod)
	return resp
}
