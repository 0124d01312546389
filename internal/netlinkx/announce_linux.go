package netlinkx

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetMAC sets a link's hardware address.
func SetMAC(l netlink.Link, mac net.HardwareAddr) error {
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("set MAC %s on %s: %w", mac, l.Attrs().Name, err)
	}
	return nil
}

// Announce tells the link's neighbours that ip now lives at the link's MAC: a gratuitous ARP
// request for IPv4, an unsolicited neighbour advertisement with the override flag for IPv6.
func Announce(l netlink.Link, ip netip.Addr) error {
	mac := l.Attrs().HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("announce %s on %s: not an Ethernet link", ip, l.Attrs().Name)
	}
	var err error
	if ip.Is4() {
		err = gratuitousARP(l.Attrs().Index, mac, ip)
	} else {
		err = unsolicitedNA(l.Attrs().Index, mac, ip)
	}
	if err != nil {
		return fmt.Errorf("announce %s on %s: %w", ip, l.Attrs().Name, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func gratuitousARP(ifindex int, mac net.HardwareAddr, ip netip.Addr) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	pkt := make([]byte, 28)
	binary.BigEndian.PutUint16(pkt[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(pkt[2:], 0x0800) // IPv4
	pkt[4], pkt[5] = 6, 4
	binary.BigEndian.PutUint16(pkt[6:], 1) // request: what every stack accepts as gratuitous
	copy(pkt[8:], mac)
	a := ip.As4()
	copy(pkt[14:], a[:])
	copy(pkt[24:], a[:]) // target hardware address stays zero
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return unix.Sendto(fd, pkt, 0, to)
}

func unsolicitedNA(ifindex int, mac net.HardwareAddr, ip netip.Addr) error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// Neighbour discovery messages are only accepted with hop limit 255 (RFC 4861 7.1.2).
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
		return err
	}
	// The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
	msg := make([]byte, 32)
	msg[0] = 136                                    // neighbour advertisement
	binary.BigEndian.PutUint32(msg[4:], 0x20000000) // override
	t := ip.As16()
	copy(msg[8:], t[:])
	msg[24], msg[25] = 2, 1 // target link-layer address option, 8 bytes
	copy(msg[26:], mac)
	to := &unix.SockaddrInet6{ZoneId: uint32(ifindex), Addr: [16]byte{0xff, 0x02, 15: 0x01}}
	return unix.Sendto(fd, msg, 0, to)
}
