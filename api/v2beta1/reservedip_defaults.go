package v2beta1

import (
	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// DefaultSpiderReservedIP takes ipVersion from the first entry of ips, as upstream does, and merges
// the entries.
func DefaultSpiderReservedIP(rip *SpiderReservedIP) {
	spec := &rip.Spec
	if spec.IPVersion == nil && len(spec.IPs) > 0 {
		if r, err := ip.ParseRange(spec.IPs[0]); err == nil {
			spec.IPVersion = new(int64(r.Version()))
		}
	}
	spec.IPs = normalizeRanges(spec.IPs, defaultVersion(spec.IPVersion))
}
