package v2beta1

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	cniTypes = []string{CniTypeMacvlan, CniTypeIPvlan, CniTypeVlan, CniTypeSriov, CniTypeOvs, CniTypeIBSriov, CniTypeIPoIB, CniTypeCustom}

	// supportedCNIVersions are the NAD cniVersion values accepted in the cni-version annotation.
	// Upstream stops at 1.0.0; 1.1.0 is accepted as well because our spiderpool, coordinator and
	// ifacer plugins implement that spec version too.
	supportedCNIVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

	ibLinkStates = []string{"auto", "enable", "disable"}
	vlanModes    = []string{"manual", "auto"}
)

// ValidateSpiderMultusConfig applies the rules of docs/design/behaviour.md#spidermultusconfig-admission. A nil cniType means custom, its
// schema default. The check that the target NAD is not owned by another SpiderMultusConfig needs the
// API and is left to the webhook.
func ValidateSpiderMultusConfig(smc *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateMultusAnnotations(smc)...)

	cniType := CniTypeCustom
	if smc.Spec.CniType != nil {
		cniType = *smc.Spec.CniType
	}
	if !slices.Contains(cniTypes, cniType) {
		return append(errs, field.NotSupported(specPath.Child("cniType"), cniType, cniTypes))
	}

	// Exactly the sub-object named by cniType may be present; the others would be silently
	// ignored by the NAD generator, which hides mistakes such as a cniType typo'd to another type.
	spec := &smc.Spec
	present := []struct {
		typ, json string
		set       bool
	}{
		{CniTypeMacvlan, "macvlan", spec.MacvlanConfig != nil},
		{CniTypeIPvlan, "ipvlan", spec.IPVlanConfig != nil},
		{CniTypeVlan, "vlan", spec.VlanConfig != nil},
		{CniTypeSriov, "sriov", spec.SriovConfig != nil},
		{CniTypeOvs, "ovs", spec.OvsConfig != nil},
		{CniTypeIBSriov, "ibsriov", spec.IbSriovConfig != nil},
		{CniTypeIPoIB, "ipoib", spec.IpoibConfig != nil},
		// An empty customCNI counts as absent: `kubectl apply` of a guide's ipvlan object over
		// spiderpool-init's placeholder (cniType custom, customCNI "") keeps the field.
		{CniTypeCustom, "customCNI", spec.CustomCNIConfig != nil && (*spec.CustomCNIConfig != "" || cniType == CniTypeCustom)},
	}
	own := ""
	for _, s := range present {
		if s.typ == cniType {
			own = s.json
		}
	}
	for _, s := range present {
		if s.set && s.typ != cniType {
			errs = append(errs, field.Forbidden(specPath.Child(s.json),
				fmt.Sprintf("cniType %s only supports spec.%s; remove spec.%s", cniType, own, s.json)))
		}
	}

	injects := injectAnnotations(smc)
	switch cniType {
	case CniTypeMacvlan:
		if c := spec.MacvlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "macvlan"))
		} else {
			p := specPath.Child("macvlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
		}
	case CniTypeIPvlan:
		if c := spec.IPVlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ipvlan"))
		} else {
			p := specPath.Child("ipvlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
		}
	case CniTypeVlan:
		if c := spec.VlanConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "vlan"))
		} else {
			p := specPath.Child("vlan")
			errs = append(errs, validateVlanLike(p, c.Master, c.Bond, c.MTU, c.SpiderpoolConfigPools)...)
			errs = append(errs, validateVlanMode(p, c.VlanMode, c.VlanID)...)
		}
	case CniTypeSriov:
		if c := spec.SriovConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "sriov"))
		} else {
			errs = append(errs, validateSriov(specPath.Child("sriov"), c)...)
		}
	case CniTypeIBSriov:
		if c := spec.IbSriovConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ibsriov"))
		} else {
			p := specPath.Child("ibsriov")
			if c.ResourceName == nil || *c.ResourceName == "" {
				errs = append(errs, field.Required(p.Child("resourceName"), "the device-plugin resource of the VFs is required"))
			}
			if c.LinkState != nil && !slices.Contains(ibLinkStates, *c.LinkState) {
				errs = append(errs, field.NotSupported(p.Child("linkState"), *c.LinkState, ibLinkStates))
			}
			errs = append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
		}
	case CniTypeIPoIB:
		if c := spec.IpoibConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ipoib"))
		} else {
			p := specPath.Child("ipoib")
			if ferr := validateIfName(p.Child("master"), c.Master); ferr != nil {
				errs = append(errs, ferr)
			}
			errs = append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
		}
	case CniTypeOvs:
		errs = append(errs, forbidInjection(cniType, injects)...)
		if c := spec.OvsConfig; c == nil {
			errs = append(errs, requiredSubObject(cniType, "ovs"))
		} else {
			errs = append(errs, validateOvs(specPath.Child("ovs"), c)...)
		}
	case CniTypeCustom:
		errs = append(errs, forbidInjection(cniType, injects)...)
		if c := spec.CustomCNIConfig; c != nil && *c != "" {
			var obj map[string]any
			if err := json.Unmarshal([]byte(*c), &obj); err != nil || obj == nil {
				errs = append(errs, field.Invalid(specPath.Child("customCNI"), *c, "must be a JSON object (the whole CNI configuration)"))
			}
		}
	}

	errs = append(errs, ValidateCoordinatorSpec(spec.CoordinatorConfig, specPath.Child("coordinator"))...)
	for i, s := range spec.ChainCNIJsonData {
		// The same test libcni applies when it loads the NAD: a JSON object with a plugin type.
		var conf struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(s), &conf); err != nil {
			errs = append(errs, field.Invalid(specPath.Child("chainCNIJsonData").Index(i), s, "must be a JSON object describing a CNI plugin: "+err.Error()))
		} else if conf.Type == "" {
			errs = append(errs, field.Invalid(specPath.Child("chainCNIJsonData").Index(i), s, `must be a JSON object with a non-empty "type"`))
		}
	}
	return errs
}

// ValidateSpiderMultusConfigUpdate validates newSMC and keeps the generated NAD's name stable: the
// controller would otherwise leave the old NAD behind and Pods referring to it would break. The
// name is the cr-name annotation or the SMC name, so adding, changing or removing the annotation is
// refused unless the resulting name stays the same.
func ValidateSpiderMultusConfigUpdate(newSMC, oldSMC *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	oldName, newName := nadName(oldSMC), nadName(newSMC)
	if oldName != newName {
		errs = append(errs, field.Forbidden(annotationsPath.Key(AnnoMultusConfigName), fmt.Sprintf(
			"is not changeable: the generated NetworkAttachmentDefinition would be renamed from %q to %q", oldName, newName)))
	}
	return append(errs, ValidateSpiderMultusConfig(newSMC)...)
}

func nadName(smc *SpiderMultusConfig) string {
	if n, ok := smc.Annotations[AnnoMultusConfigName]; ok {
		return n
	}
	return smc.Name
}

func validateMultusAnnotations(smc *SpiderMultusConfig) field.ErrorList {
	var errs field.ErrorList
	if n, ok := smc.Annotations[AnnoMultusConfigName]; ok {
		for _, m := range k8svalidation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(annotationsPath.Key(AnnoMultusConfigName), n, "not a valid NetworkAttachmentDefinition name: "+m))
		}
	}
	if v, ok := smc.Annotations[AnnoMultusConfigCNIVersion]; ok && !slices.Contains(supportedCNIVersions, v) {
		errs = append(errs, field.NotSupported(annotationsPath.Key(AnnoMultusConfigCNIVersion), v, supportedCNIVersions))
	}
	return errs
}

func injectAnnotations(smc *SpiderMultusConfig) []string {
	var out []string
	for _, k := range []string{AnnoRDMAResourceInject, AnnoNetworkResourceInject} {
		if _, ok := smc.Annotations[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// forbidInjection rejects resource injection for types whose NAD names no device resource to inject.
func forbidInjection(cniType string, keys []string) field.ErrorList {
	var errs field.ErrorList
	for _, k := range keys {
		errs = append(errs, field.Forbidden(annotationsPath.Key(k),
			fmt.Sprintf("cniType %s does not support RDMA or network resource injection", cniType)))
	}
	return errs
}

func requiredSubObject(cniType, jsonName string) *field.Error {
	return field.Required(specPath.Child(jsonName), fmt.Sprintf("is required when cniType is %s", cniType))
}

// validateVlanLike checks what macvlan, ipvlan and vlan share: masters, bond, mtu, pools.
func validateVlanLike(p *field.Path, masters []string, bond *BondConfig, mtu *int32, pools *SpiderpoolPools) field.ErrorList {
	var errs field.ErrorList
	if len(masters) == 0 {
		errs = append(errs, field.Required(p.Child("master"), "at least one host interface is required"))
	}
	for i, m := range masters {
		if ferr := validateIfName(p.Child("master").Index(i), m); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	// Several masters are only usable through the bond that ifacer builds from them.
	if len(masters) >= 2 {
		switch {
		case bond == nil:
			errs = append(errs, field.Required(p.Child("bond"), "is required when more than one master is given"))
		case bond.Name == "":
			errs = append(errs, field.Required(p.Child("bond", "name"), "is required when more than one master is given"))
		}
	}
	if bond != nil {
		if bond.Name != "" {
			if ferr := validateIfName(p.Child("bond", "name"), bond.Name); ferr != nil {
				errs = append(errs, ferr)
			}
		}
		if bond.Mode < 0 || bond.Mode > 6 {
			errs = append(errs, field.Invalid(p.Child("bond", "mode"), bond.Mode, "must be a bonding mode between 0 (balance-rr) and 6 (balance-alb)"))
		}
	}
	if mtu != nil && *mtu < 0 {
		errs = append(errs, field.Invalid(p.Child("mtu"), *mtu, "must be greater than or equal to 0 (0 keeps the kernel default)"))
	}
	return append(errs, validatePools(p.Child("ippools"), pools, false)...)
}

func validateVlanID(p *field.Path, id *int32) field.ErrorList {
	if id != nil && (*id < 0 || *id > 4094) {
		return field.ErrorList{field.Invalid(p, *id, "must be between 0 and 4094")}
	}
	return nil
}

// validateVlanMode checks the vlan plugin's modes: manual carries the tag here, auto takes it from
// elsewhere and so must not carry one. A nil mode is manual, the schema default.
func validateVlanMode(p *field.Path, mode *string, id *int32) field.ErrorList {
	m := "manual"
	if mode != nil {
		m = *mode
	}
	switch m {
	case "manual":
		if id == nil {
			return field.ErrorList{field.Required(p.Child("vlanID"), "is required when vlanMode is manual")}
		}
		return validateVlanID(p.Child("vlanID"), id)
	case "auto":
		if id != nil {
			return field.ErrorList{field.Forbidden(p.Child("vlanID"), "must not be set when vlanMode is auto")}
		}
		return nil
	default:
		return field.ErrorList{field.NotSupported(p.Child("vlanMode"), m, vlanModes)}
	}
}

func validateSriov(p *field.Path, c *SpiderSRIOVCniConfig) field.ErrorList {
	var errs field.ErrorList
	if c.ResourceName == nil || *c.ResourceName == "" {
		errs = append(errs, field.Required(p.Child("resourceName"), "the device-plugin resource of the VFs is required"))
	}
	errs = append(errs, validateVlanID(p.Child("vlanID"), c.VlanID)...)
	if c.MTU != nil && *c.MTU < 0 {
		errs = append(errs, field.Invalid(p.Child("mtu"), *c.MTU, "must be greater than or equal to 0"))
	}
	if c.MinTxRateMbps != nil && *c.MinTxRateMbps < 0 {
		errs = append(errs, field.Invalid(p.Child("minTxRateMbps"), *c.MinTxRateMbps, "must be greater than or equal to 0"))
	}
	if c.MaxTxRateMbps != nil && *c.MaxTxRateMbps < 0 {
		errs = append(errs, field.Invalid(p.Child("maxTxRateMbps"), *c.MaxTxRateMbps, "must be greater than or equal to 0"))
	}
	if c.MinTxRateMbps != nil && c.MaxTxRateMbps != nil && *c.MinTxRateMbps > *c.MaxTxRateMbps {
		errs = append(errs, field.Invalid(p.Child("minTxRateMbps"), *c.MinTxRateMbps,
			fmt.Sprintf("must not be greater than maxTxRateMbps (%d)", *c.MaxTxRateMbps)))
	}
	return append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
}

func validateOvs(p *field.Path, c *SpiderOvsCniConfig) field.ErrorList {
	var errs field.ErrorList
	if c.BrName == "" {
		errs = append(errs, field.Required(p.Child("bridge"), "the Open vSwitch bridge is required"))
	}
	errs = append(errs, validateVlanID(p.Child("vlan"), c.VlanTag)...)
	for i, t := range c.Trunk {
		tp := p.Child("trunk").Index(i)
		if t == nil {
			errs = append(errs, field.Required(tp, "a trunk entry must not be null"))
			continue
		}
		for _, v := range []struct {
			name string
			id   *uint
		}{{"minID", t.MinID}, {"maxID", t.MaxID}, {"id", t.ID}} {
			if v.id != nil && *v.id > 4094 {
				errs = append(errs, field.Invalid(tp.Child(v.name), *v.id, "must be between 0 and 4094"))
			}
		}
		if t.MinID != nil && t.MaxID != nil && *t.MinID > *t.MaxID {
			errs = append(errs, field.Invalid(tp.Child("minID"), *t.MinID, fmt.Sprintf("must not be greater than maxID (%d)", *t.MaxID)))
		}
	}
	return append(errs, validatePools(p.Child("ippools"), c.SpiderpoolConfigPools, true)...)
}

// validatePools checks the default pool names of a NAD. matchMasterSubnet needs the VF's parent
// interface, which only SR-IOV style types have; the vlan family refuses it.
func validatePools(p *field.Path, pools *SpiderpoolPools, allowMatchMaster bool) field.ErrorList {
	if pools == nil {
		return nil
	}
	var errs field.ErrorList
	if !allowMatchMaster && pools.MatchMasterSubnet != nil && *pools.MatchMasterSubnet {
		errs = append(errs, field.Forbidden(p.Child("matchMasterSubnet"), "is only supported by cniType sriov"))
	}
	for i, n := range pools.IPv4IPPool {
		if ferr := validatePoolNamePattern(p.Child("ipv4").Index(i), n); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	for i, n := range pools.IPv6IPPool {
		if ferr := validatePoolNamePattern(p.Child("ipv6").Index(i), n); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs
}

// validatePoolNamePattern accepts a pool name or a shell pattern over pool names ("rdmarail1-*"),
// matched with filepath.Match by the IPAM plugin.
func validatePoolNamePattern(p *field.Path, s string) *field.Error {
	if !strings.ContainsAny(s, `*?[`) {
		if msgs := k8svalidation.IsDNS1123Subdomain(s); len(msgs) != 0 {
			return field.Invalid(p, s, "not a valid SpiderIPPool name: "+strings.Join(msgs, "; "))
		}
		return nil
	}
	if _, err := filepath.Match(s, ""); err != nil {
		return field.Invalid(p, s, "not a valid pool name pattern: "+err.Error())
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(`.-*?[]!^\`, r)) {
			return field.Invalid(p, s, fmt.Sprintf("character %q cannot appear in a pool name pattern", r))
		}
	}
	return nil
}
