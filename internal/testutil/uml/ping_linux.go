package uml

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Ping sends ICMP echo requests to dst from the calling thread's network namespace until one is
// answered or ctx ends (neither the host nor the guest has a ping binary). It needs a raw socket,
// hence root. Call it inside ns.Do to ping from a namespace.
func Ping(ctx context.Context, dst netip.Addr) error {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() && !dst.Is4In6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	conn, err := net.ListenPacket(network, "")
	if err != nil {
		return fmt.Errorf("open ICMP socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	id := uint16(os.Getpid())
	to := &net.IPAddr{IP: dst.Unmap().AsSlice(), Zone: dst.Zone()}
	buf := make([]byte, 1500)
	for seq := uint16(1); ; seq++ {
		msg := make([]byte, 16)
		msg[0] = reqType
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		copy(msg[8:], "uml-ping")
		if reqType == 8 { // the kernel computes ICMPv6 checksums itself
			binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		}
		if _, err := conn.WriteTo(msg, to); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ping %s: %w", dst, ctx.Err())
			}
			// No route or no neighbour yet: retry until ctx ends.
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("ping %s: no reply: %w", dst, ctx.Err())
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return fmt.Errorf("ping %s: %w", dst, err)
			}
			a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if !ok || a.Unmap() != dst.Unmap() || n < 8 || buf[0] != replyType {
				continue
			}
			if binary.BigEndian.Uint16(buf[4:]) == id {
				return nil
			}
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
