package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDNS(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		out := make([]netip.Addr, len(ss))
		for i, s := range ss {
			out[i] = netip.MustParseAddr(s)
		}
		return out
	}
	long := strings.Repeat("a", 63)
	tests := []struct {
		name    string
		value   string
		want    DNS
		wantErr string
	}{
		{
			name:  "every field",
			value: `{"nameservers":["10.6.0.53","fd00::53"],"domain":"corp.example","search":["corp.example","example."],"options":["ndots:2","rotate"]}`,
			want: DNS{Nameservers: addrs("10.6.0.53", "fd00::53"), Domain: "corp.example",
				Search: []string{"corp.example", "example."}, Options: []string{"ndots:2", "rotate"}},
		},
		{name: "empty object", value: `{}`},
		{name: "empty lists", value: ` {"nameservers":[],"search":[],"options":[]} `},
		{name: "IPv4-mapped in hex", value: `{"nameservers":["::ffff:a00:35"]}`, want: DNS{Nameservers: addrs("::ffff:10.0.0.53")}},
		{name: "underscore label", value: `{"search":["_srv.example"]}`, want: DNS{Search: []string{"_srv.example"}}},

		{name: "not JSON", value: `nameservers: 10.6.0.53`, wantErr: "invalid annotation ipam.spidernet.io/dns: invalid character"},
		{name: "truncated", value: `{"nameservers":["10.6.0.53"]`, wantErr: "invalid annotation ipam.spidernet.io/dns: unexpected EOF"},
		{name: "null", value: `null`, wantErr: "want a JSON object, got null"},
		{name: "array", value: `[]`, wantErr: "cannot unmarshal array"},
		{name: "trailing data", value: `{} {}`, wantErr: "trailing data"},
		{name: "misspelt key", value: `{"nameserver":["10.6.0.53"]}`, wantErr: `unknown field "nameserver"`},
		{name: "nameservers not a list", value: `{"nameservers":"10.6.0.53"}`, wantErr: "nameservers"},
		{name: "bad nameserver", value: `{"nameservers":["10.6.0.53","10.6.0.300"]}`, wantErr: `nameservers[1]: invalid IP address "10.6.0.300"`},
		{name: "nameserver with prefix", value: `{"nameservers":["10.6.0.53/24"]}`, wantErr: `nameservers[0]: invalid IP address`},
		{name: "nameserver with zone", value: `{"nameservers":["fe80::1%eth0"]}`, wantErr: `nameservers[0]: invalid IP address`},
		{name: "nameserver host name", value: `{"nameservers":["dns.example"]}`, wantErr: `nameservers[0]: invalid IP address`},
		{name: "empty nameserver", value: `{"nameservers":[""]}`, wantErr: `nameservers[0]: invalid IP address`},
		{name: "four nameservers", value: `{"nameservers":["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]}`, wantErr: "nameservers: 4 entries, at most 3"},
		{name: "domain with space", value: `{"domain":"corp example"}`, wantErr: `domain: "corp example" is not a DNS name`},
		{name: "domain with newline", value: `{"domain":"corp\nnameserver 6.6.6.6"}`, wantErr: "domain: "},
		{name: "domain of a dot", value: `{"domain":"."}`, wantErr: `domain: "." is not a DNS name`},
		{name: "empty label", value: `{"domain":"a..b"}`, wantErr: "labels must have 1 to 63 bytes"},
		{name: "label too long", value: `{"domain":"` + long + `a.b"}`, wantErr: "labels must have 1 to 63 bytes"},
		{name: "name too long", value: `{"domain":"` + strings.Repeat(long+".", 4) + `"}`, wantErr: "longer than 253 bytes"},
		{name: "bad search entry", value: `{"search":["ok.example","#comment"]}`, wantErr: `search[1]: "#comment" is not a DNS name`},
		{name: "empty search entry", value: `{"search":[""]}`, wantErr: `search[0]: "" is not a DNS name`},
		{name: "too many search entries", value: `{"search":[` + strings.Repeat(`"a",`, 32) + `"a"]}`, wantErr: "search: 33 entries, at most 32"},
		{name: "search list too long", value: `{"search":[` + strings.Repeat(`"`+long+`.`+long+`.`+long+`",`, 12) + `"a"]}`, wantErr: "characters in all, at most 2048"},
		{name: "empty option", value: `{"options":[""]}`, wantErr: "options[0]: empty option"},
		{name: "option with space", value: `{"options":["ndots: 2"]}`, wantErr: `options[0]: option "ndots: 2"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDNS(tc.value)
			checkErr(t, err, tc.wantErr, ErrInvalidAnnotation)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ParseDNS (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseDNS(f *testing.F) {
	for _, s := range []string{
		`{"nameservers":["10.6.0.53","fd00::53"],"domain":"corp.example","search":["a.example"],"options":["ndots:2"]}`,
		`{}`, `null`, `[]`, `{"nameserver":[]}`, `{"nameservers":["::ffff:a00:35"]}`, `{"domain":"a..b"}`,
		`{"search":["x."],"options":["edns0"]} `, `{"options":["a b"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseDNS(value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation", err)
			}
			return
		}
		// Nothing accepted may break a resolv.conf line apart.
		for _, s := range append(append([]string{got.Domain}, got.Search...), got.Options...) {
			if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '#' || r == ';' || r > '~' }) {
				t.Fatalf("accepted %q", s)
			}
		}
		for _, a := range got.Nameservers {
			if !a.IsValid() || a.Zone() != "" {
				t.Fatalf("accepted nameserver %v", a)
			}
		}
		if len(got.Nameservers) > maxDNSNameservers || len(got.Search) > maxDNSSearchPaths {
			t.Fatalf("accepted %d nameservers and %d search domains", len(got.Nameservers), len(got.Search))
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseDNS(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if diff := cmp.Diff(got, again, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("round trip of %s (-first +second):\n%s", b, diff)
		}
	})
}
