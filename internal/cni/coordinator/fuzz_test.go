package coordinator

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// FuzzLoadConf checks that no input panics loadConf or merge and that an accepted configuration
// always yields a usable effective configuration and a log file under /var/log/spidernet.
func FuzzLoadConf(f *testing.F) {
	for _, ver := range allVersions {
		f.Add(confJSON(ver, ""))
	}
	f.Add(confJSON("1.0.0", `"mode":"underlay","hostRuleTable":600,"vethMTU":9000,"podMACPrefix":"0a:1b","policyRoutes":[{"dst":"1.0.0.0/8","gw":"10.0.0.1"}]`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"coordinator","prevResult":{"ips":[{"address":"10.0.0.2/24"}]}}`))
	f.Add(confJSON("1.0.0", `"logOptions":{"logFile":"/var/log/spidernet/../../etc/shadow"}`))
	f.Add([]byte(`{}`))
	f.Setenv(cnilog.DirEnv, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := loadConf(data)
		if err != nil {
			return
		}
		if lf := conf.LogOptions.LogFile; !strings.HasPrefix(lf, cnilog.DefaultDir+"/") || lf != filepath.Clean(lf) {
			t.Fatalf("accepted log file %q", lf)
		}
		c, err := merge(conf, nil)
		if err != nil {
			t.Fatalf("loadConf accepted a configuration merge rejects: %v", err)
		}
		if c.HostRuleTable <= 0 || c.VethMTU <= 0 || c.PodDefaultCNINIC == "" || c.Mode == "" {
			t.Fatalf("effective configuration lacks a value: %+v", c)
		}
		if conf.PrevResult != nil {
			if r, err := prevResult(conf); err == nil {
				nicAddrs(r, "eth0")
			}
		}
	})
}
