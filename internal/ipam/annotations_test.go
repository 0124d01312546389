package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestParsePoolNames(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    PoolNames
		wantErr string
	}{
		{name: "ipv4 only", value: `{"ipv4":["10-6-v4"]}`, want: PoolNames{IPv4: []string{"10-6-v4"}}},
		{name: "dual", value: `{"ipv4":["a","b"],"ipv6":["c"]}`, want: PoolNames{IPv4: []string{"a", "b"}, IPv6: []string{"c"}}},
		{name: "empty lists are nil", value: `{"ipv4":[],"ipv6":[]}`, want: PoolNames{}},
		{name: "wildcard", value: `{"ipv4":["rdmarail1-*"]}`, want: PoolNames{IPv4: []string{"rdmarail1-*"}}},
		{name: "not json", value: `ipv4: a`, wantErr: "invalid annotation ipam.spidernet.io/ippool: invalid character"},
		{name: "wrong type", value: `{"ipv4":"a"}`, wantErr: "cannot unmarshal string"},
		{name: "empty name", value: `{"ipv4":[""]}`, wantErr: "ipv4: element 0: empty pool name"},
		{name: "duplicate", value: `{"ipv6":["a","a"]}`, wantErr: `ipv6: duplicate pool "a"`},
		{name: "bad pattern", value: `{"ipv4":["a["]}`, wantErr: "syntax error in pattern"},
		{name: "white space", value: `{"ipv4":[" a"]}`, wantErr: "white space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePoolNames(v2beta1.AnnoPodIPPool, tc.value)
			checkErr(t, err, tc.wantErr, ErrInvalidAnnotation)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParsePoolNames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInterfacePools(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []InterfacePools
		wantErr string
	}{
		{
			name:  "two NICs",
			value: `[{"interface":"eth0","ipv4":["master-172"]},{"interface":"net1","ipv4":["master-192"],"cleangateway":true}]`,
			want: []InterfacePools{
				{Interface: "eth0", IPv4: []string{"master-172"}},
				{Interface: "net1", IPv4: []string{"master-192"}, CleanGateway: true},
			},
		},
		{name: "interface required", value: `[{"ipv4":["a"]}]`, wantErr: "element 0: interface is required"},
		{name: "duplicate interface", value: `[{"interface":"eth0","ipv4":["a"]},{"interface":"eth0","ipv4":["b"]}]`, wantErr: `element 1: duplicate interface "eth0"`},
		{name: "long interface", value: `[{"interface":"eth0123456789012"}]`, wantErr: "longer than 15 bytes"},
		{name: "duplicate pool", value: `[{"interface":"eth0","ipv4":["a","a"]}]`, wantErr: `interface eth0: ipv4: duplicate pool "a"`},
		{name: "object not list", value: `{"interface":"eth0"}`, wantErr: "cannot unmarshal object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInterfacePools(tc.value)
			checkErr(t, err, tc.wantErr, ErrInvalidAnnotation)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseInterfacePools (-want +got):\n%s", diff)
			}
			if err != nil && !strings.Contains(err.Error(), v2beta1.AnnoPodIPPools) {
				t.Errorf("error %q does not name the annotation", err)
			}
		})
	}
}

func TestParseInterfaceSubnets(t *testing.T) {
	got, err := ParseInterfaceSubnets(`[{"interface":"eth0","ipv4":["subnet-v4"]},{"interface":"net1","ipv6":["subnet-v6"]}]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []InterfaceSubnets{{Interface: "eth0", IPv4: []string{"subnet-v4"}}, {Interface: "net1", IPv6: []string{"subnet-v6"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	_, err = ParseInterfaceSubnets(`[{"interface":"eth0"},{"interface":"eth0"}]`)
	checkErr(t, err, v2beta1.AnnoSpiderSubnets+`: element 1: duplicate interface "eth0"`, ErrInvalidAnnotation)
}

func TestParsePoolList(t *testing.T) {
	got, err := ParsePoolList(v2beta1.AnnoNSDefaultV4Pool, `["ns-v4-ippool1","ns-v4-ippool2"]`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ns-v4-ippool1", "ns-v4-ippool2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for value, wantErr := range map[string]string{
		`"a"`:       "invalid annotation ipam.spidernet.io/default-ipv4-ippool: json: cannot unmarshal string",
		`["a","a"]`: `invalid annotation ipam.spidernet.io/default-ipv4-ippool: duplicate pool "a"`,
		`[""]`:      "element 0: empty pool name",
	} {
		_, err := ParsePoolList(v2beta1.AnnoNSDefaultV4Pool, value)
		checkErr(t, err, wantErr, ErrInvalidAnnotation)
	}
}

func TestParseRoutes(t *testing.T) {
	got, err := ParseRoutes(`[{"dst":"172.10.40.0/24","gw":"172.18.40.1"},{"dst":"fd00::/64","gw":"fd01::1"}]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Dst: netip.MustParsePrefix("172.10.40.0/24"), Gw: netip.MustParseAddr("172.18.40.1")},
		{Dst: netip.MustParsePrefix("fd00::/64"), Gw: netip.MustParseAddr("fd01::1")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Host bits and any IPv6 spelling are accepted, as upstream does, and masked: the kernel
	// refuses a route to 10.0.1.0/16.
	got, err = ParseRoutes(`[{"dst":"10.0.1.0/16","gw":"10.0.0.1"},{"dst":"2002::ac0f:0/64","gw":"2002::1"}]`)
	if err != nil {
		t.Fatal(err)
	}
	want = []Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/16"), Gw: netip.MustParseAddr("10.0.0.1")},
		{Dst: netip.MustParsePrefix("2002::/64"), Gw: netip.MustParseAddr("2002::1")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for value, wantErr := range map[string]string{
		`[{"dst":"10.0.0.0/16","gw":"fd00::1"}]`:                                              "route 0: dst 10.0.0.0/16 and gw fd00::1 are of different IP families",
		`[{"dst":"10.0.1.0/33","gw":"10.0.0.1"}]`:                                             "route 0: dst: ",
		`[{"dst":"10.0.1.0/16","gw":"10.0.0.1"},{"dst":"10.0.0.0/16","gw":"10.0.0.2"}]`:       "route 1: duplicate dst 10.0.0.0/16",
		`[{"dst":"10.0.0.0/16","gw":"10.0.0"}]`:                                               "route 0: gw: ",
		`[{"dst":"10.0.0.0/16","gw":"10.0.0.1"},{"dst":"10.0.0.0/16","gw":"10.0.0.2"}]`:       "route 1: duplicate dst 10.0.0.0/16",
		`{"dst":"10.0.0.0/16","gw":"10.0.0.1"}`:                                               "json: cannot unmarshal object",
		`[{"dst":"10.0.0.0/16"}]`:                                                             "route 0: gw: ",
		`[{"dst":"10.0.0.0/16","gw":"10.0.0.1"}, {"dst":"10.1.0.0/16","gw":"10.1.0.1%eth0"}]`: "route 1: gw: ",
	} {
		_, err := ParseRoutes(value)
		checkErr(t, err, v2beta1.AnnoPodRoutes+": "+wantErr, ErrInvalidAnnotation)
	}
}

// checkErr fails t unless err is nil when wantErr is empty, or contains
// wantErr and wraps target otherwise.
func checkErr(t *testing.T, err error, wantErr string, target error) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want one containing %q", wantErr)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("error %q does not contain %q", err, wantErr)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %v", err, target)
	}
}

func FuzzParsePoolNames(f *testing.F) {
	for _, s := range []string{`{"ipv4":["a"],"ipv6":["b*"]}`, `{}`, `null`, `{"ipv4":["a","a"]}`, `{"IPV4":["x"]}`, `{"ipv4":["a["]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParsePoolNames(v2beta1.AnnoPodIPPool, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) || !strings.Contains(err.Error(), v2beta1.AnnoPodIPPool) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation with the key", err)
			}
			return
		}
		for _, list := range [][]string{got.IPv4, got.IPv6} {
			if list != nil && len(list) == 0 {
				t.Fatal("empty non-nil list")
			}
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePoolNames(v2beta1.AnnoPodIPPool, string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseInterfacePools(f *testing.F) {
	for _, s := range []string{
		`[{"interface":"eth0","ipv4":["master-172"]},{"interface":"net1","ipv4":["master-192"],"cleangateway":true}]`,
		`[{"interface":"eth0"},{"interface":"eth0"}]`, `[]`, `null`, `[{"interface":"a b"}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseInterfacePools(value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range got {
			if e.Interface == "" || seen[e.Interface] {
				t.Fatalf("interface %q empty or duplicated in %+v", e.Interface, got)
			}
			seen[e.Interface] = true
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseInterfacePools(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseInterfaceSubnets(f *testing.F) {
	for _, s := range []string{`[{"interface":"eth0","ipv4":["s4"],"ipv6":["s6"]}]`, `[{"interface":""}]`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseInterfaceSubnets(value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation", err)
			}
			return
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseInterfaceSubnets(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParsePoolList(f *testing.F) {
	for _, s := range []string{`["a","b"]`, `[]`, `["a","a"]`, `[1]`, `["*"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParsePoolList(v2beta1.AnnoNSDefaultV6Pool, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) || !strings.Contains(err.Error(), v2beta1.AnnoNSDefaultV6Pool) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation with the key", err)
			}
			return
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePoolList(v2beta1.AnnoNSDefaultV6Pool, string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !slices.Equal(got, again) {
			t.Fatalf("round trip: %q then %q", got, again)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{
		`[{"dst":"172.10.40.0/24","gw":"172.18.40.1"}]`, `[{"dst":"fd00::/64","gw":"fd01::1"}]`,
		`[{"dst":"0.0.0.0/0","gw":"1.1.1.1"}]`, `[]`, `[{"dst":"::ffff:1.2.3.0/120","gw":"1.2.3.4"}]`,
		`[{"dst":"10.6.0.1/16","gw":"10.6.0.1"}]`, `[{"dst":"::ffff:a00:1/104","gw":"::ffff:a00:1"}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseRoutes(value)
		if err != nil {
			if !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("error %q does not wrap ErrInvalidAnnotation", err)
			}
			return
		}
		for _, r := range got {
			if !r.Dst.IsValid() || !r.Gw.IsValid() || r.Dst.Addr().Is4() != r.Gw.Is4() || r.Dst != r.Dst.Masked() {
				t.Fatalf("accepted bad route %+v", r)
			}
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRoutes(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !slices.Equal(got, again) {
			t.Fatalf("round trip: %v then %v", got, again)
		}
		// Route's own JSON methods agree with ParseRoutes.
		var viaMethods []Route
		if err := json.Unmarshal(b, &viaMethods); err != nil || !slices.Equal(got, viaMethods) {
			t.Fatalf("Route.UnmarshalJSON of %s: %v, %v", b, viaMethods, err)
		}
	})
}
