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
}
