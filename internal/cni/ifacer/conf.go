package ifacer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/vishvananda/netlink"
)

// Defaults and bounds of docs/reference/cni.md#ifacer.
const (
	DefaultBondName        = "sp_bond0"
	DefaultLogLevel        = "info"
	DefaultLogFile         = cnilog.DefaultDir + "/" + logFileName
	maxVlanID              = 4094
	maxBondMode            = 6 // balance-alb
	maxInterfaceNameLength = 15
)

// logFileName is the log file in cnilog.Dir when logOptions.logFile is not set.
const logFileName = "ifacer.log"

// supportedVersions are the CNI spec versions of configurations (and prevResults) accepted.
var supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// SupportedVersions returns the CNI spec versions the plugin accepts, oldest first.
func SupportedVersions() []string { return slices.Clone(supportedVersions) }

// NetConf is the plugin object of the network configuration.
type NetConf struct {
	types.NetConf

	// Interfaces are the host's parent interfaces, at least one, each listed once. Two or more
	// are bonded (into bond.name, default sp_bond0).
	Interfaces []string `json:"interfaces"`
	// VlanID, 1..4094, adds the VLAN sub-interface "<parent>.<vlanID>" on the bond or the single
	// interface; 0 (the default) adds none. The resulting name must fit in 15 characters.
	VlanID int `json:"vlanID"`
	// Bond configures the bond built from the interfaces; given with one interface, that interface
	// is still enslaved to a bond.
	Bond *BondConf `json:"bond,omitempty"`
	// LogOptions configures the plugin's log file.
	LogOptions LogOptions `json:"logOptions"`

	// Set by loadConf.
	bondOptions []BondOption
}

// BondConf is the bond object.
type BondConf struct {
	// Name of the bond device; default sp_bond0. It must not be one of the interfaces.
	Name string `json:"name"`
	// Mode is the bonding mode, 0 (balance-rr) to 6 (balance-alb).
	Mode int `json:"mode"`
	// Options are extra bond parameters, "key=value" pairs separated by ";", e.g.
	// "miimon=100;xmit_hash_policy=layer3+4". Numbers are sent as numbers, the kernel's names
	// (layer3+4) are translated.
	Options string `json:"options"`
}

// LogOptions is the logOptions object; after loadConf both fields hold their effective values.
type LogOptions struct {
	// LogLevel is debug, info, warn or error (case-insensitive). Default info.
	LogLevel string `json:"logLevel"`
	// LogFile must be a file under /var/log/spidernet (cnilog.Dir): the plugin runs as root and a
	// NetworkAttachmentDefinition's author must not choose which host file it writes. Default
	// ifacer.log in that directory.
	LogFile string `json:"logFile"`
}

// BondOption is one "key=value" of bond.options. Num holds the value when it is a number: numbers
// are sent to the kernel as numbers, names (xmit_hash_policy=layer3+4) are translated.
type BondOption struct {
	Key   string
	Value string
	Num   int
	IsNum bool
}

// loadConf parses and validates the network configuration. Errors name the key.
func loadConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			key := strings.TrimPrefix(typeErr.Field, "NetConf.")
			return nil, fmt.Errorf("parse network configuration: key %q has the wrong type (JSON %s)", key, typeErr.Value)
		}
		return nil, fmt.Errorf("parse network configuration: %w", err)
	}
	if !slices.Contains(supportedVersions, conf.CNIVersion) {
		return nil, fmt.Errorf("unsupported CNI version %q, ifacer supports %v", conf.CNIVersion, supportedVersions)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.NetConf); err != nil {
			return nil, fmt.Errorf("parse prevResult: %w", err)
		}
	}
	if err := conf.validate(); err != nil {
		return nil, fmt.Errorf("invalid network configuration: %w", err)
	}
	return conf, nil
}

func (c *NetConf) validate() error {
	if len(c.Interfaces) == 0 {
		return errors.New("interfaces: at least one interface is required")
	}
	for i, name := range c.Interfaces {
		if err := validIfName(name); err != nil {
			return fmt.Errorf("interfaces[%d]: %w", i, err)
		}
		if slices.Index(c.Interfaces, name) != i {
			return fmt.Errorf("interfaces[%d]: %q is listed twice", i, name)
		}
	}
	if c.VlanID < 0 || c.VlanID > maxVlanID {
		return fmt.Errorf("vlanID: %d out of range 0..%d", c.VlanID, maxVlanID)
	}
	if c.Bond != nil {
		if c.Bond.Name == "" {
			c.Bond.Name = DefaultBondName
		}
		if err := validIfName(c.Bond.Name); err != nil {
			return fmt.Errorf("bond.name: %w", err)
		}
		if slices.Contains(c.Interfaces, c.Bond.Name) {
			return fmt.Errorf("bond.name: %q is also one of interfaces", c.Bond.Name)
		}
		if c.Bond.Mode < 0 || c.Bond.Mode > maxBondMode {
			return fmt.Errorf("bond.mode: %d out of range 0..%d", c.Bond.Mode, maxBondMode)
		}
		opts, err := parseBondOptions(c.Bond.Options)
		if err != nil {
			return fmt.Errorf("bond.options: %w", err)
		}
		c.bondOptions = opts
	}
	if c.VlanID != 0 {
		if name := c.vlanName(); len(name) > maxInterfaceNameLength {
			return fmt.Errorf("vlanID: the VLAN interface name %q is longer than %d characters", name, maxInterfaceNameLength)
		}
	}
	lo := &c.LogOptions
	if lo.LogLevel == "" {
		lo.LogLevel = DefaultLogLevel
	}
	lo.LogLevel = strings.ToLower(lo.LogLevel)
	if _, ok := cnilog.Level(lo.LogLevel); !ok {
		return fmt.Errorf("logOptions.logLevel: %q is not one of debug, info, warn, error", lo.LogLevel)
	}
	path, err := cnilog.Path("logOptions.logFile", lo.LogFile, logFileName)
	if err != nil {
		return err
	}
	lo.LogFile = path
	return nil
}

// bondName returns the bond to ensure, or "" when the interface is used as it is: a bond is made
// when configured or when two or more interfaces are given.
func (c *NetConf) bondName() string {
	switch {
	case c.Bond != nil:
		return c.Bond.Name
	case len(c.Interfaces) >= 2:
		return DefaultBondName
	}
	return ""
}

// base returns the device the VLAN goes on and that the main plugin uses without a VLAN.
func (c *NetConf) base() string {
	if b := c.bondName(); b != "" {
		return b
	}
	return c.Interfaces[0]
}

// vlanName returns "<base>.<vlanID>" (meaningful when VlanID != 0).
func (c *NetConf) vlanName() string { return c.base() + "." + strconv.Itoa(c.VlanID) }

func validIfName(s string) error {
	if len(s) == 0 || len(s) > maxInterfaceNameLength || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\x00") {
		return fmt.Errorf("%q is not a valid interface name", s)
	}
	return nil
}

// bondOptionKind says how a bond option's value is given.
type bondOptionKind int

const (
	optNumber bondOptionKind = iota // a non-negative integer
	optEnum                         // a number or one of the kernel's names
	optIfName                       // an interface name
	optIPs                          // comma-separated IPv4 addresses
	optMAC                          // a MAC address
)

type bondOptionSpec struct {
	kind  bondOptionKind
	names map[string]int // optEnum
	set   func(b *netlink.Bond, o BondOption, ifIndex func(string) (int, error)) error
}

func enumNames[T ~int](m map[string]T) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

func numberOption(f func(b *netlink.Bond) *int) bondOptionSpec {
	return bondOptionSpec{kind: optNumber, set: func(b *netlink.Bond, o BondOption, _ func(string) (int, error)) error {
		*f(b) = o.Num
		return nil
	}}
}

func enumOption[T ~int](m map[string]T, f func(b *netlink.Bond, v T)) bondOptionSpec {
	return bondOptionSpec{kind: optEnum, names: enumNames(m), set: func(b *netlink.Bond, o BondOption, _ func(string) (int, error)) error {
		f(b, T(o.Num))
		return nil
	}}
}

// bondOptions are the options ifacer can set, by their sysfs (and ip-link) names.
var bondOptions = map[string]bondOptionSpec{
	"miimon":            numberOption(func(b *netlink.Bond) *int { return &b.Miimon }),
	"updelay":           numberOption(func(b *netlink.Bond) *int { return &b.UpDelay }),
	"downdelay":         numberOption(func(b *netlink.Bond) *int { return &b.DownDelay }),
	"use_carrier":       numberOption(func(b *netlink.Bond) *int { return &b.UseCarrier }),
	"arp_interval":      numberOption(func(b *netlink.Bond) *int { return &b.ArpInterval }),
	"resend_igmp":       numberOption(func(b *netlink.Bond) *int { return &b.ResendIgmp }),
	"num_grat_arp":      numberOption(func(b *netlink.Bond) *int { return &b.NumPeerNotif }),
	"num_unsol_na":      numberOption(func(b *netlink.Bond) *int { return &b.NumPeerNotif }),
	"all_slaves_active": numberOption(func(b *netlink.Bond) *int { return &b.AllSlavesActive }),
	"min_links":         numberOption(func(b *netlink.Bond) *int { return &b.MinLinks }),
	"lp_interval":       numberOption(func(b *netlink.Bond) *int { return &b.LpInterval }),
	"packets_per_slave": numberOption(func(b *netlink.Bond) *int { return &b.PacketsPerSlave }),
	"ad_actor_sys_prio": numberOption(func(b *netlink.Bond) *int { return &b.AdActorSysPrio }),
	"ad_user_port_key":  numberOption(func(b *netlink.Bond) *int { return &b.AdUserPortKey }),
	"tlb_dynamic_lb":    numberOption(func(b *netlink.Bond) *int { return &b.TlbDynamicLb }),
	"arp_validate": enumOption(netlink.StringToBondArpValidateMap, func(b *netlink.Bond, v netlink.BondArpValidate) {
		b.ArpValidate = v
	}),
	"arp_all_targets": enumOption(netlink.StringToBondArpAllTargetsMap, func(b *netlink.Bond, v netlink.BondArpAllTargets) {
		b.ArpAllTargets = v
	}),
	"primary_reselect": enumOption(netlink.StringToBondPrimaryReselectMap, func(b *netlink.Bond, v netlink.BondPrimaryReselect) {
		b.PrimaryReselect = v
	}),
	"fail_over_mac": enumOption(netlink.StringToBondFailOverMacMap, func(b *netlink.Bond, v netlink.BondFailOverMac) {
		b.FailOverMac = v
	}),
	"xmit_hash_policy": enumOption(netlink.StringToBondXmitHashPolicyMap, func(b *netlink.Bond, v netlink.BondXmitHashPolicy) {
		b.XmitHashPolicy = v
	}),
	"lacp_rate": enumOption(netlink.StringToBondLacpRateMap, func(b *netlink.Bond, v netlink.BondLacpRate) {
		b.LacpRate = v
	}),
	"ad_select": enumOption(netlink.StringToBondAdSelectMap, func(b *netlink.Bond, v netlink.BondAdSelect) {
		b.AdSelect = v
	}),
	"primary": {kind: optIfName, set: func(b *netlink.Bond, o BondOption, ifIndex func(string) (int, error)) error {
		i, err := ifIndex(o.Value)
		if err != nil {
			return err
		}
		b.Primary = i
		return nil
	}},
	"arp_ip_target": {kind: optIPs, set: func(b *netlink.Bond, o BondOption, _ func(string) (int, error)) error {
		for _, s := range strings.Split(o.Value, ",") {
			b.ArpIpTargets = append(b.ArpIpTargets, net.ParseIP(strings.TrimSpace(s)).To4())
		}
		return nil
	}},
	"ad_actor_system": {kind: optMAC, set: func(b *netlink.Bond, o BondOption, _ func(string) (int, error)) error {
		b.AdActorSystem, _ = net.ParseMAC(o.Value)
		return nil
	}},
}

// parseBondOptions parses "k1=v1;k2=v2". Keys are bond options ifacer knows; numeric values
// become numbers, enumerations accept the kernel's names or numbers. Empty items are ignored.
func parseBondOptions(s string) ([]BondOption, error) {
	var out []BondOption
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		spec, known := bondOptions[k]
		if !known {
			return nil, fmt.Errorf("unknown bond option %q", k)
		}
		if seen[k] {
			return nil, fmt.Errorf("option %q given twice", k)
		}
		seen[k] = true
		o := BondOption{Key: k, Value: v}
		if n, err := strconv.Atoi(v); err == nil {
			o.Num, o.IsNum = n, true
		}
		switch spec.kind {
		case optNumber:
			if !o.IsNum || o.Num < 0 || o.Num > 1<<31-1 {
				return nil, fmt.Errorf("option %s: %q is not a non-negative number", k, v)
			}
		case optEnum:
			if o.IsNum {
				if !slices.Contains(mapValues(spec.names), o.Num) {
					return nil, fmt.Errorf("option %s: %d is not one of %s", k, o.Num, enumHelp(spec.names))
				}
				break
			}
			n, ok := spec.names[strings.ToLower(v)]
			if !ok {
				return nil, fmt.Errorf("option %s: %q is not one of %s", k, v, enumHelp(spec.names))
			}
			o.Num = n
		case optIfName:
			if err := validIfName(v); err != nil {
				return nil, fmt.Errorf("option %s: %w", k, err)
			}
		case optIPs:
			for a := range strings.SplitSeq(v, ",") {
				if ip := net.ParseIP(strings.TrimSpace(a)); ip == nil || ip.To4() == nil {
					return nil, fmt.Errorf("option %s: %q is not an IPv4 address", k, a)
				}
			}
		case optMAC:
			if mac, err := net.ParseMAC(v); err != nil || len(mac) != 6 {
				return nil, fmt.Errorf("option %s: %q is not a MAC address", k, v)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func mapValues(m map[string]int) []int {
	var vs []int
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

func enumHelp(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s(%d)", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
