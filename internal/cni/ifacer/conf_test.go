package ifacer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// prevResultJSON is a main plugin's result in the given version's shape.
func prevResultJSON(ver string) string {
	ip := `{"interface":0,"address":"10.6.212.145/16","gateway":"10.6.0.1"}`
	if strings.HasPrefix(ver, "0.") {
		ip = `{"version":"4","interface":0,"address":"10.6.212.145/16","gateway":"10.6.0.1"}`
	}
	return fmt.Sprintf(`{"cniVersion":%q,"interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[%s]}`, ver, ip)
}

// confJSON is an ifacer plugin object; extra is spliced in, prev adds a prevResult.
func confJSON(ver, extra string, prev bool) []byte {
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-vlan100","type":"ifacer"`, ver)
	if prev {
		s += `,"prevResult":` + prevResultJSON(ver)
	}
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func TestLoadConf(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "") // the node's default log directory
	tests := []struct {
		name, extra              string
		wantBond, wantBase, vlan string
		wantOpts                 []BondOption
	}{
		{name: "one interface", extra: `"interfaces":["ens192"]`, wantBase: "ens192"},
		{name: "vlan on one interface", extra: `"interfaces":["ens192"],"vlanID":100`, wantBase: "ens192", vlan: "ens192.100"},
		{name: "two interfaces make the default bond", extra: `"interfaces":["ens192","ens224"],"vlanID":4094`,
			wantBond: "sp_bond0", wantBase: "sp_bond0", vlan: "sp_bond0.4094"},
		{name: "bond without a name", extra: `"interfaces":["ens192"],"bond":{"mode":1}`, wantBond: "sp_bond0", wantBase: "sp_bond0"},
		{name: "named bond with options", extra: `"interfaces":["ens192","ens224"],"vlanID":7,
			"bond":{"name":"bond0","mode":4,"options":"miimon=100; lacp_rate=fast ;xmit_hash_policy=layer3+4;primary=ens224;;"}`,
			wantBond: "bond0", wantBase: "bond0", vlan: "bond0.7",
			wantOpts: []BondOption{
				{Key: "miimon", Value: "100", Num: 100, IsNum: true},
				{Key: "lacp_rate", Value: "fast", Num: 1},
				{Key: "xmit_hash_policy", Value: "layer3+4", Num: 1},
				{Key: "primary", Value: "ens224"},
			}},
		{name: "numeric enumeration", extra: `"interfaces":["a","b"],"bond":{"mode":2,"options":"xmit_hash_policy=2;arp_ip_target=10.0.0.1,10.0.0.2;ad_actor_system=02:00:00:00:00:01"}`,
			wantBond: "sp_bond0", wantBase: "sp_bond0",
			wantOpts: []BondOption{
				{Key: "xmit_hash_policy", Value: "2", Num: 2, IsNum: true},
				{Key: "arp_ip_target", Value: "10.0.0.1,10.0.0.2"},
				{Key: "ad_actor_system", Value: "02:00:00:00:00:01"},
			}},
	}
	for _, tt := range tests {
		for _, ver := range allVersions {
			t.Run(tt.name+"/"+ver, func(t *testing.T) {
				c, err := loadConf(confJSON(ver, tt.extra, ver != "0.3.0"))
				if err != nil {
					t.Fatal(err)
				}
				if got := c.bondName(); got != tt.wantBond {
					t.Errorf("bond = %q, want %q", got, tt.wantBond)
				}
				if got := c.base(); got != tt.wantBase {
					t.Errorf("base = %q, want %q", got, tt.wantBase)
				}
				if tt.vlan != "" && c.vlanName() != tt.vlan {
					t.Errorf("vlan = %q, want %q", c.vlanName(), tt.vlan)
				}
				if diff := cmp.Diff(tt.wantOpts, c.bondOptions); diff != "" {
					t.Errorf("bond options (-want +got):\n%s", diff)
				}
				if c.LogOptions.LogLevel != DefaultLogLevel || c.LogOptions.LogFile != DefaultLogFile {
					t.Errorf("logOptions = %+v", c.LogOptions)
				}
				if (c.PrevResult != nil) != (ver != "0.3.0") {
					t.Errorf("prevResult = %v", c.PrevResult)
				}
			})
		}
	}
}

func TestLoadConfErrors(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "")
	tests := []struct{ name, conf, want string }{
		{"no interfaces", string(confJSON("1.0.0", "", false)), "interfaces: at least one interface is required"},
		{"empty interfaces", string(confJSON("1.0.0", `"interfaces":[]`, false)), "interfaces: at least one"},
		{"bad interface name", string(confJSON("1.0.0", `"interfaces":["eth0","a/b"]`, false)), `interfaces[1]: "a/b" is not a valid interface name`},
		{"long interface name", string(confJSON("1.0.0", `"interfaces":["abcdefghijklmnop"]`, false)), `interfaces[0]: "abcdefghijklmnop"`},
		{"duplicate interface", string(confJSON("1.0.0", `"interfaces":["eth0","eth0"]`, false)), `interfaces[1]: "eth0" is listed twice`},
		{"vlanID too big", string(confJSON("1.0.0", `"interfaces":["eth0"],"vlanID":5000`, false)), "vlanID: 5000 out of range 0..4094"},
		{"vlanID negative", string(confJSON("1.0.0", `"interfaces":["eth0"],"vlanID":-1`, false)), "vlanID: -1 out of range 0..4094"},
		{"vlanID 4095", string(confJSON("1.0.0", `"interfaces":["eth0"],"vlanID":4095`, false)), "vlanID: 4095 out of range"},
		{"vlanID a string", string(confJSON("1.0.0", `"interfaces":["eth0"],"vlanID":"100"`, false)), `key "vlanID" has the wrong type (JSON string)`},
		{"interfaces a string", string(confJSON("1.0.0", `"interfaces":"eth0"`, false)), `key "interfaces" has the wrong type`},
		{"vlan name too long", string(confJSON("1.0.0", `"interfaces":["enp0s31f6abc"],"vlanID":1000`, false)), `vlanID: the VLAN interface name "enp0s31f6abc.1000" is longer than 15`},
		{"bond mode", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"mode":7}`, false)), "bond.mode: 7 out of range 0..6"},
		{"bond mode negative", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"mode":-1}`, false)), "bond.mode: -1 out of range 0..6"},
		{"bond name", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"name":"bond 0"}`, false)), `bond.name: "bond 0" is not a valid`},
		{"bond name is an interface", string(confJSON("1.0.0", `"interfaces":["eth0","bond0"],"bond":{"name":"bond0"}`, false)), `bond.name: "bond0" is also one of interfaces`},
		{"bond option unknown", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"speed=fast"}`, false)), `bond.options: unknown bond option "speed"`},
		{"bond option not key=value", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"miimon"}`, false)), `bond.options: "miimon" is not key=value`},
		{"bond option not a number", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"miimon=often"}`, false)), `bond.options: option miimon: "often" is not a non-negative number`},
		{"bond option negative", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"updelay=-5"}`, false)), `option updelay: "-5" is not a non-negative number`},
		{"bond option bad name", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"lacp_rate=sometimes"}`, false)), `option lacp_rate: "sometimes" is not one of fast(1), slow(0)`},
		{"bond option bad number", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"lacp_rate=9"}`, false)), `option lacp_rate: 9 is not one of`},
		{"bond option twice", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"miimon=1;miimon=2"}`, false)), `option "miimon" given twice`},
		{"bond option bad ip", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"arp_ip_target=10.0.0.1,fd00::1"}`, false)), `option arp_ip_target: "fd00::1" is not an IPv4 address`},
		{"bond option bad mac", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":{"options":"ad_actor_system=02:00"}`, false)), `option ad_actor_system: "02:00" is not a MAC address`},
		{"bond a string", string(confJSON("1.0.0", `"interfaces":["eth0"],"bond":"bond0"`, false)), `key "bond" has the wrong type`},
		{"log level", string(confJSON("1.0.0", `"interfaces":["eth0"],"logOptions":{"logLevel":"loud"}`, false)), `logOptions.logLevel: "loud" is not one of`},
		{"log file outside", string(confJSON("1.0.0", `"interfaces":["eth0"],"logOptions":{"logFile":"/etc/shadow"}`, false)), `logOptions.logFile "/etc/shadow": must be a file under /var/log/spidernet`},
		{"log file relative", string(confJSON("1.0.0", `"interfaces":["eth0"],"logOptions":{"logFile":"ifacer.log"}`, false)), `logOptions.logFile "ifacer.log": must be a file under /var/log/spidernet`},
		{"log file ..", string(confJSON("1.0.0", `"interfaces":["eth0"],"logOptions":{"logFile":"/var/log/spidernet/../../etc/shadow"}`, false)), `logOptions.logFile "/var/log/spidernet/../../etc/shadow": must be`},
		{"cni version", string(confJSON("2.0.0", `"interfaces":["eth0"]`, false)), `unsupported CNI version "2.0.0"`},
		{"not json", `{"cniVersion":`, "parse network configuration"},
		{"bad prevResult", `{"cniVersion":"1.0.0","name":"n","type":"ifacer","interfaces":["eth0"],"prevResult":{"ips":[{"address":"x"}]}}`, "parse prevResult"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConf([]byte(tt.conf))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConf error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestPrint checks that ADD's output is prevResult unchanged, or an empty result of the
// configuration's version.
func TestPrint(t *testing.T) {
	for _, ver := range allVersions {
		t.Run(ver, func(t *testing.T) {
			c, err := loadConf(confJSON(ver, `"interfaces":["eth0"]`, true))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := (&plugin{stdout: &out}).print(c); err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("printed %q: %v", out.String(), err)
			}
			_ = json.Unmarshal([]byte(prevResultJSON(ver)), &want)
			if dns, ok := got["dns"].(map[string]any); ok && len(dns) == 0 {
				delete(got, "dns") // the 0.x result types always write one
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("prevResult not printed unchanged (-want +got):\n%s", diff)
			}

			c, err = loadConf(confJSON(ver, `"interfaces":["eth0"]`, false))
			if err != nil {
				t.Fatal(err)
			}
			out.Reset()
			if err := (&plugin{stdout: &out}).print(c); err != nil {
				t.Fatal(err)
			}
			var empty struct {
				CNIVersion string `json:"cniVersion"`
				IPs        []any  `json:"ips"`
			}
			if err := json.Unmarshal(out.Bytes(), &empty); err != nil || empty.CNIVersion != ver || len(empty.IPs) != 0 {
				t.Errorf("empty result = %s (%v)", out.String(), err)
			}
		})
	}
}
