package sriov

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
)

// fakeSysfs lays out the part of sysfs Sysfs reads the way the kernel does: PCI functions under
// devices/, bus/pci/devices/ entries linking to them, a VF's physfn linking to its PF, and a
// function's links under net/. It returns the root.
//
//	0000:3b:00.0  PF, link ens1f0, VFs 0000:3b:02.0 and 0000:3b:02.1
//	0000:3b:00.1  PF without links (its driver unbound)
//	0000:3b:0a.0  VF of 0000:3b:00.1
//	0000:00:1f.6  a NIC without SR-IOV, link eno1
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	bridge := filepath.Join(root, "devices", "pci0000:3a")
	mkdir := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	busDir := filepath.Join(root, "bus", "pci", "devices")
	mkdir(busDir)
	fn := func(addr string, links ...string) {
		mkdir(filepath.Join(bridge, addr))
		for _, l := range links {
			mkdir(filepath.Join(bridge, addr, "net", l))
		}
		link(filepath.Join("..", "..", "..", "devices", "pci0000:3a", addr), filepath.Join(busDir, addr))
	}
	fn("0000:3b:00.0", "ens1f0")
	fn("0000:3b:00.1")
	fn("0000:00:1f.6", "eno1")
	for vf, pf := range map[string]string{"0000:3b:02.0": "0000:3b:00.0", "0000:3b:02.1": "0000:3b:00.0", "0000:3b:0a.0": "0000:3b:00.1"} {
		fn(vf)
		link(filepath.Join("..", pf), filepath.Join(bridge, vf, "physfn"))
	}
	return root
}

func TestPFLink(t *testing.T) {
	s := Sysfs{Root: fakeSysfs(t)}
	tests := []struct {
		vf, want, wantErr string
	}{
		{vf: "0000:3b:02.0", want: "ens1f0"},
		{vf: "0000:3b:02.1", want: "ens1f0"},
		{vf: "0000:00:1f.6", wantErr: "PCI device 0000:00:1f.6 is not an SR-IOV VF: it has no physfn"},
		{vf: "0000:3b:00.0", wantErr: "PCI device 0000:3b:00.0 is not an SR-IOV VF"},
		{vf: "0000:3b:0a.0", wantErr: "links of PF 0000:3b:00.1"},
		{vf: "0000:5e:00.2", wantErr: "PCI device 0000:5e:00.2 not found under"},
		{vf: "../../../etc", wantErr: `invalid PCI address "../../../etc"`},
		{vf: "..", wantErr: `invalid PCI address ".."`},
		{vf: "", wantErr: `invalid PCI address ""`},
	}
	for _, tc := range tests {
		t.Run(tc.vf, func(t *testing.T) {
			got, err := s.pfLink(tc.vf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("pfLink(%q) = %q, %v; want an error containing %q", tc.vf, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("pfLink(%q) = %q, %v; want %q", tc.vf, got, err, tc.want)
			}
		})
	}
}

// Master reports the step that failed with the interface and the VF's PCI address, and asks the
// PCI-address step about the namespace and interface it was given.
func TestMasterErrors(t *testing.T) {
	sysfs := fakeSysfs(t)
	tests := []struct {
		name    string
		bus     func(netns, ifName string) (string, error)
		wantErr string
	}{
		{
			name:    "the PCI address step fails",
			bus:     func(string, string) (string, error) { return "", errors.New("interface net1 in /run/netns/p is gone") },
			wantErr: "interface net1 in /run/netns/p is gone",
		},
		{
			name:    "a NIC without SR-IOV",
			bus:     func(string, string) (string, error) { return "0000:00:1f.6", nil },
			wantErr: "interface net1 (PCI 0000:00:1f.6): PCI device 0000:00:1f.6 is not an SR-IOV VF: it has no physfn",
		},
		{
			name:    "a PF without link",
			bus:     func(string, string) (string, error) { return "0000:3b:0a.0", nil },
			wantErr: "interface net1 (PCI 0000:3b:0a.0): links of PF 0000:3b:00.1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			s := Sysfs{Root: sysfs, busAddress: func(netns, ifName string) (string, error) {
				asked = append(asked, netns+" "+ifName)
				return tc.bus(netns, ifName)
			}}
			m, err := s.Master("/run/netns/p", "net1")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Master = %+v, %v; want an error containing %q", m, err, tc.wantErr)
			}
			if diff := cmp.Diff([]string{"/run/netns/p net1"}, asked); diff != "" {
				t.Errorf("PCI address asked for (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrivilegedMaster runs Sysfs against real namespaces and links. This kernel has no SR-IOV, so
// no link has a PCI address: the ethtool step is checked for the refusal it gives a veth, and the
// full lookup runs with that one step replaced by the VF address of the fake sysfs, reading the
// PF's addresses from a real link in a namespace standing in for the host.
func TestPrivilegedMaster(t *testing.T) {
	host, pod := testutil.NewNS(t), testutil.NewNS(t)
	testutil.InNS(t, host, func() error {
		l, err := netlinkx.AddVeth(netlinkx.Veth{Name: "ens1f0", PeerName: "net1", PeerNS: pod, NoDAD: true})
		if err != nil {
			return err
		}
		for _, p := range []string{"10.20.0.5/24", "fd20::5/64"} {
			if err := netlinkx.AddAddr(l, netip.MustParsePrefix(p)); err != nil {
				return err
			}
		}
		return nil
	})
	sysfs := fakeSysfs(t)

	t.Run("a veth is no VF", func(t *testing.T) {
		_, err := Sysfs{Root: sysfs}.Master(pod.Path(), "net1")
		if err == nil || !strings.Contains(err.Error(), `interface net1 in `+pod.Path()+` (driver "veth") is not a PCI device, so not an SR-IOV VF`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing interface", func(t *testing.T) {
		_, err := Sysfs{Root: sysfs}.Master(pod.Path(), "net9")
		if err == nil || !strings.Contains(err.Error(), "ethtool driver info of net9") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing namespace", func(t *testing.T) {
		_, err := Sysfs{Root: sysfs}.Master("/var/run/netns/no-such-pod", "net1")
		if err == nil || !strings.Contains(err.Error(), "/var/run/netns/no-such-pod") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the PF's addresses on the host", func(t *testing.T) {
		s := Sysfs{Root: sysfs, busAddress: func(netns, ifName string) (string, error) {
			if netns != pod.Path() || ifName != "net1" {
				return "", errors.New("asked about the wrong interface")
			}
			return "0000:3b:02.1", nil
		}}
		var got *Master
		err := host.Do(func(ns.NetNS) error {
			var err error
			got, err = s.Master(pod.Path(), "net1")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var global []netip.Prefix
		for _, a := range got.Addrs {
			if !a.Addr().IsLinkLocalUnicast() {
				global = append(global, a)
			}
		}
		want := []netip.Prefix{netip.MustParsePrefix("10.20.0.5/24"), netip.MustParsePrefix("fd20::5/64")}
		if got.Name != "ens1f0" || !cmp.Equal(want, global, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
			t.Fatalf("master %s %v, want ens1f0 %v", got.Name, got.Addrs, want)
		}
		// The test's own namespace has no link of that name: the error says which PF was looked for.
		_, err = s.Master(pod.Path(), "net1")
		if err == nil || !strings.Contains(err.Error(), "PF ens1f0 of interface net1 (PCI 0000:3b:02.1) on the host") {
			t.Fatalf("outside the host namespace: %v", err)
		}
	})
}
