package netlinkx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoAnswer means nobody answered a probe within its time.
var ErrNoAnswer = errors.New("no answer")

// Probe timing: a LAN answers ARP and neighbour solicitations in well under a millisecond, so a
// few tries spread over a fraction of a second find a holder without slowing pod start much.
const (
	probeTries    = 3
	probeInterval = 150 * time.Millisecond
)

// ProbeDuplicate asks the link's network whether any host already uses ip, the way duplicate
// address detection does: ARP probes from 0.0.0.0 (RFC 5227) for IPv4, neighbour solicitations
// from :: to the solicited-node group (RFC 4862) for IPv6. It returns the MAC of a host that
// claims ip, or ErrNoAnswer when none did. The link must be up; ip need not be configured.
func ProbeDuplicate(ctx context.Context, ifindex int, mac net.HardwareAddr, ip netip.Addr) (net.HardwareAddr, error) {
	if ip.Is4() {
		return arpExchange(ctx, ifindex, mac, netip.IPv4Unspecified(), ip)
	}
	return ndpExchange(ctx, ifindex, mac, netip.IPv6Unspecified(), ip)
}

// Resolve asks for target's MAC from src (an address of ours, configured or not) on the link:
// an ARP request or a neighbour solicitation. It returns the answering MAC or ErrNoAnswer.
func Resolve(ctx context.Context, ifindex int, mac net.HardwareAddr, src, target netip.Addr) (net.HardwareAddr, error) {
	if target.Is4() {
		return arpExchange(ctx, ifindex, mac, src, target)
	}
	return ndpExchange(ctx, ifindex, mac, src, target)
}

// packetConn is an AF_PACKET datagram socket on one link.
type packetConn struct {
	fd      int
	ifindex int
}

func listenPacket(ifindex int, proto uint16, allMulti bool) (*packetConn, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(proto)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket to link %d: %w", ifindex, err)
	}
	if allMulti {
		mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_ALLMULTI}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("receive multicast on link %d: %w", ifindex, err)
		}
	}
	return &packetConn{fd: fd, ifindex: ifindex}, nil
}

func (c *packetConn) Close() { unix.Close(c.fd) }

func (c *packetConn) send(proto uint16, dst net.HardwareAddr, b []byte) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: c.ifindex, Halen: 6}
	copy(to.Addr[:], dst)
	return unix.Sendto(c.fd, b, 0, to)
}

// exchange sends with send every probeInterval, up to probeTries times, and hands every packet
// received meanwhile to match, until match returns a MAC, the tries run out (ErrNoAnswer) or ctx
// ends.
func (c *packetConn) exchange(ctx context.Context, send func() error, match func(b []byte, from net.HardwareAddr) net.HardwareAddr) (net.HardwareAddr, error) {
	buf := make([]byte, 1600)
	for try := 0; try < probeTries; try++ {
		if err := send(); err != nil {
			return nil, err
		}
		until := time.Now().Add(probeInterval)
		for {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			wait := time.Until(until)
			if wait <= 0 {
				break
			}
			fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(wait/time.Millisecond)+1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("poll: %w", err)
			}
			if n == 0 {
				continue
			}
			for {
				nb, from, err := unix.Recvfrom(c.fd, buf, 0)
				if errors.Is(err, unix.EAGAIN) {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("receive: %w", err)
				}
				ll, ok := from.(*unix.SockaddrLinklayer)
				if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
					continue // our own packets
				}
				src := net.HardwareAddr(append([]byte(nil), ll.Addr[:ll.Halen]...))
				if m := match(buf[:nb], src); m != nil {
					return m, nil
				}
			}
		}
	}
	return nil, ErrNoAnswer
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpExchange sends ARP requests for target from (mac, src) and returns the MAC of whoever
// claims target: an ARP reply from it, or (while probing from 0.0.0.0) another host probing or
// announcing it.
func arpExchange(ctx context.Context, ifindex int, mac net.HardwareAddr, src, target netip.Addr) (net.HardwareAddr, error) {
	c, err := listenPacket(ifindex, unix.ETH_P_ARP, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := make([]byte, 28)
	binary.BigEndian.PutUint16(req[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(req[2:], 0x0800) // IPv4
	req[4], req[5] = 6, 4
	binary.BigEndian.PutUint16(req[6:], 1) // request
	copy(req[8:], mac)
	s, t := src.As4(), target.As4()
	copy(req[14:], s[:])
	copy(req[24:], t[:])
	probing := src.IsUnspecified()
	return c.exchange(ctx,
		func() error { return c.send(unix.ETH_P_ARP, broadcastMAC, req) },
		func(b []byte, from net.HardwareAddr) net.HardwareAddr {
			if len(b) < 28 || binary.BigEndian.Uint16(b[2:]) != 0x0800 || b[4] != 6 || b[5] != 4 {
				return nil
			}
			sha := net.HardwareAddr(b[8:14])
			spa, tpa := netip.AddrFrom4([4]byte(b[14:18])), netip.AddrFrom4([4]byte(b[24:28]))
			if sha.String() == mac.String() {
				return nil
			}
			if spa == target {
				return append(net.HardwareAddr(nil), sha...) // a reply or an announcement of target
			}
			if probing && spa.IsUnspecified() && tpa == target && binary.BigEndian.Uint16(b[6:]) == 1 {
				return append(net.HardwareAddr(nil), sha...) // someone else probing for it right now
			}
			return nil
		})
}

// ndpExchange sends neighbour solicitations for target from (mac, src) and returns the MAC of
// whoever advertises target (or, while probing from ::, solicits it for its own DAD).
func ndpExchange(ctx context.Context, ifindex int, mac net.HardwareAddr, src, target netip.Addr) (net.HardwareAddr, error) {
	c, err := listenPacket(ifindex, unix.ETH_P_IPV6, true)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	t := target.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	groupMAC := net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	probing := src.IsUnspecified()

	icmp := make([]byte, 24, 32)
	icmp[0] = 135 // neighbour solicitation
	copy(icmp[8:], t[:])
	if !probing {
		// The source link-layer address option; a DAD probe must not carry it (RFC 4861 7.1.1).
		icmp = append(icmp, 1, 1)
		icmp = append(icmp, mac...)
	}
	pkt := ipv6Packet(src, group, 58, icmp)
	return c.exchange(ctx,
		func() error { return c.send(unix.ETH_P_IPV6, groupMAC, pkt) },
		func(b []byte, from net.HardwareAddr) net.HardwareAddr {
			if len(b) < 40+24 || b[0]>>4 != 6 || b[6] != 58 || from.String() == mac.String() {
				return nil
			}
			m := b[40:]
			if netip.AddrFrom16([16]byte(m[8:24])) != target {
				return nil
			}
			switch {
			case m[0] == 136: // an advertisement of target
				if mac := targetLinkAddr(m[24:]); mac != nil {
					return mac
				}
				return append(net.HardwareAddr(nil), from...)
			case m[0] == 135 && probing && netip.AddrFrom16([16]byte(b[8:24])).IsUnspecified():
				return append(net.HardwareAddr(nil), from...) // a concurrent DAD for target
			}
			return nil
		})
}

// targetLinkAddr returns the target link-layer address option of a neighbour advertisement.
func targetLinkAddr(opts []byte) net.HardwareAddr {
	for len(opts) >= 8 {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			return nil
		}
		if opts[0] == 2 && l >= 8 {
			return append(net.HardwareAddr(nil), opts[2:8]...)
		}
		opts = opts[l:]
	}
	return nil
}

// ipv6Packet builds an IPv6 packet with hop limit 255 around an ICMPv6 message, filling in the
// ICMPv6 checksum.
func ipv6Packet(src, dst netip.Addr, next byte, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = next, 255
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], payload)
	// Pseudo-header: source, destination, upper-layer length, next header.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	sum += uint32(len(payload)) + uint32(next)
	add(payload)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[40+2:], ^uint16(sum))
	return p
}
