package spiderpool

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

func defaultIPAM() IPAMConfig {
	return IPAMConfig{
		Type:               DefaultIPAMType,
		IPAMUnixSocketPath: v1.DefaultSocketPath,
		LogLevel:           DefaultLogLevel,
		LogFilePath:        DefaultLogFilePath,
		LogFileMaxSize:     DefaultLogFileMaxSize,
		LogFileMaxAge:      DefaultLogFileMaxAge,
		LogFileMaxCount:    DefaultLogFileMaxCount,
	}
}

func TestLoadConf(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "") // the defaults of a node without the operator's override
	tests := []struct {
		name        string
		stdin       string
		env         string // SPIDERPOOL_CNI_LOG_DIR
		wantVersion string
		want        func(*IPAMConfig)
	}{
		{
			name:        "defaults",
			stdin:       `{"cniVersion":"0.3.1","name":"n","type":"macvlan","ipam":{"type":"spiderpool"}}`,
			wantVersion: "0.3.1",
		},
		{
			name:        "no ipam object",
			stdin:       `{"cniVersion":"1.0.0","name":"n","type":"macvlan"}`,
			wantVersion: "1.0.0",
		},
		{
			name:        "null values keep defaults",
			stdin:       `{"cniVersion":"1.1.0","name":"n","ipam":{"type":null,"log_file_max_size":null,"ipam_unix_socket_path":null,"default_ipv4_ippool":null}}`,
			wantVersion: "1.1.0",
		},
		{
			name: "every key",
			stdin: `{"cniVersion":"0.4.0","name":"n","type":"macvlan","ipam":{
				"type":"spiderpool-custom",
				"default_ipv4_ippool":["v4-a","v4-*"],
				"default_ipv6_ippool":["v6-a"],
				"clean_gateway":true,
				"match_master_subnet":true,
				"ipam_unix_socket_path":"/run/spidernet/agent.sock",
				"log_level":"warn",
				"log_file_path":"/var/log/spidernet/sp/./plugin.log",
				"log_file_max_size":10,
				"log_file_max_age":2,
				"log_file_max_count":3,
				"unknown_key":"ignored"}}`,
			wantVersion: "0.4.0",
			want: func(c *IPAMConfig) {
				c.Type = "spiderpool-custom"
				c.DefaultIPv4IPPool = []string{"v4-a", "v4-*"}
				c.DefaultIPv6IPPool = []string{"v6-a"}
				c.CleanGateway = true
				c.MatchMasterSubnet = true
				c.IPAMUnixSocketPath = "/run/spidernet/agent.sock"
				c.LogLevel = "WARN"
				c.LogFilePath = "/var/log/spidernet/sp/plugin.log"
				c.LogFileMaxSize, c.LogFileMaxAge, c.LogFileMaxCount = 10, 2, 3
			},
		},
		{
			name:        "explicit zero rotation limits are kept",
			stdin:       `{"cniVersion":"0.3.0","name":"n","ipam":{"log_file_max_size":0,"log_file_max_age":0,"log_file_max_count":0}}`,
			wantVersion: "0.3.0",
			want: func(c *IPAMConfig) {
				c.LogFileMaxSize, c.LogFileMaxAge, c.LogFileMaxCount = 0, 0, 0
			},
		},
		{
			name:        "empty strings take defaults",
			stdin:       `{"cniVersion":"0.3.1","name":"n","ipam":{"type":"","ipam_unix_socket_path":"","log_level":"","log_file_path":""}}`,
			wantVersion: "0.3.1",
		},
		{
			name:        "log file in the directory of SPIDERPOOL_CNI_LOG_DIR",
			stdin:       `{"cniVersion":"1.0.0","name":"n","ipam":{"log_file_path":"/tmp/logs/x.log"}}`,
			env:         "/tmp/logs",
			wantVersion: "1.0.0",
			want:        func(c *IPAMConfig) { c.LogFilePath = "/tmp/logs/x.log" },
		},
		{
			name:        "default log file in the directory of SPIDERPOOL_CNI_LOG_DIR",
			stdin:       `{"cniVersion":"1.0.0","name":"n"}`,
			env:         "/tmp/logs",
			wantVersion: "1.0.0",
			want:        func(c *IPAMConfig) { c.LogFilePath = "/tmp/logs/spiderpool.log" },
		},
		{
			name:        "log level is case-insensitive",
			stdin:       `{"cniVersion":"0.3.1","name":"n","ipam":{"log_level":"Error"}}`,
			wantVersion: "0.3.1",
			want:        func(c *IPAMConfig) { c.LogLevel = "ERROR" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(cnilog.DirEnv, tt.env)
			conf, ver, err := loadConf([]byte(tt.stdin))
			if err != nil {
				t.Fatalf("loadConf: %v", err)
			}
			if ver != tt.wantVersion || conf.CNIVersion != tt.wantVersion {
				t.Errorf("version = %q (conf %q), want %q", ver, conf.CNIVersion, tt.wantVersion)
			}
			want := defaultIPAM()
			if tt.want != nil {
				tt.want(&want)
			}
			if diff := cmp.Diff(want, conf.IPAM); diff != "" {
				t.Errorf("ipam (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfEverySupportedVersion(t *testing.T) {
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if _, got, err := loadConf([]byte(`{"cniVersion":"` + v + `","name":"n"}`)); err != nil || got != v {
			t.Errorf("loadConf(cniVersion %s) = %q, %v", v, got, err)
		}
	}
	if diff := cmp.Diff([]string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}, SupportedVersions()); diff != "" {
		t.Errorf("SupportedVersions (-want +got):\n%s", diff)
	}
}

func TestLoadConfErrors(t *testing.T) {
	t.Setenv(cnilog.DirEnv, "")
	tests := []struct {
		name  string
		stdin string
		want  []string // substrings of the error
	}{
		{"not JSON", `{`, []string{"parse network configuration"}},
		{"unsupported old version", `{"cniVersion":"0.2.0","name":"n"}`, []string{"unsupported specified CNI version 0.2.0"}},
		{"unsupported future version", `{"cniVersion":"1.2.0","name":"n"}`, []string{"unsupported specified CNI version 1.2.0"}},
		{"missing version", `{"name":"n"}`, []string{"unsupported specified CNI version "}},
		{"version with v prefix", `{"cniVersion":"v1.0.0","name":"n"}`, []string{"unsupported specified CNI version v1.0.0"}},
		{"version is a number", `{"cniVersion":1.0,"name":"n"}`, []string{`"cniVersion"`, "a string", "number"}},
		{"clean_gateway string", `{"cniVersion":"1.0.0","ipam":{"clean_gateway":"yes"}}`, []string{`"ipam.clean_gateway"`, "a boolean", "string"}},
		{"match_master_subnet number", `{"cniVersion":"1.0.0","ipam":{"match_master_subnet":1}}`, []string{`"ipam.match_master_subnet"`, "a boolean"}},
		{"default_ipv4_ippool string", `{"cniVersion":"1.0.0","ipam":{"default_ipv4_ippool":"p1"}}`, []string{`"ipam.default_ipv4_ippool"`}},
		{"default_ipv6_ippool numbers", `{"cniVersion":"1.0.0","ipam":{"default_ipv6_ippool":[1]}}`, []string{`"ipam.default_ipv6_ippool`}},
		{"socket path number", `{"cniVersion":"1.0.0","ipam":{"ipam_unix_socket_path":5}}`, []string{`"ipam.ipam_unix_socket_path"`, "a string"}},
		{"log_level bool", `{"cniVersion":"1.0.0","ipam":{"log_level":true}}`, []string{`"ipam.log_level"`, "a string"}},
		{"log_file_path list", `{"cniVersion":"1.0.0","ipam":{"log_file_path":["a"]}}`, []string{`"ipam.log_file_path"`}},
		{"log_file_max_size string", `{"cniVersion":"1.0.0","ipam":{"log_file_max_size":"10"}}`, []string{`"ipam.log_file_max_size"`, "an integer"}},
		{"log_file_max_age float", `{"cniVersion":"1.0.0","ipam":{"log_file_max_age":1.5}}`, []string{`"ipam.log_file_max_age"`, "an integer"}},
		{"log_file_max_count object", `{"cniVersion":"1.0.0","ipam":{"log_file_max_count":{}}}`, []string{`"ipam.log_file_max_count"`, "an integer"}},
		{"ipam is a string", `{"cniVersion":"1.0.0","ipam":"spiderpool"}`, []string{`"ipam"`, "an object"}},
		{"unknown log level", `{"cniVersion":"1.0.0","ipam":{"log_level":"trace"}}`, []string{"ipam.log_level", `"trace"`}},
		{"relative socket path", `{"cniVersion":"1.0.0","ipam":{"ipam_unix_socket_path":"run/sp.sock"}}`, []string{"ipam.ipam_unix_socket_path", "absolute"}},
		{"socket path too long", `{"cniVersion":"1.0.0","ipam":{"ipam_unix_socket_path":"/` + strings.Repeat("a", 120) + `"}}`, []string{"ipam.ipam_unix_socket_path", "longer than 107"}},
		{"socket path with NUL", `{"cniVersion":"1.0.0","ipam":{"ipam_unix_socket_path":"/a\u0000b"}}`, []string{"ipam.ipam_unix_socket_path", "NUL"}},
		{"negative max size", `{"cniVersion":"1.0.0","ipam":{"log_file_max_size":-1}}`, []string{"ipam.log_file_max_size", "negative"}},
		{"negative max age", `{"cniVersion":"1.0.0","ipam":{"log_file_max_age":-1}}`, []string{"ipam.log_file_max_age", "negative"}},
		{"negative max count", `{"cniVersion":"1.0.0","ipam":{"log_file_max_count":-7}}`, []string{"ipam.log_file_max_count", "negative"}},
		{"log file outside the log directory", `{"cniVersion":"1.0.0","ipam":{"log_file_path":"/etc/shadow"}}`,
			[]string{`invalid network configuration: ipam.log_file_path "/etc/shadow": must be a file under /var/log/spidernet`}},
		{"relative log file", `{"cniVersion":"1.0.0","ipam":{"log_file_path":"spiderpool.log"}}`,
			[]string{`ipam.log_file_path "spiderpool.log": must be a file under /var/log/spidernet`}},
		{"log file escaping by ..", `{"cniVersion":"1.0.0","ipam":{"log_file_path":"/var/log/spidernet/../../../etc/shadow"}}`,
			[]string{`ipam.log_file_path "/var/log/spidernet/../../../etc/shadow": must be a file under /var/log/spidernet`}},
		{"log file is the log directory", `{"cniVersion":"1.0.0","ipam":{"log_file_path":"/var/log/spidernet"}}`,
			[]string{"ipam.log_file_path", "must be a file under /var/log/spidernet"}},
		{"log file with NUL", `{"cniVersion":"1.0.0","ipam":{"log_file_path":"/var/log/spidernet/a\u0000b"}}`, []string{"ipam.log_file_path", "NUL"}},
		{"empty pool name", `{"cniVersion":"1.0.0","ipam":{"default_ipv6_ippool":["a"," "]}}`, []string{"ipam.default_ipv6_ippool[1]", "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, _, err := loadConf([]byte(tt.stdin))
			if err == nil {
				t.Fatalf("loadConf accepted it: %+v", conf.IPAM)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestParseCNIArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    podArgs
		wantErr string
	}{
		{
			name: "kubelet's args",
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=7e2f",
			want: podArgs{Namespace: "ns1", Name: "pod-1", UID: "7e2f", InfraContainerID: "abc"},
		},
		{
			name: "unknown keys tolerated with IgnoreUnknown=true",
			args: "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p;K8S_POD_UID=u;MAC=aa:bb",
			want: podArgs{Namespace: "ns1", Name: "p", UID: "u"},
		},
		{
			name: "without IgnoreUnknown and only known keys",
			args: "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p;K8S_POD_UID=u",
			want: podArgs{Namespace: "ns1", Name: "p", UID: "u"},
		},
		{
			name: "IP key tolerated as upstream does",
			args: "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p;K8S_POD_UID=u;IP=10.0.0.1",
			want: podArgs{Namespace: "ns1", Name: "p", UID: "u"},
		},
		{name: "empty", args: "", wantErr: "K8S_POD_NAMESPACE is missing"},
		{name: "missing namespace", args: "K8S_POD_NAME=p;K8S_POD_UID=u", wantErr: "K8S_POD_NAMESPACE is missing"},
		{name: "missing name", args: "K8S_POD_NAMESPACE=ns;K8S_POD_UID=u", wantErr: "K8S_POD_NAME is missing"},
		{name: "empty name", args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=;K8S_POD_UID=u", wantErr: "K8S_POD_NAME is missing"},
		{name: "missing UID", args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", wantErr: "K8S_POD_UID is missing"},
		{name: "unknown key without IgnoreUnknown", args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;FOO=bar", wantErr: "unknown args"},
		{name: "IgnoreUnknown=0 rejects unknown keys", args: "IgnoreUnknown=0;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;FOO=bar", wantErr: "unknown args"},
		{name: "malformed pair", args: "K8S_POD_NAMESPACE", wantErr: "invalid pair"},
		{name: "bad IgnoreUnknown", args: "IgnoreUnknown=maybe", wantErr: "IgnoreUnknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCNIArgs(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCNIArgs(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCNIArgs(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseCNIArgs (-want +got):\n%s", diff)
			}
		})
	}
}
