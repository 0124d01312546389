package ctl

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// A KubeVirt VM's records and endpoint are named after its VMI: the doctor finds them healthy
// while a virt-launcher pod of the UID runs or the VM keeps them, and orphaned once it does not.
func TestDiagnoseKubeVirt(t *testing.T) {
	launcher := testPod("ns", "virt-launcher-vm1-a", "u1", corev1.PodRunning)
	launcher.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: "vm1", Controller: ptr.To(true)}}
	ep := testEndpoint("ns", "vm1", "u1", [3]string{"eth0", "10.1.0.10/24", "a"})
	ep.Status.OwnerControllerType, ep.Status.OwnerControllerName = "VirtualMachineInstance", "vm1"
	orphan := []brief{
		{CheckOrphanRecord, "10.1.0.10", "a", "", "ns/vm1"},
		{CheckOrphanEndpoint, "", "a", "ns/vm1", "ns/vm1"},
	}
	for _, tc := range []struct {
		name    string
		on      bool
		pods    []corev1.Pod
		vmWants bool
		want    []brief
	}{
		{"pod running", true, []corev1.Pod{launcher}, false, nil},
		{"VM restarting: no pod, the VM keeps the address", true, nil, true, nil},
		{"VM deleted", true, nil, false, orphan},
		{"handling off", false, []corev1.Pod{launcher}, true, orphan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := &Snapshot{
				Pools:     []v2beta1.SpiderIPPool{testPool(t, "a", "10.1.0.0/24", []string{"10.1.0.10-10.1.0.20"}, rec{"10.1.0.10": "ns/vm1@u1"})},
				Endpoints: []v2beta1.SpiderEndpoint{ep},
				Pods:      tc.pods,
			}
			got, err := Diagnose(context.Background(), snap, DoctorOptions{EnableKubevirtStaticIP: tc.on,
				VMWants: func(_ context.Context, ns, vmi string) (bool, error) {
					return tc.vmWants && ns == "ns" && vmi == "vm1", nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, briefs(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%+v", diff, got)
			}
		})
	}
}
