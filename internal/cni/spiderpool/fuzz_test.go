package spiderpool

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// FuzzLoadConf: no input panics; an accepted configuration has a supported version and values
// the plugin can use as they are (a log file under /var/log/spidernet among them); and the normalised configuration is a fixed point (loading it
// again changes nothing).
func FuzzLoadConf(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"0.3.1","name":"n","type":"macvlan","ipam":{"type":"spiderpool"}}`,
		`{"cniVersion":"1.1.0","name":"n"}`,
		`{"cniVersion":"0.4.0","ipam":{"default_ipv4_ippool":["a","b*"],"default_ipv6_ippool":["c"],"clean_gateway":true,"match_master_subnet":true,"ipam_unix_socket_path":"/run/sp.sock","log_level":"info","log_file_path":"/var/log/spidernet/x.log","log_file_max_size":1,"log_file_max_age":2,"log_file_max_count":3}}`,
		`{"cniVersion":"1.0.0","ipam":{"log_file_max_size":null,"type":null}}`,
		`{"cniVersion":"1.0.0","ipam":{"clean_gateway":"yes"}}`,
		`{"cniVersion":"0.2.0"}`,
		`{"cniVersion":"1.0.0","ipam":{"ipam_unix_socket_path":"rel"}}`,
		`{"cniVersion":"1.0.0","ipam":{"log_file_path":"/var/log/spidernet/../../etc/shadow"}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/24"}]}}`,
		`[]`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Setenv(cnilog.DirEnv, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, ver, err := loadConf(data)
		if err != nil {
			if conf != nil || ver != "" {
				t.Fatalf("loadConf returned %v, %q with error %v", conf, ver, err)
			}
			return
		}
		c := conf.IPAM
		switch {
		case !slices.Contains(supportedVersions, ver) || ver != conf.CNIVersion:
			t.Fatalf("accepted version %q (conf %q)", ver, conf.CNIVersion)
		case c.IPAMUnixSocketPath == "" || !filepath.IsAbs(c.IPAMUnixSocketPath) ||
			len(c.IPAMUnixSocketPath) > maxSocketPathLen || strings.ContainsRune(c.IPAMUnixSocketPath, 0):
			t.Fatalf("accepted socket path %q", c.IPAMUnixSocketPath)
		case c.Type == "" || c.LogFilePath == "":
			t.Fatalf("empty default: %+v", c)
		case !strings.HasPrefix(c.LogFilePath, cnilog.DefaultDir+"/") || c.LogFilePath != filepath.Clean(c.LogFilePath):
			t.Fatalf("accepted log file %q", c.LogFilePath)
		case c.LogFileMaxSize < 0 || c.LogFileMaxAge < 0 || c.LogFileMaxCount < 0:
			t.Fatalf("negative rotation limit: %+v", c)
		}
		if _, ok := cnilog.Level(c.LogLevel); !ok {
			t.Fatalf("accepted log level %q", c.LogLevel)
		}

		again, err := json.Marshal(map[string]any{"cniVersion": ver, "ipam": c})
		if err != nil {
			t.Fatalf("marshal normalised configuration: %v", err)
		}
		conf2, _, err := loadConf(again)
		if err != nil {
			t.Fatalf("normalised configuration %s rejected: %v", again, err)
		}
		if diff := cmp.Diff(c, conf2.IPAM, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("loading the normalised configuration changed it (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseCNIArgs: no input panics; accepted arguments name a pod completely and survive
// being written out and read back.
func FuzzParseCNIArgs(f *testing.F) {
	for _, s := range []string{
		testPodArgs,
		"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u",
		"IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;X=y",
		"IgnoreUnknown=0;X=y",
		"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;IP=10.0.0.1",
		"CommonArgs=x", "IgnoreUnknown", "=", ";;", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseCNIArgs(s)
		if err != nil {
			return
		}
		if p.Namespace == "" || p.Name == "" || p.UID == "" {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		out := "K8S_POD_NAMESPACE=" + p.Namespace + ";K8S_POD_NAME=" + p.Name + ";K8S_POD_UID=" + p.UID
		if p.InfraContainerID != "" {
			out += ";K8S_POD_INFRA_CONTAINER_ID=" + p.InfraContainerID
		}
		back, err := parseCNIArgs(out)
		if err != nil {
			t.Fatalf("re-parse %q (from %q): %v", out, s, err)
		}
		if back != p {
			t.Fatalf("round trip of %q: %+v != %+v", s, back, p)
		}
	})
}

// FuzzBuildResult: no agent answer panics the plugin, and every result it accepts converts to
// every supported CNI version.
func FuzzBuildResult(f *testing.F) {
	for _, s := range []string{
		`{"ips":[{"version":4,"address":"10.6.0.5/16","gateway":"10.6.0.1","nic":"eth0"}],"routes":[{"ifName":"eth0","dst":"10.7.0.0/16","gw":"10.6.0.254"}]}`,
		`{"ips":[{"version":6,"address":"fd00::5/64","gateway":"fd00::1","nic":"eth0"},{"version":4,"address":"10.6.0.5/16","nic":"eth0"}],"dns":{"nameservers":["1.1.1.1"]}}`,
		`{"ips":[{"version":4,"address":"::ffff:10.0.0.1/120","nic":"eth0"}],"routes":[{"ifName":"eth0","dst":"0.0.0.0/0","gw":""}]}`,
		`{"ips":[{"version":6,"address":"fe80::1%eth0/64","nic":"eth0"}]}`,
		`{"ips":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp v1.IpamAddResponse
		if json.Unmarshal(data, &resp) != nil {
			return
		}
		r, err := buildResult("eth0", &resp)
		if err != nil {
			return
		}
		if len(r.IPs) == 0 {
			t.Fatal("accepted an answer without addresses")
		}
		for _, ip := range r.IPs {
			if ip.Interface != nil || (ip.Gateway != nil && (ip.Gateway.To4() == nil) != (ip.Address.IP.To4() == nil)) {
				t.Fatalf("bad IP config %+v", ip)
			}
		}
		for _, ver := range supportedVersions {
			if _, err := r.GetAsVersion(ver); err != nil {
				t.Fatalf("convert %s to %s: %v", data, ver, err)
			}
		}
	})
}
