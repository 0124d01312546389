package ifacer

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// FuzzLoadConf checks that no input panics loadConf and that an accepted configuration names
// valid devices: interfaces, bond and VLAN names the kernel can take, options ifacer can set; and
// a log file under /var/log/spidernet.
func FuzzLoadConf(f *testing.F) {
	for _, ver := range allVersions {
		f.Add(confJSON(ver, `"interfaces":["ens192"],"vlanID":100`, true))
	}
	f.Add(confJSON("1.0.0", `"interfaces":["ens192","ens224"],"vlanID":7,"bond":{"name":"bond0","mode":4,"options":"miimon=100;lacp_rate=fast;xmit_hash_policy=layer3+4;primary=ens224"}`, false))
	f.Add(confJSON("1.1.0", `"interfaces":["a","b"],"bond":{"options":"arp_ip_target=10.0.0.1,10.0.0.2;ad_actor_system=02:00:00:00:00:01;arp_validate=3"}`, false))
	f.Add(confJSON("1.0.0", `"interfaces":["eth0"],"logOptions":{"logFile":"/var/log/spidernet/../../etc/shadow"}`, false))
	f.Add([]byte(`{}`))
	f.Setenv(cnilog.DirEnv, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := loadConf(data)
		if err != nil {
			return
		}
		if len(c.Interfaces) == 0 || c.VlanID < 0 || c.VlanID > maxVlanID {
			t.Fatalf("accepted interfaces %q, vlanID %d", c.Interfaces, c.VlanID)
		}
		names := append([]string{c.base()}, c.Interfaces...)
		if c.VlanID != 0 {
			names = append(names, c.vlanName())
		}
		for _, n := range names {
			if err := validIfName(n); err != nil {
				t.Fatalf("accepted a configuration naming an invalid device: %v", err)
			}
		}
		if c.Bond != nil && (c.Bond.Name == "" || c.Bond.Mode < 0 || c.Bond.Mode > maxBondMode) {
			t.Fatalf("accepted bond %+v", *c.Bond)
		}
		for _, o := range c.bondOptions {
			if _, ok := bondOptions[o.Key]; !ok {
				t.Fatalf("accepted unknown option %q", o.Key)
			}
		}
		lf := c.LogOptions.LogFile
		if _, ok := cnilog.Level(c.LogOptions.LogLevel); !ok || !strings.HasPrefix(lf, cnilog.DefaultDir+"/") || lf != filepath.Clean(lf) {
			t.Fatalf("logOptions = %+v", c.LogOptions)
		}
	})
}
