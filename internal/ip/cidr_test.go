package ip

import (
	"errors"
	"net/netip"
	"regexp"
	"testing"
)

func TestParseCIDR(t *testing.T) {
	tests := []struct {
		in        string
		want      string
		wantErr   error
		wantError string
	}{
		{in: "10.6.0.0/16", want: "10.6.0.0/16"},
		{in: "10.6.212.145/32", want: "10.6.212.145/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "fd00::/64", want: "fd00::/64"},
		{in: "FD00:0::/64", want: "fd00::/64"},
		{in: "::/0", want: "::/0"},
		{in: "10.6.1.0/16", wantErr: ErrNotCanonical,
			wantError: `invalid CIDR "10.6.1.0/16": not in canonical network form, want "10.6.0.0/16"`},
		{in: "fd00::1/64", wantErr: ErrNotCanonical,
			wantError: `invalid CIDR "fd00::1/64": not in canonical network form, want "fd00::/64"`},
		{in: "10.6.0.0", wantErr: ErrInvalidCIDR},
		{in: "10.6.0.0/33", wantErr: ErrInvalidCIDR},
		{in: "10.6.0.0/-1", wantErr: ErrInvalidCIDR},
		{in: "10.6.0.0-10.6.0.9", wantErr: ErrInvalidCIDR},
		{in: "fe80::%eth0/64", wantErr: ErrInvalidCIDR},
		{in: "::ffff:10.0.0.0/120", wantErr: ErrMapped},
		{in: "10.6.0.0/16 ", wantErr: ErrWhitespace},
		{in: "", wantErr: ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCIDR(tt.in)
			if ok := IsCanonicalCIDR(tt.in); ok != (tt.wantErr == nil) {
				t.Errorf("IsCanonicalCIDR(%q) = %v", tt.in, ok)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseCIDR(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				if tt.wantError != "" && err.Error() != tt.wantError {
					t.Errorf("error = %q, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseCIDR(%q) = %v, %v, want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestParsePrefixLenient covers the spellings upstream Spiderpool accepts in
// spec.subnet and routes[].dst: each parses to its masked prefix, written
// canonically by FormatPrefix.
func TestParsePrefixLenient(t *testing.T) {
	tests := []struct {
		in      string
		want    string // FormatPrefix of the result
		wantErr error
	}{
		{in: "10.6.0.0/16", want: "10.6.0.0/16"},
		{in: "10.6.0.1/16", want: "10.6.0.0/16"}, // upstream's multi-interface example
		{in: "10.6.212.145/32", want: "10.6.212.145/32"},
		{in: "172.31.199.185/20", want: "172.31.192.0/20"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "192.168.1.1/0", want: "0.0.0.0/0"},
		{in: "2002::ac0f:0/64", want: "2002::/64"}, // upstream's SpiderSubnet example
		{in: "FD00:0::/64", want: "fd00::/64"},
		{in: "fd00:0000:0:0::1/120", want: "fd00::/120"},
		{in: "::1/0", want: "::/0"},
		{in: "::ffff:a00:1/104", want: "::ffff:a00:0/104"}, // IPv4-mapped in hex stays IPv6 and hex
		{in: "10.6.0.1", wantErr: ErrInvalidCIDR},
		{in: "10.6.0.0/33", wantErr: ErrInvalidCIDR},
		{in: "10.6.0.0/016", wantErr: ErrInvalidCIDR},
		{in: "fe80::1%eth0/64", wantErr: ErrInvalidCIDR},
		{in: "::ffff:10.0.0.1/120", wantErr: ErrMapped},
		{in: " 10.6.0.1/16", wantErr: ErrWhitespace},
		{in: "", wantErr: ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefixLenient(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParsePrefixLenient(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefixLenient(%q): %v", tt.in, err)
			}
			if got != got.Masked() {
				t.Errorf("ParsePrefixLenient(%q) = %v, not masked", tt.in, got)
			}
			if s := FormatPrefix(got); s != tt.want {
				t.Errorf("FormatPrefix(ParsePrefixLenient(%q)) = %q, want %q", tt.in, s, tt.want)
			}
			// The canonical spelling is what the strict parser accepts.
			if back, err := ParseCIDR(tt.want); err != nil || back != got {
				t.Errorf("ParseCIDR(%q) = %v, %v, want %v", tt.want, back, err, got)
			}
		})
	}
}

func TestPrefixRange(t *testing.T) {
	tests := []struct {
		prefix string
		want   string
	}{
		{"10.6.0.0/16", "10.6.0.0-10.6.255.255"},
		{"10.6.1.7/16", "10.6.0.0-10.6.255.255"}, // host bits ignored
		{"10.0.0.1/32", "10.0.0.1"},
		{"0.0.0.0/0", "0.0.0.0-255.255.255.255"},
		{"fd00::/64", "fd00::-fd00::ffff:ffff:ffff:ffff"},
		{"fd00::/63", "fd00::-fd00::1:ffff:ffff:ffff:ffff"},
		{"fd00::/65", "fd00::-fd00::7fff:ffff:ffff:ffff"},
		{"fd00::1/128", "fd00::1"},
		{"::/0", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := PrefixRange(netip.MustParsePrefix(tt.prefix)).String(); got != tt.want {
				t.Errorf("PrefixRange(%s) = %s, want %s", tt.prefix, got, tt.want)
			}
		})
	}
	if r := PrefixRange(netip.Prefix{}); r.IsValid() {
		t.Errorf("PrefixRange(invalid) = %v", r)
	}
}

// labelValueRE is the Kubernetes label value syntax (empty or alphanumeric
// at both ends, at most 63 characters).
var labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

func TestToLabelValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"172.31.192.0/20", "172-31-192-0-20"},
		{"10.6.0.0/16", "10-6-0-0-16"},
		{"fd00::/64", "fd00---64"},
		{"fd00:10:6::/112", "fd00-10-6---112"},
		{"::/0", "0"},
		{"::1/128", "1-128"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff-ffff-ffff-ffff-ffff-ffff-ffff-ffff-128"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ToLabelValue(tt.in)
			if got != tt.want {
				t.Errorf("ToLabelValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if len(got) > 63 || !labelValueRE.MatchString(got) {
				t.Errorf("ToLabelValue(%q) = %q is not a valid label value", tt.in, got)
			}
		})
	}
	long := ToLabelValue("1.2.3.4.5.6.7.8.9.0.1.2.3.4.5.6.7.8.9.0.1.2.3.4.5.6.7.8.9.0.1.2.3.4.5.6.7.8.9")
	if len(long) > 63 || !labelValueRE.MatchString(long) {
		t.Errorf("long input gave %q", long)
	}
}
