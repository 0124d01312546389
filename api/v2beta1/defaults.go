package v2beta1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The Default* functions are what the mutating webhooks do to an object before the validating
// webhooks see it. They never fail and never corrupt input: a value they cannot interpret is left
// exactly as written so that validation reports it against the user's own text. Each kind's
// function lives in <kind>_defaults.go; this file holds what they share.

// defaultAddresses is what pools and subnets share: the canonical subnet and route destinations,
// ipVersion from the subnet, merged canonical ips and excludeIPs, the CIDR label cidrLabel, and the
// finalizer on objects not being deleted. Storing one spelling per network keeps kubectl output,
// label values and the CEL immutability rule in step with what the components compute.
func defaultAddresses(meta *metav1.ObjectMeta, cidrLabel string, ipVersion **int64, subnet *string, ips, exclude *[]string, routes []Route) {
	*subnet = canonicalCIDR(*subnet)
	for i := range routes {
		routes[i].Dst = canonicalCIDR(routes[i].Dst)
	}
	p, err := ip.ParsePrefixLenient(*subnet)
	if *ipVersion == nil && err == nil {
		*ipVersion = new(int64(ip.Version(p.Addr())))
	}
	version := defaultVersion(*ipVersion)
	*ips = normalizeRanges(*ips, version)
	*exclude = normalizeRanges(*exclude, version)
	if err == nil {
		setLabel(&meta.Labels, cidrLabel, ip.ToLabelValue(*subnet))
	}
	addFinalizer(&meta.Finalizers, meta.DeletionTimestamp == nil)
}

// defaultVersion returns the family to normalise with, or 0 when ipVersion does not name one.
func defaultVersion(v *int64) int {
	if v != nil && (*v == IPv4 || *v == IPv6) {
		return int(*v)
	}
	return 0
}

// normalizeRanges returns the merged canonical form of entries when every entry parses as an
// address or range of version, and entries untouched otherwise (including empty and nil lists, so
// that an absent field stays absent).
func normalizeRanges(entries []string, version int) []string {
	if version == 0 || len(entries) == 0 {
		return entries
	}
	set, err := ip.ParseSet(entries, version)
	if err != nil {
		return entries
	}
	return set.Strings()
}

func setLabel(labels *map[string]string, key, value string) {
	if *labels == nil {
		*labels = map[string]string{}
	}
	(*labels)[key] = value
}

// addFinalizer adds our finalizer unless the object is already being deleted: a finalizer cannot
// be added then, and the API server would refuse the whole update.
func addFinalizer(finalizers *[]string, notDeleting bool) {
	if notDeleting && !slices.Contains(*finalizers, Finalizer) {
		*finalizers = append(*finalizers, Finalizer)
	}
}
