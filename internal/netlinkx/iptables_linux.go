package netlinkx

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// IPTablesRule is one rule of a table's chain, in iptables argument form.
type IPTablesRule struct {
	Table, Chain string
	Spec         []string
}

func (r IPTablesRule) String() string {
	return fmt.Sprintf("-t %s -A %s %s", r.Table, r.Chain, strings.Join(r.Spec, " "))
}

func ipt(family int) (*iptables.IPTables, error) {
	proto := iptables.ProtocolIPv4
	if family == FamilyV6 {
		proto = iptables.ProtocolIPv6
	}
	t, err := iptables.NewWithProtocol(proto)
	if err != nil {
		return nil, fmt.Errorf("iptables (family %d): %w", family, err)
	}
	return t, nil
}

// EnsureIPTablesRules appends each rule unless it exists, with iptables (FamilyV4) or ip6tables
// (FamilyV6), in the current namespace: the binary inherits the calling thread's namespace.
func EnsureIPTablesRules(family int, rules []IPTablesRule) error {
	t, err := ipt(family)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if err := t.AppendUnique(r.Table, r.Chain, r.Spec...); err != nil {
			return fmt.Errorf("iptables %s: %w", r, err)
		}
	}
	return nil
}

// IPTablesRuleExists reports whether the rule exists.
func IPTablesRuleExists(family int, r IPTablesRule) (bool, error) {
	t, err := ipt(family)
	if err != nil {
		return false, err
	}
	ok, err := t.Exists(r.Table, r.Chain, r.Spec...)
	if err != nil {
		return false, fmt.Errorf("iptables check %s: %w", r, err)
	}
	return ok, nil
}

// IPTablesList returns the rules of a chain as iptables -S prints them.
func IPTablesList(family int, table, chain string) ([]string, error) {
	t, err := ipt(family)
	if err != nil {
		return nil, err
	}
	rules, err := t.List(table, chain)
	if err != nil {
		return nil, fmt.Errorf("iptables -t %s -S %s: %w", table, chain, err)
	}
	return rules, nil
}
