package initjob

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
)

// LabelCreatedBy marks the SpiderMultusConfigs spiderpool-init created, the only ones it updates
// later: a SpiderMultusConfig of the same name written by a user is left alone.
const LabelCreatedBy = "spiderpool.spidernet.io/created-by"

const createdByValue = "spiderpool-init"

// multusSkipFile is the configuration file Multus writes for itself; it is never the cluster network.
const multusSkipFile = "00-multus.conf"

// Plan is what a Config asks for, checked offline: the objects as the mutating webhooks would
// leave them, so that comparing them with what the API holds finds real differences only.
type Plan struct {
	Coordinator *v2beta1.SpiderCoordinator // nil when coordinator.enabled is false
	Subnets     []*v2beta1.SpiderSubnet
	Pools       []*v2beta1.SpiderIPPool
	// MultusName is the cluster network's SpiderMultusConfig from defaultCniCRName; zero when the
	// CNI configuration directory decides at run time, or when Multus is not installed.
	MultusName MultusName
}

// MultusName names a SpiderMultusConfig (and so the NetworkAttachmentDefinition it generates).
type MultusName struct{ Namespace, Name string }

// String is the form Multus's clusterNetwork takes.
func (n MultusName) String() string { return n.Namespace + "/" + n.Name }

// Plan validates c and builds the objects it describes. Every error names the Helm value, its
// environment variable and its flag, and the bad input.
func (c *Config) Plan() (*Plan, error) {
	var errs []error
	bad := func(value string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.settingByValue(value).name(), fmt.Sprintf(format, args...)))
	}
	if c.Namespace == "" {
		bad("namespace", "the release namespace is required")
	} else if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("namespace", "%q: %s", c.Namespace, strings.Join(msgs, "; "))
	}

	p := &Plan{}
	if c.Coordinator.Enabled {
		if msgs := validation.IsDNS1123Subdomain(c.Coordinator.Name); len(msgs) > 0 {
			bad("coordinator.name", "%q: %s", c.Coordinator.Name, strings.Join(msgs, "; "))
		}
		co := c.coordinator(nil)
		// The spec's JSON names are the Helm names under coordinator.
		errs = append(errs, c.fieldErrors("coordinator.", nil, v2beta1.ValidateSpiderCoordinator(co))...)
		p.Coordinator = co
	}

	for _, fam := range []struct {
		version int64
		values  PoolValues
		prefix  string // of the Helm value names: clusterDefaultPool.ipv4...
	}{
		{v2beta1.IPv4, c.IPv4Pool, "clusterDefaultPool.ipv4"},
		{v2beta1.IPv6, c.IPv6Pool, "clusterDefaultPool.ipv6"},
	} {
		if !fam.values.Install {
			continue
		}
		v := fam.values
		// The Helm names of the fields of a pool or subnet of this family.
		names := map[string]string{
			"metadata.name":  fam.prefix + "IPPoolName",
			"spec.ipVersion": fam.prefix + "Subnet",
			"spec.subnet":    fam.prefix + "Subnet",
			"spec.ips":       fam.prefix + "IPRanges",
			"spec.gateway":   fam.prefix + "Gateway",
		}
		n := len(errs)
		if v.Subnet == "" {
			bad(fam.prefix+"Subnet", "required when installing the default pool")
		}
		if len(v.IPRanges) == 0 {
			bad(fam.prefix+"IPRanges", "at least one IP or range is required when installing the default pool")
		}
		if msgs := validation.IsDNS1123Subdomain(v.PoolName); len(msgs) > 0 {
			bad(fam.prefix+"IPPoolName", "%q: %s", v.PoolName, strings.Join(msgs, "; "))
		}
		if len(errs) > n {
			continue
		}
		pool := defaultPool(fam.version, v)
		errs = append(errs, c.fieldErrors("", names, v2beta1.ValidateSpiderIPPool(pool, true, true))...)
		if c.SpiderSubnetEnabled {
			if msgs := validation.IsDNS1123Subdomain(v.SubnetName); len(msgs) > 0 {
				bad(fam.prefix+"SubnetName", "%q: %s", v.SubnetName, strings.Join(msgs, "; "))
				continue
			}
			subnet := defaultSubnet(fam.version, v)
			names["metadata.name"] = fam.prefix + "SubnetName"
			errs = append(errs, c.fieldErrors("", names, v2beta1.ValidateSpiderSubnet(subnet, true, true))...)
			errs = append(errs, c.fieldErrors("", names, v2beta1.ValidatePoolInSubnet(pool, subnet))...)
			p.Subnets = append(p.Subnets, subnet)
		}
		p.Pools = append(p.Pools, pool)
	}

	if c.Multus.Install && c.Multus.DefaultCNICRName != "" {
		// The rule Multus's configuration and spiderpool-agent follow too, so that the
		// SpiderMultusConfig made here is the NetworkAttachmentDefinition they name.
		ns, name, err := multusconf.ResolveClusterNetwork(c.Multus.DefaultCNICRName, c.Namespace)
		if err != nil {
			bad("multus.multusCNI.defaultCniCRName", "%v", err)
		}
		p.MultusName = MultusName{Namespace: ns, Name: name}
	}
	// A pool and its subnet share values: the same bad value fails both, but is reported once.
	seen := map[string]bool{}
	errs = slices.DeleteFunc(errs, func(e error) bool {
		dup := seen[e.Error()]
		seen[e.Error()] = true
		return dup
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return p, nil
}

// fieldErrors turns validation errors into errors naming Helm values: names maps a field path
// (without index) to a value; paths not in names become prefix + the path without "spec.".
func (c *Config) fieldErrors(prefix string, names map[string]string, list field.ErrorList) []error {
	var out []error
	for _, fe := range list {
		path := fe.Field
		if i := strings.IndexByte(path, '['); i >= 0 {
			path = path[:i]
		}
		value, ok := names[path]
		if !ok {
			value = prefix + strings.TrimPrefix(path, "spec.")
		}
		out = append(out, fmt.Errorf("%s: %s", c.settingByValue(value).name(), fe.Error()))
	}
	return out
}

// coordinator returns the SpiderCoordinator the values describe. With base (an existing object),
// the fields without a Helm value (podMACPrefix, hostRuleTable, ...) keep base's values: they are
// the user's. Defaults are applied as the mutating webhook applies them.
func (c *Config) coordinator(base *v2beta1.SpiderCoordinator) *v2beta1.SpiderCoordinator {
	co := &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: c.Coordinator.Name}}
	if base != nil {
		co = base.DeepCopy()
	}
	v := c.Coordinator
	s := &co.Spec
	s.Mode = new(v.Mode)
	s.PodCIDRType = new(v.PodCIDRType)
	s.DetectGateway = new(v.DetectGateway)
	s.DetectIPConflict = new(v.DetectIPConflict)
	s.TunePodRoutes = new(v.TunePodRoutes)
	s.HijackCIDR = append([]string(nil), v.HijackCIDR...)
	s.PolicyRoutes = append([]v2beta1.Route(nil), v.PolicyRoutes...)
	s.VethLinkAddress = new(v.VethLinkAddress)
	s.VethMTU = new(v.VethMTU)
	v2beta1.DefaultSpiderCoordinator(co)
	return co
}

func defaultPool(version int64, v PoolValues) *v2beta1.SpiderIPPool {
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: v.PoolName},
		Spec: v2beta1.IPPoolSpec{
			IPVersion: new(version),
			Subnet:    v.Subnet,
			IPs:       append([]string(nil), v.IPRanges...),
			Default:   new(true),
		},
	}
	if v.Gateway != "" {
		pool.Spec.Gateway = new(v.Gateway)
	}
	v2beta1.DefaultSpiderIPPool(pool)
	return pool
}

func defaultSubnet(version int64, v PoolValues) *v2beta1.SpiderSubnet {
	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: v.SubnetName},
		Spec: v2beta1.SubnetSpec{
			IPVersion: new(version),
			Subnet:    v.Subnet,
			IPs:       append([]string(nil), v.IPRanges...),
		},
	}
	if v.Gateway != "" {
		subnet.Spec.Gateway = new(v.Gateway)
	}
	v2beta1.DefaultSpiderSubnet(subnet)
	return subnet
}

// multusConfig returns the custom SpiderMultusConfig of the cluster network: customCNI is the
// network's whole CNI configuration, or "" for a NetworkAttachmentDefinition without configuration
// (Multus then delegates to the name only). ValidateSpiderMultusConfig accepts both.
func multusConfig(n MultusName, customCNI string) *v2beta1.SpiderMultusConfig {
	smc := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: n.Namespace,
			Name:      n.Name,
			Labels:    map[string]string{LabelCreatedBy: createdByValue},
		},
		Spec: v2beta1.MultusCNIConfigSpec{
			CniType:         new(v2beta1.CniTypeCustom),
			CustomCNIConfig: new(customCNI),
		},
	}
	v2beta1.DefaultSpiderMultusConfig(smc)
	return smc
}
