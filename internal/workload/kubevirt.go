package workload

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// KubeVirt: with ipam.enableKubevirtStaticIP a virtual machine keeps its addresses across the
// pods that run it (a restart, a live migration). Its virt-launcher pods are controlled by a
// VirtualMachineInstance (VMI), itself owned by a VirtualMachine (VM) of the same name, and the
// SpiderEndpoint and the pool records are named after the VMI instead of the pod.
const (
	// KubeVirtGroup is KubeVirt's API group.
	KubeVirtGroup = "kubevirt.io"
	// KindVMI is the kind of a VirtualMachineInstance, as SpiderEndpoints record it in
	// status.ownerControllerType.
	KindVMI = "VirtualMachineInstance"
	// KindVM is the kind of a VirtualMachine.
	KindVM = "VirtualMachine"
)

// VMIOf names the VirtualMachineInstance controlling pod (any version of kubevirt.io), or "".
func VMIOf(pod *corev1.Pod) string {
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == KindVMI && groupOf(ref.APIVersion) == KubeVirtGroup {
		return ref.Name
	}
	return ""
}

// VMIOfEndpoint names the VirtualMachineInstance a SpiderEndpoint was kept for, or "".
func VMIOfEndpoint(ep *v2beta1.SpiderEndpoint) string {
	if ep != nil && ep.Status.OwnerControllerType == KindVMI {
		return ep.Status.OwnerControllerName
	}
	return ""
}

// IsVMI reports whether c is a KubeVirt VirtualMachineInstance.
func IsVMI(c Controller) bool {
	return c.Kind == KindVMI && groupOf(c.APIVersion) == KubeVirtGroup
}

func groupOf(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return ""
	}
	return gv.Group
}

// VMWantsAddresses reports whether the virtual machine of VMI namespace/name still runs or will run
// again, so that its addresses are kept: the VMI exists and is not being deleted, or a
// VirtualMachine of the same name exists and is not being deleted (it starts a new VMI). Both are
// read as metadata through r. A cluster without KubeVirt's CRDs has neither.
func VMWantsAddresses(ctx context.Context, r client.Reader, namespace, name string) (bool, error) {
	for _, kind := range []string{KindVMI, KindVM} {
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(schema.GroupVersionKind{Group: KubeVirtGroup, Version: "v1", Kind: kind})
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
		switch {
		case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		case err != nil:
			return false, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
		case obj.DeletionTimestamp == nil:
			return true, nil
		}
	}
	return false, nil
}
