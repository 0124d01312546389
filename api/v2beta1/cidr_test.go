package v2beta1

import (
	"testing"
)

func TestSameCIDR(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.6.0.0/16", "10.6.0.0/16", true},
		{"10.6.0.1/16", "10.6.0.0/16", true},
		{"10.6.0.1/16", "10.6.255.255/16", true},
		{"2002::ac0f:0/64", "2002::/64", true},
		{"FD00:0::/64", "fd00::/64", true},
		{"10.6.0.0/16", "10.6.0.0/24", false},
		{"10.6.0.0/16", "10.7.0.0/16", false},
		{"::ffff:a06:0/112", "10.6.0.0/16", false}, // IPv6, not the IPv4 network it maps
		{"x", "10.6.0.0/16", false},
		{"x", "x", true}, // the same text is the same field value, parsable or not
	}
	for _, tt := range tests {
		if got := SameCIDR(tt.a, tt.b); got != tt.want {
			t.Errorf("SameCIDR(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := SameCIDR(tt.b, tt.a); got != tt.want {
			t.Errorf("SameCIDR(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestSpecVersion(t *testing.T) {
	v := func(n int64) *int64 { return &n }
	tests := []struct {
		name string
		spec IPPoolSpec
		want int
	}{
		{"from ipVersion", IPPoolSpec{IPVersion: v(6), Subnet: "10.6.0.0/16"}, 6},
		{"from a subnet with host bits", IPPoolSpec{Subnet: "10.6.0.1/16"}, 4},
		{"from an IPv6 subnet", IPPoolSpec{Subnet: "2002::ac0f:0/64"}, 6},
		{"ipVersion out of the enum falls back to the subnet", IPPoolSpec{IPVersion: v(5), Subnet: "fd00::/64"}, 6},
		{"nothing to tell", IPPoolSpec{Subnet: "x"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.Version(); got != tt.want {
				t.Errorf("IPPoolSpec.Version() = %d, want %d", got, tt.want)
			}
			s := SubnetSpec{IPVersion: tt.spec.IPVersion, Subnet: tt.spec.Subnet}
			if got := s.Version(); got != tt.want {
				t.Errorf("SubnetSpec.Version() = %d, want %d", got, tt.want)
			}
		})
	}
}
