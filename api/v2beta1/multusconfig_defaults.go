package v2beta1

// DefaultSpiderMultusConfig is the mutating webhook of SpiderMultusConfig, following upstream
// (docs/design/behaviour.md#spidermultusconfig-admission) field by field, since
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
			defaultVlanLike(&c.MTU, c.Bond, &c.RdmaResourceName, &c.SpiderpoolConfigPools)
		}
	case CniTypeIPvlan:
		if c := spec.IPVlanConfig; c != nil {
			defaultInt32(&c.VlanID, 0)
			defaultVlanLike(&c.MTU, c.Bond, &c.RdmaResourceName, &c.SpiderpoolConfigPools)
		}
	case CniTypeVlan:
		if c := spec.VlanConfig; c != nil {
			if c.VlanMode == nil {
				c.VlanMode = new("manual")
			}
			if *c.VlanMode == "manual" {
				defaultInt32(&c.VlanID, 0)
			}
			defaultVlanLike(&c.MTU, c.Bond, &c.RdmaResourceName, &c.SpiderpoolConfigPools)
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

// defaultVlanLike fills what macvlan, ipvlan and vlan share: mtu 0, the bond's options "",
// rdmaResourceName "" and the ippools of defaultPools.
func defaultVlanLike(mtu **int32, bond *BondConfig, rdmaResourceName **string, pools **SpiderpoolPools) {
	defaultInt32(mtu, 0)
	defaultBond(bond)
	if *rdmaResourceName == nil {
		*rdmaResourceName = new("")
	}
	defaultPools(pools, false)
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
