package coordinator

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestResolveMode(t *testing.T) {
	tests := []struct {
		mode     Mode
		ifName   string
		hasVeth0 bool
		want     Mode
		wantErr  string
	}{
		{ModeDisabled, "eth0", false, ModeDisabled, ""},
		{ModeDisabled, "net1", true, ModeDisabled, ""},
		{ModeAuto, "eth0", false, ModeUnderlay, ""},
		{ModeAuto, "eth0", true, ModeUnderlay, ""},
		{ModeAuto, "net1", true, ModeUnderlay, ""},
		{ModeAuto, "net1", false, ModeOverlay, ""},
		{ModeUnderlay, "eth0", false, ModeUnderlay, ""},
		{ModeUnderlay, "net1", true, ModeUnderlay, ""},
		{ModeUnderlay, "net1", false, "", "veth0 is missing"},
		{ModeOverlay, "net1", false, ModeOverlay, ""},
		{ModeOverlay, "eth0", false, "", "first NIC"},
		{ModeOverlay, "net1", true, "", "has veth0"},
		{"bogus", "eth0", false, "", "unknown mode"},
	}
	for _, tt := range tests {
		got, err := resolveMode(tt.mode, tt.ifName, "eth0", tt.hasVeth0)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolveMode(%s, %s, veth0=%v) error = %v, want %q", tt.mode, tt.ifName, tt.hasVeth0, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolveMode(%s, %s, veth0=%v) = %q, %v; want %q", tt.mode, tt.ifName, tt.hasVeth0, got, err, tt.want)
		}
	}
	// A non-default first NIC name.
	if got, err := resolveMode(ModeAuto, "net0", "net0", false); got != ModeUnderlay || err != nil {
		t.Errorf("auto on podDefaultCniNic net0 = %q, %v", got, err)
	}
}

func TestPolicyTable(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		firstNIC bool
		upLinks  int
		want     int
	}{
		{"first NIC underlay", ModeUnderlay, true, 2, 100},
		{"first NIC whatever the count", ModeUnderlay, true, 7, 100},
		{"underlay first secondary: eth0 veth0 net1", ModeUnderlay, false, 3, 101},
		{"underlay second secondary: eth0 veth0 net1 net2", ModeUnderlay, false, 4, 102},
		{"overlay first secondary: eth0 net1", ModeOverlay, false, 2, 101},
		{"overlay second secondary: eth0 net1 net2", ModeOverlay, false, 3, 102},
	}
	for _, tt := range tests {
		if got := policyTable(tt.mode, tt.firstNIC, tt.upLinks); got != tt.want {
			t.Errorf("%s: policyTable = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestPodMACAddress(t *testing.T) {
	prefix := net.HardwareAddr{0x0a, 0x1b}
	tests := []struct {
		addrs []string
		want  string
	}{
		{[]string{"10.6.212.145/16"}, "0a:1b:0a:06:d4:91"},
		{[]string{"fd00:10:6::91/64", "10.6.212.145/16"}, "0a:1b:0a:06:d4:91"},
		{[]string{"fd00:10:6::1:91/64"}, "0a:1b:00:01:00:91"},
	}
	for _, tt := range tests {
		var addrs []netip.Prefix
		for _, a := range tt.addrs {
			addrs = append(addrs, netip.MustParsePrefix(a))
		}
		if got := podMACAddress(prefix, addrs).String(); got != tt.want {
			t.Errorf("podMACAddress(%v) = %s, want %s", tt.addrs, got, tt.want)
		}
	}
}
