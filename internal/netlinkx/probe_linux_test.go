package netlinkx_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

func TestIPv6PacketChecksum(t *testing.T) {
	// A neighbour solicitation fe80::1 -> ff02::1:ff00:2 for fd00::2: summing the pseudo-header
	// and message with the checksum filled in must give zero (RFC 1071). TestPrivilegedProbes
	// shows that the kernel accepts the solicitations too: it answers them.
	pkt := netlinkx.IPv6PacketForTest(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1:ff00:2"), 58,
		append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, netip.MustParseAddr("fd00::2").AsSlice()...))
	if got := netlinkx.ICMPv6ChecksumForTest(pkt); got != 0 {
		t.Errorf("checksum over the built packet is %#04x, want 0", got)
	}
}

func TestPrivilegedProbes(t *testing.T) {
	prober, holder := testutil.NewNS(t), testutil.NewNS(t)
	p0 := vethIn(t, prober, holder, "p0", "p1")
	var holderMAC string
	testutil.InNS(t, holder, func() error {
		for _, k := range []string{"net/ipv6/conf/p1/accept_dad", "net/ipv6/conf/p1/disable_ipv6"} {
			if err := netlinkx.SetSysctl(k, "0"); err != nil {
				return err
			}
		}
		l, err := netlinkx.LinkByName("p1")
		if err != nil {
			return err
		}
		holderMAC = l.Attrs().HardwareAddr.String()
		for _, p := range []string{"10.9.0.5/24", "fd00:9::5/64"} {
			if err := netlinkx.AddAddr(l, netip.MustParsePrefix(p)); err != nil {
				return err
			}
		}
		return nil
	})
	ctx := context.Background()
	mac := p0.Attrs().HardwareAddr
	idx := p0.Attrs().Index
	for _, c := range []struct {
		name      string
		probe     func() (string, error)
		wantMAC   string
		wantNoAns bool
	}{
		{name: "IPv4 address in use", probe: func() (string, error) {
			m, err := netlinkx.ProbeDuplicate(ctx, idx, mac, netip.MustParseAddr("10.9.0.5"))
			return m.String(), err
		}, wantMAC: holderMAC},
		{name: "IPv4 address free", probe: func() (string, error) {
			m, err := netlinkx.ProbeDuplicate(ctx, idx, mac, netip.MustParseAddr("10.9.0.6"))
			return m.String(), err
		}, wantNoAns: true},
		{name: "IPv6 address in use", probe: func() (string, error) {
			m, err := netlinkx.ProbeDuplicate(ctx, idx, mac, netip.MustParseAddr("fd00:9::5"))
			return m.String(), err
		}, wantMAC: holderMAC},
		{name: "IPv6 address free", probe: func() (string, error) {
			m, err := netlinkx.ProbeDuplicate(ctx, idx, mac, netip.MustParseAddr("fd00:9::6"))
			return m.String(), err
		}, wantNoAns: true},
		{name: "IPv4 gateway answers", probe: func() (string, error) {
			m, err := netlinkx.Resolve(ctx, idx, mac, netip.MustParseAddr("10.9.0.7"), netip.MustParseAddr("10.9.0.5"))
			return m.String(), err
		}, wantMAC: holderMAC},
		{name: "IPv4 gateway missing", probe: func() (string, error) {
			m, err := netlinkx.Resolve(ctx, idx, mac, netip.MustParseAddr("10.9.0.7"), netip.MustParseAddr("10.9.0.1"))
			return m.String(), err
		}, wantNoAns: true},
		{name: "IPv6 gateway answers", probe: func() (string, error) {
			m, err := netlinkx.Resolve(ctx, idx, mac, netip.MustParseAddr("fd00:9::7"), netip.MustParseAddr("fd00:9::5"))
			return m.String(), err
		}, wantMAC: holderMAC},
		{name: "IPv6 gateway missing", probe: func() (string, error) {
			m, err := netlinkx.Resolve(ctx, idx, mac, netip.MustParseAddr("fd00:9::7"), netip.MustParseAddr("fd00:9::1"))
			return m.String(), err
		}, wantNoAns: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got string
			var err error
			testutil.InNS(t, prober, func() error { got, err = c.probe(); return nil })
			switch {
			case c.wantNoAns && !errors.Is(err, netlinkx.ErrNoAnswer):
				t.Errorf("got %s, %v; want ErrNoAnswer", got, err)
			case !c.wantNoAns && (err != nil || got != c.wantMAC):
				t.Errorf("got %s, %v; want %s", got, err, c.wantMAC)
			}
		})
	}
}
