package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// guideClusterConfiguration is what kubeadm writes, trimmed, with the Calico-overlay guide's CIDRs.
const guideClusterConfiguration = `apiServer:
  certSANs:
  - 127.0.0.1
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.26.0
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.64.0/18
  serviceSubnet: 10.233.0.0/18
`

func TestParseKubeadmClusterConfiguration(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		pod, svc []string
		wantErr  string
	}{
		{name: "guide", text: guideClusterConfiguration, pod: []string{"10.244.64.0/18"}, svc: []string{"10.233.0.0/18"}},
		{name: "workaround", text: "networking:\n  podSubnet: 10.244.64.0/18\n  serviceSubnet: 10.233.0.0/18\n", pod: []string{"10.244.64.0/18"}, svc: []string{"10.233.0.0/18"}},
		{name: "dual stack", text: "podSubnet: 10.244.0.0/16,fd00:10:244::/56\nserviceSubnet: 10.96.0.0/12,fd00:10:96::/112", pod: []string{"10.244.0.0/16", "fd00:10:244::/56"}, svc: []string{"10.96.0.0/12", "fd00:10:96::/112"}},
		{name: "quoted", text: `podSubnet: "10.244.0.0/16"` + "\nserviceSubnet: '10.96.0.0/12'", pod: []string{"10.244.0.0/16"}, svc: []string{"10.96.0.0/12"}},
		{name: "only pod", text: "podSubnet: 10.244.0.0/16", pod: []string{"10.244.0.0/16"}},
		{name: "only service", text: "serviceSubnet: 10.96.0.0/12", svc: []string{"10.96.0.0/12"}},
		{name: "empty", text: ""},
		{name: "invalid pod", text: "podSubnet: 10.244.0.0\nserviceSubnet: 10.96.0.0/12", wantErr: `podSubnet: invalid CIDR "10.244.0.0"`},
		{name: "invalid service", text: "podSubnet: 10.244.0.0/16\nserviceSubnet: ${SERVICE_SUBNET}", wantErr: `serviceSubnet: invalid CIDR "${SERVICE_SUBNET}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, svc, err := parseKubeadmClusterConfiguration(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.pod, pod, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("pod (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.svc, svc, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("svc (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseKubeadmClusterConfiguration(f *testing.F) {
	f.Add(guideClusterConfiguration)
	f.Add("podSubnet: 10.244.0.0/16,fd00::/56\nserviceSubnet: ,,")
	f.Add("podSubnet:\nserviceSubnet:")
	f.Fuzz(func(t *testing.T, text string) {
		pod, svc, err := parseKubeadmClusterConfiguration(text)
		if err != nil {
			if pod != nil || svc != nil {
				t.Fatalf("error %v with results %v %v", err, pod, svc)
			}
			return
		}
		// Whatever is accepted must be a CIDR a second parse accepts unchanged.
		again, _, err := parseKubeadmClusterConfiguration("podSubnet: " + strings.Join(append(pod, svc...), ","))
		if err != nil {
			t.Fatalf("accepted CIDRs %v %v do not parse again: %v", pod, svc, err)
		}
		if len(again) != len(pod)+len(svc) {
			t.Fatalf("reparse of %v %v gave %v", pod, svc, again)
		}
	})
}

func TestParseControllerManagerFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		pod, svc []string
	}{
		{
			name: "kubeadm static pod",
			args: []string{"kube-controller-manager", "--allocate-node-cidrs=true", "--cluster-cidr=10.244.64.0/18", "--service-cluster-ip-range=10.233.0.0/18"},
			pod:  []string{"10.244.64.0/18"}, svc: []string{"10.233.0.0/18"},
		},
		{
			name: "dual stack",
			args: []string{"--cluster-cidr=10.244.0.0/16,fd00::/56", "--service-cluster-ip-range=10.96.0.0/12,fd01::/112"},
			pod:  []string{"10.244.0.0/16", "fd00::/56"}, svc: []string{"10.96.0.0/12", "fd01::/112"},
		},
		{name: "invalid entry skipped", args: []string{"--cluster-cidr=bogus,10.244.0.0/16"}, pod: []string{"10.244.0.0/16"}},
		{name: "space-separated form not parsed", args: []string{"--cluster-cidr", "10.244.0.0/16"}},
		{name: "none", args: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, svc := parseControllerManagerFlags(tt.args)
			if diff := cmp.Diff(tt.pod, pod, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("pod (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.svc, svc, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("svc (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCiliumCIDRs(t *testing.T) {
	cluster := []string{"10.244.0.0/16"}
	tests := []struct {
		name    string
		data    map[string]string
		want    []string
		wantErr string
	}{
		{name: "cluster-pool", data: map[string]string{"ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.244.64.0/18"}, want: []string{"10.244.64.0/18"}},
		{
			name: "cluster-pool-v2beta dual stack lists",
			data: map[string]string{"ipam": "cluster-pool-v2beta", "cluster-pool-ipv4-cidr": "10.0.0.0/16 10.1.0.0/16", "cluster-pool-ipv6-cidr": "fd00::/104"},
			want: []string{"10.0.0.0/16", "10.1.0.0/16", "fd00::/104"},
		},
		{name: "cluster-pool invalid", data: map[string]string{"ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.0.0.0"}, wantErr: `cluster-pool-ipv4-cidr: invalid CIDR "10.0.0.0"`},
		{name: "kubernetes", data: map[string]string{"ipam": "kubernetes"}, want: cluster},
		{name: "multi-pool", data: map[string]string{"ipam": "multi-pool"}, wantErr: "multi-pool keeps its CIDRs in CiliumPodIPPool objects"},
		{name: "eni", data: map[string]string{"ipam": "eni"}, wantErr: "unsupported CIlium IPAM mode: eni"},
		{name: "missing", data: map[string]string{}, wantErr: "unsupported CIlium IPAM mode: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ciliumCIDRs(tt.data, cluster)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvePodCIDRType(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{name: "calico conflist", files: map[string]string{"10-calico.conflist": `{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}`}, want: "calico"},
		{name: "calico name", files: map[string]string{"10-calico.conflist": `{"name":"calico","plugins":[]}`}, want: "calico"},
		{name: "cilium conf", files: map[string]string{"05-cilium.conf": `{"name":"cilium","type":"cilium-cni"}`}, want: "cilium"},
		{name: "flannel", files: map[string]string{"10-flannel.conflist": `{"name":"cbr0","plugins":[]}`, "00-flannel.conf": `{"name":"flannel"}`}, want: "cluster"},
		{name: "first by name wins", files: map[string]string{"05-cilium.conf": `{"name":"cilium"}`, "10-calico.conflist": `{"name":"k8s-pod-network"}`}, want: "cilium"},
		{name: "Multus' file skipped", files: map[string]string{"00-multus.conf": `{"name":"multus-cni-network","type":"multus"}`, "10-calico.conflist": `{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}`}, want: "calico"},
		{name: "Multus' thick conflist skipped", files: map[string]string{"00-multus.conflist": `{"name":"multus-cni-network","plugins":[{"type":"multus-shim"}]}`, "10-flannel.conflist": `{"name":"flannel"}`}, want: "cluster"},
		{name: "Multus alone", files: map[string]string{"00-multus.conf": `{"name":"multus-cni-network","type":"multus","clusterNetwork":"kube-system/ipvlan-eth0"}`}, want: "none"},
		{name: "other files ignored", files: map[string]string{"README": "x", "calico-kubeconfig": "x", "10-calico.conflist": `{"name":"k8s-pod-network"}`}, want: "calico"},
		{name: "empty dir", files: map[string]string{}, wantErr: "no *.conf or *.conflist file"},
		{name: "bad json", files: map[string]string{"10-x.conf": `{`}, wantErr: "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := resolvePodCIDRType("auto", dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("explicit type is kept", func(t *testing.T) {
		got, err := resolvePodCIDRType("cilium", "/nonexistent")
		if err != nil || got != "cilium" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := resolvePodCIDRType("auto", filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Error("no error")
		}
	})
}
