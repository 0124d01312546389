package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func TestVMIOf(t *testing.T) {
	pod := func(apiVersion, kind string, controller bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{
			{APIVersion: apiVersion, Kind: kind, Name: "vm1", Controller: ptr.To(controller)}}}}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"virt-launcher", pod("kubevirt.io/v1", KindVMI, true), "vm1"},
		{"another version of the group", pod("kubevirt.io/v1alpha3", KindVMI, true), "vm1"},
		{"not the controller", pod("kubevirt.io/v1", KindVMI, false), ""},
		{"another group's kind of that name", pod("example.com/v1", KindVMI, true), ""},
		{"a StatefulSet pod", pod("apps/v1", KindStatefulSet, true), ""},
		{"no owner", &corev1.Pod{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VMIOf(tc.pod); got != tc.want {
				t.Errorf("VMIOf = %q, want %q", got, tc.want)
			}
			ref := metav1.GetControllerOf(tc.pod)
			if ref == nil {
				return
			}
			if got := IsVMI(Controller{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name}); got != (tc.want != "") {
				t.Errorf("IsVMI = %v, want %v", got, tc.want != "")
			}
		})
	}
	ep := &v2beta1.SpiderEndpoint{Status: v2beta1.WorkloadEndpointStatus{OwnerControllerType: KindVMI, OwnerControllerName: "vm1"}}
	if got := VMIOfEndpoint(ep); got != "vm1" {
		t.Errorf("VMIOfEndpoint = %q, want vm1", got)
	}
	if got := VMIOfEndpoint(nil); got != "" {
		t.Errorf("VMIOfEndpoint(nil) = %q", got)
	}
}
