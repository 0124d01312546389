package spiderpool

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
)

// buildResult turns the agent's answer into a CNI result for interface ifName.
//
// The agent may answer for several NICs at once (the first request of a pod with the
// ipam.spidernet.io/ippools annotation allocates all of them), so only the addresses and routes
// of ifName are kept. Like host-local, an IPAM result names no interfaces and leaves each IP's
// interface index nil: the main plugin owns the interface and fills them in.
//
// Every address with a gateway gets a default route of its family through that gateway, unless
// the agent's routes for ifName already carry one; a cleaned gateway (the agent leaves Gateway
// empty) therefore means no default route on this NIC.
func buildResult(ifName string, resp *v1.IpamAddResponse) (*types100.Result, error) {
	result := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}

	var routes []*types.Route
	hasDefault := map[int]bool{} // by IP version
	for _, r := range resp.Routes {
		if r.IfName != ifName {
			continue
		}
		route, err := parseRoute(r)
		if err != nil {
			return nil, err
		}
		if ones, _ := route.Dst.Mask.Size(); ones == 0 {
			hasDefault[ipVersion(route.Dst.IP)] = true
		}
		routes = append(routes, route)
	}

	var defaults []*types.Route
	for _, ipc := range resp.IPs {
		if ipc.Nic != ifName {
			continue
		}
		ip, err := parseIPConfig(ipc)
		if err != nil {
			return nil, err
		}
		result.IPs = append(result.IPs, ip)
		if ip.Gateway == nil {
			continue
		}
		version := ipVersion(ip.Address.IP)
		if hasDefault[version] {
			continue
		}
		hasDefault[version] = true
		defaults = append(defaults, &types.Route{Dst: defaultDst(version), GW: ip.Gateway})
	}
	if len(result.IPs) == 0 {
		return nil, fmt.Errorf("spiderpool-agent answered without an address for interface %s", ifName)
	}
	// Default routes first: they are what a reader of the result looks for.
	result.Routes = append(defaults, routes...)

	result.DNS = types.DNS{
		Nameservers: resp.DNS.Nameservers,
		Domain:      resp.DNS.Domain,
		Search:      resp.DNS.Search,
		Options:     resp.DNS.Options,
	}
	return result, nil
}

// parseIPConfig checks one address of the agent's answer; a malformed answer must not reach the
// runtime as a half-configured interface.
func parseIPConfig(ipc v1.IPConfig) (*types100.IPConfig, error) {
	prefix, err := netip.ParsePrefix(ipc.Address)
	if err != nil {
		return nil, fmt.Errorf("spiderpool-agent answered an invalid address %q for %s: %w", ipc.Address, ipc.Nic, err)
	}
	addr := prefix.Addr()
	if addr.Zone() != "" || addr.Is4In6() {
		return nil, fmt.Errorf("spiderpool-agent answered an invalid address %q for %s", ipc.Address, ipc.Nic)
	}
	if want := ipVersionOf(addr); ipc.Version != int64(want) {
		return nil, fmt.Errorf("spiderpool-agent answered address %q for %s as IPv%d", ipc.Address, ipc.Nic, ipc.Version)
	}
	ip := &types100.IPConfig{
		Address: net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(prefix.Bits(), addr.BitLen())},
	}
	if ipc.Gateway != "" {
		gw, err := netip.ParseAddr(ipc.Gateway)
		if err != nil || gw.Zone() != "" || gw.Is4() != addr.Is4() {
			return nil, fmt.Errorf("spiderpool-agent answered an invalid gateway %q for address %s of %s", ipc.Gateway, ipc.Address, ipc.Nic)
		}
		ip.Gateway = net.IP(gw.AsSlice())
	}
	return ip, nil
}

// parseRoute checks one route of the agent's answer. An empty gateway means an on-link route.
func parseRoute(r v1.Route) (*types.Route, error) {
	dst, err := netip.ParsePrefix(r.Dst)
	if err != nil || dst.Addr().Zone() != "" || dst.Addr().Is4In6() {
		return nil, fmt.Errorf("spiderpool-agent answered a route of %s with invalid destination %q", r.IfName, r.Dst)
	}
	dst = dst.Masked()
	route := &types.Route{Dst: net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}}
	if r.Gw != "" {
		gw, err := netip.ParseAddr(r.Gw)
		if err != nil || gw.Zone() != "" || gw.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("spiderpool-agent answered a route %s of %s with invalid gateway %q", r.Dst, r.IfName, r.Gw)
		}
		route.GW = net.IP(gw.AsSlice())
	}
	return route, nil
}

func ipVersionOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func ipVersion(ip net.IP) int {
	if ip.To4() != nil {
		return 4
	}
	return 6
}

func defaultDst(version int) net.IPNet {
	if version == 4 {
		return net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}
