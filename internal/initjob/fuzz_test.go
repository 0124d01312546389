package initjob

import (
	"strings"
	"testing"
)

// FuzzParseList: entries are never empty, never padded, and a comma-separated input never yields
// an entry with a comma; reparsing the joined entries gives the same list.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"", "[]", "10.0.0.0/8", " a , b ,,c ", `["10.0.0.0/8"," x "]`, `["a,b"]`, "[", `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseList(s)
		if err != nil {
			if !strings.HasPrefix(strings.TrimSpace(s), "[") {
				t.Fatalf("ParseList(%q) failed outside JSON mode: %v", s, err)
			}
			return
		}
		json := strings.HasPrefix(strings.TrimSpace(s), "[")
		for _, e := range got {
			if e == "" || e != strings.TrimSpace(e) {
				t.Fatalf("ParseList(%q) = %q: empty or padded entry %q", s, got, e)
			}
			if !json && strings.Contains(e, ",") {
				t.Fatalf("ParseList(%q) = %q: entry %q holds a comma", s, got, e)
			}
		}
		if json {
			return
		}
		again, err := ParseList(strings.Join(got, ","))
		if err != nil || strings.Join(again, "\x00") != strings.Join(got, "\x00") {
			t.Fatalf("ParseList(%q) = %q, but its join reparses to %q, %v", s, got, again, err)
		}
	})
}

// FuzzParseBool agrees with the spellings the chart may render and refuses everything else.
func FuzzParseBool(f *testing.F) {
	for _, s := range []string{"true", "false", " True ", "1", "0", "", "yes", "t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBool(s)
		switch strings.TrimSpace(s) {
		case "1", "t", "T", "TRUE", "true", "True":
			if err != nil || !b {
				t.Fatalf("ParseBool(%q) = %t, %v; want true", s, b, err)
			}
		case "0", "f", "F", "FALSE", "false", "False":
			if err != nil || b {
				t.Fatalf("ParseBool(%q) = %t, %v; want false", s, b, err)
			}
		default:
			if err == nil {
				t.Fatalf("ParseBool(%q) = %t, want an error", s, b)
			}
		}
	})
}

// FuzzPlanPool: whatever the subnet, ranges and gateway values, Plan either fails naming one of the
// pool's values or yields a pool the validation accepts; it never panics.
func FuzzPlanPool(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.0.10-10.6.0.20", "10.6.0.1")
	f.Add("10.6.0.1/16", "10.6.0.10", "")
	f.Add("fd00::/64", "fd00::1-fd00::ff", "fd00::1")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, subnet, ranges, gateway string) {
		c := DefaultConfig()
		list, err := ParseList(ranges)
		if err != nil {
			return
		}
		c.IPv4Pool = PoolValues{Install: true, PoolName: "p", SubnetName: "s", Subnet: subnet, IPRanges: list, Gateway: gateway}
		p, err := c.Plan()
		if err != nil {
			if !strings.Contains(err.Error(), "clusterDefaultPool.ipv4") {
				t.Fatalf("error names no pool value: %v", err)
			}
			return
		}
		if len(p.Pools) != 1 || len(p.Subnets) != 1 {
			t.Fatalf("Plan = %d pools, %d subnets; want 1 and 1", len(p.Pools), len(p.Subnets))
		}
	})
}
