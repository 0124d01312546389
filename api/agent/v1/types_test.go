package v1

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestAddArgsValidate(t *testing.T) {
	full := IpamAddArgs{ContainerID: "c", IfName: "eth0", NetNamespace: "/proc/1/ns/net", PodNamespace: "default", PodName: "p", PodUID: "u"}
	if err := full.Validate(); err != nil {
		t.Fatalf("complete args: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*IpamAddArgs)
		want   string
	}{
		{"no ifName", func(a *IpamAddArgs) { a.IfName = "" }, "InvalidRequest: missing required field(s): ifName"},
		{"blank uid and pod", func(a *IpamAddArgs) { a.PodUID = " "; a.PodName = "" }, "InvalidRequest: missing required field(s): podName, podUID"},
		{"matchMasterSubnet without master", func(a *IpamAddArgs) { a.MatchMasterSubnet = true },
			"InvalidRequest: missing required field(s): master (matchMasterSubnet is true: the spiderpool plugin sends the master it found for match_master_subnet)"},
		{"master without name", func(a *IpamAddArgs) {
			a.MatchMasterSubnet, a.Master = true, &Master{Addresses: []string{"10.20.0.5/24"}}
		}, "InvalidRequest: missing required field(s): master.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := full
			tt.mutate(&a)
			err := a.Validate()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, &Error{Code: CodeInvalidRequest}) {
				t.Errorf("error does not match code InvalidRequest")
			}
		})
	}
}

// master is required with matchMasterSubnet and ignored without it; a master without addresses
// is a fact the pool filter reports, not a malformed request.
func TestAddArgsValidateMaster(t *testing.T) {
	base := IpamAddArgs{ContainerID: "c", IfName: "net1", NetNamespace: "/proc/1/ns/net", PodNamespace: "default", PodName: "p", PodUID: "u"}
	for name, mutate := range map[string]func(*IpamAddArgs){
		"master without matchMasterSubnet": func(a *IpamAddArgs) { a.Master = &Master{} },
		"matchMasterSubnet with master": func(a *IpamAddArgs) {
			a.MatchMasterSubnet, a.Master = true, &Master{Name: "ens1f0", Addresses: []string{"10.20.0.5/24"}}
		},
		"matchMasterSubnet, master unnumbered": func(a *IpamAddArgs) { a.MatchMasterSubnet, a.Master = true, &Master{Name: "ens1f0"} },
	} {
		t.Run(name, func(t *testing.T) {
			a := base
			mutate(&a)
			if err := a.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestErrorIsMatchesCodeThroughWrapping(t *testing.T) {
	err := fmt.Errorf("allocate: %w", &Error{Code: CodePoolExhausted, Message: "all IP addresses used out"})
	if !errors.Is(err, &Error{Code: CodePoolExhausted}) {
		t.Errorf("wrapped PoolExhausted not matched by code")
	}
	if errors.Is(err, &Error{Code: CodeConflict}) {
		t.Errorf("PoolExhausted matched Conflict")
	}
}

// The wire names are upstream's; a rename would break mixed-version clusters during upgrades.
func TestWireNames(t *testing.T) {
	b, err := json.Marshal(IpamAddResponse{IPs: []IPConfig{{Version: 4, Address: "10.6.212.145/16", IPPool: "p", Gateway: "10.6.0.1", Nic: "net1"}},
		Routes: []Route{{IfName: "net1", Dst: "10.7.0.0/16", Gw: "10.6.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ips":[{"version":4,"address":"10.6.212.145/16","ipPool":"p","gateway":"10.6.0.1","nic":"net1"}],"routes":[{"ifName":"net1","dst":"10.7.0.0/16","gw":"10.6.0.1"}],"dns":{}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}

	// master is ours; matchMasterSubnet is upstream's.
	b, err = json.Marshal(IpamAddArgs{ContainerID: "c", IfName: "net1", NetNamespace: "/proc/1/ns/net", PodNamespace: "default", PodName: "p", PodUID: "u",
		MatchMasterSubnet: true, Master: &Master{Name: "ens1f0", Addresses: []string{"10.20.0.5/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"containerID":"c","ifName":"net1","netNamespace":"/proc/1/ns/net","podNamespace":"default","podName":"p","podUID":"u","matchMasterSubnet":true,"master":{"name":"ens1f0","addresses":["10.20.0.5/24"]}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
