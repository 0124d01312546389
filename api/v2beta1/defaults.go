package v2beta1

import (
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// The Default* functions are what the mutating webhooks do to an object before the validating
// webhooks see it. They never fail and never corrupt input: a value they cannot interpret is left
// exactly as written so that validation reports it against the user's own text.

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

// DefaultSpiderSubnet does for a SpiderSubnet what DefaultSpiderIPPool does for a pool
// ("2002::ac0f:0/64" becomes "2002::/64").
func DefaultSpiderSubnet(subnet *SpiderSubnet) {
	spec := &subnet.Spec
	defaultAddresses(&subnet.ObjectMeta, LabelSubnetCIDR, &spec.IPVersion, &spec.Subnet, &spec.IPs, &spec.ExcludeIPs, spec.Routes)
}

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

// DefaultCoordinatorSpec applies the CRD schema defaults of SPEC.md 1.6: mode auto, tunePodRoutes
// true, hostRuleTable 500, podRPFilter 0, txQueueLen 0.
func DefaultCoordinatorSpec(spec *CoordinatorSpec) {
	if spec.Mode == nil {
		spec.Mode = new(CoordinatorModeAuto)
	}
	if spec.TunePodRoutes == nil {
		spec.TunePodRoutes = new(true)
	}
	if spec.HostRuleTable == nil {
		spec.HostRuleTable = new(500)
	}
	if spec.PodRPFilter == nil {
		spec.PodRPFilter = new(0)
	}
	if spec.TxQueueLen == nil {
		spec.TxQueueLen = new(0)
	}
}

// DefaultSpiderCoordinator is the mutating webhook of the cluster-wide SpiderCoordinator: the schema
// defaults, then what upstream's webhook adds (vethLinkAddress "", vethMTU 1500, the finalizer) and
// its rewriting of single addresses in hijackCIDR and policyRoutes[].dst into /32 or /128 CIDRs.
// CIDRs there are stored in canonical network form, as spec.subnet of a pool is.
func DefaultSpiderCoordinator(c *SpiderCoordinator) {
	DefaultCoordinatorSpec(&c.Spec)
	if c.Spec.VethLinkAddress == nil {
		c.Spec.VethLinkAddress = new("")
	}
	if c.Spec.VethMTU == nil {
		c.Spec.VethMTU = new(1500)
	}
	for i, s := range c.Spec.HijackCIDR {
		c.Spec.HijackCIDR[i] = canonicalIPOrCIDR(s)
	}
	for i := range c.Spec.PolicyRoutes {
		c.Spec.PolicyRoutes[i].Dst = canonicalIPOrCIDR(c.Spec.PolicyRoutes[i].Dst)
	}
	addFinalizer(&c.ObjectMeta.Finalizers, c.DeletionTimestamp == nil)
}

// canonicalIPOrCIDR turns a single address into its host CIDR and a CIDR into its canonical
// network form, and leaves anything else alone.
func canonicalIPOrCIDR(s string) string {
	if !strings.Contains(s, "/") {
		if a, err := ip.ParseAddr(s); err == nil {
			return ip.FormatPrefix(netip.PrefixFrom(a, a.BitLen()))
		}
		return s
	}
	return canonicalCIDR(s)
}

// DefaultSpiderMultusConfig is the mutating webhook of SpiderMultusConfig, following upstream
// (SPEC.md section 4, "Mutating-webhook defaults that influence the output") field by field, since
// the generated NAD JSON depends on which fields end up set:
//   - cniType defaults to custom; custom gets customCNI "" when unset, and never a coordinator
//     (enableCoordinator false, coordinator nil);
//   - the other types get enableCoordinator true (the schema default) and a coordinator: a missing
//     one becomes {mode auto, tunePodRoutes true, podRPFilter 0, hijackCIDR [], policyRoutes [],
//     vethLinkAddress "", podMACPrefix "", podDefaultRouteNIC ""}, while a given one only has its
//     gaps filled and, unlike the SpiderCoordinator schema, gets tunePodRoutes false (upstream quirk
//     kept on purpose), plus txQueueLen 0, podRPFilter 0 and mode auto;
//   - the sub-object of cniType gets its scalar defaults and ippools {ipv4: [], ipv6: []};
//   - chainCNIJsonData defaults to [], disableIPAM to false;
//   - the resource-injection annotations are copied to labels, which the Pod webhook selects on.
//
// Sub-objects of other types are left alone; validation rejects them.
func DefaultSpiderMultusConfig(smc *SpiderMultusConfig) {
	spec := &smc.Spec
	if spec.CniType == nil {
		spec.CniType = new(CniTypeCustom)
	}
	switch *spec.CniType {
	case CniTypeMacvlan:
		if c := spec.MacvlanConfig; c != nil {
			defaultInt32(&c.VlanID, 0)
			defaultInt32(&c.MTU, 0)
			defaultBond(c.Bond)
			if c.RdmaResourceName == nil {
				c.RdmaResourceName = new("")
			}
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeIPvlan:
		if c := spec.IPVlanConfig; c != nil {
			defaultInt32(&c.VlanID, 0)
			defaultInt32(&c.MTU, 0)
			defaultBond(c.Bond)
			if c.RdmaResourceName == nil {
				c.RdmaResourceName = new("")
			}
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeVlan:
		if c := spec.VlanConfig; c != nil {
			if c.VlanMode == nil {
				c.VlanMode = new("manual")
			}
			if *c.VlanMode == "manual" {
				defaultInt32(&c.VlanID, 0)
			}
			defaultInt32(&c.MTU, 0)
			defaultBond(c.Bond)
			if c.RdmaResourceName == nil {
				c.RdmaResourceName = new("")
			}
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeSriov:
		if c := spec.SriovConfig; c != nil {
			defaultInt32(&c.VlanID, 0)
			defaultInt32(&c.MTU, 0)
			if c.MinTxRateMbps == nil {
				c.MinTxRateMbps = new(0)
			}
			if c.MaxTxRateMbps == nil {
				c.MaxTxRateMbps = new(0)
			}
			if c.RdmaIsolation == nil {
				c.RdmaIsolation = new(false)
			}
			if c.ResourceName == nil {
				c.ResourceName = new("")
			}
			defaultPools(&c.SpiderpoolConfigPools, true)
		}
	case CniTypeIBSriov:
		if c := spec.IbSriovConfig; c != nil {
			if c.Pkey == nil {
				c.Pkey = new("")
			}
			if c.EnableIbKubernetes == nil {
				c.EnableIbKubernetes = new(false)
			}
			if c.RdmaIsolation == nil {
				c.RdmaIsolation = new(true)
			}
			if c.ResourceName == nil {
				c.ResourceName = new("")
			}
			if c.LinkState == nil {
				c.LinkState = new("enable")
			}
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeIPoIB:
		if c := spec.IpoibConfig; c != nil {
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeOvs:
		if c := spec.OvsConfig; c != nil {
			defaultInt32(&c.VlanTag, 0)
			defaultPools(&c.SpiderpoolConfigPools, false)
		}
	case CniTypeCustom:
		if spec.CustomCNIConfig == nil {
			spec.CustomCNIConfig = new("")
		}
	}

	if *spec.CniType == CniTypeCustom {
		spec.CoordinatorConfig = nil
		spec.EnableCoordinator = new(false)
	} else {
		if spec.EnableCoordinator == nil {
			spec.EnableCoordinator = new(true)
		}
		spec.CoordinatorConfig = defaultSMCCoordinator(spec.CoordinatorConfig)
	}
	if spec.DisableIPAM == nil {
		spec.DisableIPAM = new(false)
	}
	if spec.ChainCNIJsonData == nil {
		spec.ChainCNIJsonData = []string{}
	}

	for _, k := range []string{AnnoRDMAResourceInject, AnnoNetworkResourceInject} {
		if v, ok := smc.Annotations[k]; ok {
			setLabel(&smc.ObjectMeta.Labels, k, v)
		}
	}
}

// defaultSMCCoordinator is upstream's setCoordinatorDefaultConfig, quirks included: the NAD's
// coordinator object copies these fields, so any difference shows in the generated JSON.
func defaultSMCCoordinator(c *CoordinatorSpec) *CoordinatorSpec {
	if c == nil {
		return &CoordinatorSpec{
			Mode:               new(CoordinatorModeAuto),
			HijackCIDR:         []string{},
			PolicyRoutes:       []Route{},
			VethLinkAddress:    new(""),
			PodMACPrefix:       new(""),
			PodDefaultRouteNIC: new(""),
			PodRPFilter:        new(0),
			TunePodRoutes:      new(true),
		}
	}
	if c.Mode == nil {
		c.Mode = new(CoordinatorModeAuto)
	}
	if c.HijackCIDR == nil {
		c.HijackCIDR = []string{}
	}
	if c.PolicyRoutes == nil {
		c.PolicyRoutes = []Route{}
	}
	if c.PodMACPrefix == nil {
		c.PodMACPrefix = new("")
	}
	if c.PodDefaultRouteNIC == nil {
		c.PodDefaultRouteNIC = new("")
	}
	if c.TunePodRoutes == nil {
		c.TunePodRoutes = new(false)
	}
	if c.TxQueueLen == nil {
		c.TxQueueLen = new(0)
	}
	if c.PodRPFilter == nil {
		c.PodRPFilter = new(0)
	}
	return c
}

func defaultInt32(p **int32, v int32) {
	if *p == nil {
		*p = new(v)
	}
}

func defaultBond(b *BondConfig) {
	if b != nil && b.Options == nil {
		b.Options = new("")
	}
}

// defaultPools gives a missing ippools the empty lists upstream writes; for sriov, whose NAD may
// carry match_master_subnet, matchMasterSubnet is made explicit as well.
func defaultPools(p **SpiderpoolPools, sriov bool) {
	if *p == nil {
		*p = &SpiderpoolPools{IPv4IPPool: []string{}, IPv6IPPool: []string{}}
		if sriov {
			(*p).MatchMasterSubnet = new(false)
		}
		return
	}
	if sriov && (*p).MatchMasterSubnet == nil {
		(*p).MatchMasterSubnet = new(false)
	}
}
