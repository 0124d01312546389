package ifacer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// ensure makes the bond and the VLAN interface of conf exist and be up in the calling thread's
// namespace, reusing what is already there. On failure it undoes what it did itself (devices it
// created, interfaces it enslaved); devices it found stay as they were.
func ensure(c *NetConf, log *slog.Logger) (err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	links, err := interfaceLinks(c)
	if err != nil {
		return err
	}
	base := links[0]
	if name := c.bondName(); name != "" {
		bond, created, err := ensureBond(c, name, links)
		if err != nil {
			return err
		}
		if created {
			log.Info("created bond", "bond", name, "mode", bond.Mode.String())
			undo = append(undo, func() { _ = netlink.LinkDel(bond) })
		}
		for i, l := range links {
			switch master := l.Attrs().MasterIndex; {
			case master == bond.Index:
				continue
			case master != 0:
				return fmt.Errorf("interfaces[%d] %q is enslaved to %s, not to bond %q", i, l.Attrs().Name, linkName(master), name)
			}
			// The kernel enslaves only interfaces that are down.
			if err := netlink.LinkSetDown(l); err != nil {
				return fmt.Errorf("set %q down to enslave it to bond %q: %w", l.Attrs().Name, name, err)
			}
			if err := netlink.LinkSetMasterByIndex(l, bond.Index); err != nil {
				_ = netlink.LinkSetUp(l)
				return fmt.Errorf("enslave %q to bond %q: %w", l.Attrs().Name, name, err)
			}
			undo = append(undo, func() { _ = netlink.LinkSetNoMaster(l); _ = netlink.LinkSetUp(l) })
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("set bond %q's slave %q up: %w", name, l.Attrs().Name, err)
			}
			log.Info("enslaved interface", "bond", name, "interface", l.Attrs().Name)
		}
		if err := netlink.LinkSetUp(bond); err != nil {
			return fmt.Errorf("set bond %q up: %w", name, err)
		}
		base = bond
	}
	if c.VlanID == 0 {
		return nil
	}
	if err := netlink.LinkSetUp(base); err != nil {
		return fmt.Errorf("set %q up: %w", base.Attrs().Name, err)
	}
	vlan, created, err := ensureVlan(c.vlanName(), base, c.VlanID)
	if err != nil {
		return err
	}
	if created {
		log.Info("created VLAN interface", "vlan", vlan.Name, "parent", base.Attrs().Name, "vlanID", c.VlanID)
		undo = append(undo, func() { _ = netlink.LinkDel(vlan) })
	}
	if err := netlink.LinkSetUp(vlan); err != nil {
		return fmt.Errorf("set VLAN interface %q up: %w", vlan.Name, err)
	}
	return nil
}

// interfaceLinks looks up every configured interface; a missing one is an error naming it.
func interfaceLinks(c *NetConf) ([]netlink.Link, error) {
	links := make([]netlink.Link, len(c.Interfaces))
	for i, name := range c.Interfaces {
		l, err := netlinkx.LinkByName(name)
		if err != nil {
			if netlinkx.IsLinkNotFound(err) {
				return nil, fmt.Errorf("interfaces[%d]: parent interface %q does not exist", i, name)
			}
			return nil, fmt.Errorf("interfaces[%d]: %w", i, err)
		}
		links[i] = l
	}
	return links, nil
}

// ensureBond returns the bond called name, creating it with the configured mode and options when
// it does not exist. An existing device of that name must be a bond, in the configured mode when
// the configuration gives a bond object.
func ensureBond(c *NetConf, name string, slaves []netlink.Link) (*netlink.Bond, bool, error) {
	mode := netlink.BOND_MODE_BALANCE_RR
	if c.Bond != nil {
		mode = netlink.BondMode(c.Bond.Mode)
	}
	for attempt := 0; ; attempt++ {
		b, err := existingBond(c, name, mode)
		if err != nil || b != nil {
			return b, false, err
		}
		nb := netlink.NewLinkBond(netlink.LinkAttrs{Name: name})
		nb.Mode = mode
		ifIndex := func(s string) (int, error) {
			for _, l := range slaves {
				if l.Attrs().Name == s {
					return l.Attrs().Index, nil
				}
			}
			return 0, fmt.Errorf("bond.options: primary %q is not one of interfaces", s)
		}
		for _, o := range c.bondOptions {
			if err := bondOptions[o.Key].set(nb, o, ifIndex); err != nil {
				return nil, false, err
			}
		}
		if err := netlink.LinkAdd(nb); err != nil {
			if errors.Is(err, syscall.EEXIST) && attempt == 0 {
				continue // another ADD made it in the meantime
			}
			opts := ""
			if c.Bond != nil {
				opts = c.Bond.Options
			}
			return nil, false, fmt.Errorf("create bond %q (mode %s, options %q): %w", name, mode, opts, err)
		}
		b, err = existingBond(c, name, mode)
		if err == nil && b == nil {
			err = fmt.Errorf("bond %q vanished after it was created", name)
		}
		return b, err == nil, err
	}
}

// existingBond returns the bond called name, nil when no device has that name.
func existingBond(c *NetConf, name string, mode netlink.BondMode) (*netlink.Bond, error) {
	l, err := netlinkx.LinkByName(name)
	if err != nil {
		if netlinkx.IsLinkNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("bond.name: %w", err)
	}
	b, ok := l.(*netlink.Bond)
	if !ok {
		return nil, fmt.Errorf("bond.name: %q exists but is a %s device, not a bond", name, l.Type())
	}
	if c.Bond != nil && b.Mode != mode {
		return nil, fmt.Errorf("bond.mode: bond %q exists in mode %s (%d), the configuration asks for %s (%d)", name, b.Mode, int(b.Mode), mode, int(mode))
	}
	return b, nil
}

// ensureVlan returns the VLAN interface name with id on parent, creating it when it does not
// exist. An existing device of that name must be a VLAN with that id on that parent.
func ensureVlan(name string, parent netlink.Link, id int) (*netlink.Vlan, bool, error) {
	for attempt := 0; ; attempt++ {
		v, err := existingVlan(name, parent, id)
		if err != nil || v != nil {
			return v, false, err
		}
		nv := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index}, VlanId: id}
		if err := netlink.LinkAdd(nv); err != nil {
			if errors.Is(err, syscall.EEXIST) && attempt == 0 {
				continue
			}
			return nil, false, fmt.Errorf("create VLAN interface %q (id %d on %q): %w", name, id, parent.Attrs().Name, err)
		}
		v, err = existingVlan(name, parent, id)
		if err == nil && v == nil {
			err = fmt.Errorf("VLAN interface %q vanished after it was created", name)
		}
		return v, err == nil, err
	}
}

// existingVlan returns the VLAN interface called name, nil when no device has that name.
func existingVlan(name string, parent netlink.Link, id int) (*netlink.Vlan, error) {
	l, err := netlinkx.LinkByName(name)
	if err != nil {
		if netlinkx.IsLinkNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("vlanID: %w", err)
	}
	v, ok := l.(*netlink.Vlan)
	switch {
	case !ok:
		return nil, fmt.Errorf("vlanID: %q exists but is a %s device, not a VLAN", name, l.Type())
	case v.VlanId != id:
		return nil, fmt.Errorf("vlanID: VLAN interface %q exists with VLAN id %d, the configuration asks for %d", name, v.VlanId, id)
	case v.ParentIndex != parent.Attrs().Index:
		return nil, fmt.Errorf("vlanID: VLAN interface %q exists on %s, the configuration asks for %q", name, linkName(v.ParentIndex), parent.Attrs().Name)
	}
	return v, nil
}

// check verifies what ensure makes: the interfaces, the bond with every interface enslaved, the
// VLAN interface with its id on its parent.
func check(c *NetConf) error {
	links, err := interfaceLinks(c)
	if err != nil {
		return err
	}
	base := links[0]
	if name := c.bondName(); name != "" {
		mode := netlink.BOND_MODE_BALANCE_RR
		if c.Bond != nil {
			mode = netlink.BondMode(c.Bond.Mode)
		}
		b, err := existingBond(c, name, mode)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("bond %q does not exist", name)
		}
		for i, l := range links {
			if l.Attrs().MasterIndex != b.Index {
				return fmt.Errorf("interfaces[%d] %q is not enslaved to bond %q", i, l.Attrs().Name, name)
			}
		}
		if b.Flags&net.FlagUp == 0 {
			return fmt.Errorf("bond %q is down", name)
		}
		base = b
	}
	if c.VlanID == 0 {
		return nil
	}
	v, err := existingVlan(c.vlanName(), base, c.VlanID)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("VLAN interface %q does not exist", c.vlanName())
	}
	if v.Flags&net.FlagUp == 0 {
		return fmt.Errorf("VLAN interface %q is down", v.Name)
	}
	return nil
}

// linkName names ifindex i for messages.
func linkName(i int) string {
	if l, err := netlinkx.LinkByIndex(i); err == nil {
		return fmt.Sprintf("%q", l.Attrs().Name)
	}
	return fmt.Sprintf("ifindex %d", i)
}
