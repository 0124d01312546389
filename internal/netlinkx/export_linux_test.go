package netlinkx

import (
	"encoding/binary"
)

// IPv6PacketForTest exposes ipv6Packet to the external tests.
var IPv6PacketForTest = ipv6Packet

// ICMPv6ChecksumForTest sums an IPv6 packet's pseudo-header and ICMPv6 message, checksum field
// included: zero for a correct checksum.
func ICMPv6ChecksumForTest(p []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[8:40])
	sum += uint32(len(p)-40) + uint32(p[6])
	add(p[40:])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
