package agent

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// KubeVirt static IPs (ipam.enableKubevirtStaticIP). A virtual machine runs in a virt-launcher pod
// controlled by its VirtualMachineInstance; a restart or a live migration gives it a new pod, with
// a new name and UID, while the VM must keep its addresses. So the pods of one VMI share a
// SpiderEndpoint named after the VMI, and the pool records name the VMI too:
//   - ADD: the endpoint and records are keyed by the VMI; a new pod takes over the addresses of the
//     previous one like a StatefulSet member's new incarnation (takeOver), also while the previous
//     pod still runs, which is what a live migration needs;
//   - DEL: the pod's endpoint is found by its UID; the addresses are kept while the VMI or its VM
//     exists (workload.VMWantsAddresses), and released once both are gone;
//   - the controller's GC applies the same rule to what a DEL never released.

// staticVMI names the VMI whose endpoint a pod controlled by ctrl uses, or "" when the pod has its
// own endpoint.
func (s *Server) staticVMI(ctrl ipam.Controller) string {
	if s.cfg.EnableKubevirtStaticIP && workload.IsVMI(ctrl) {
		return ctrl.Name
	}
	return ""
}

// migrationJobAnnotation is set by KubeVirt on the target pod of a live migration.
const migrationJobAnnotation = "kubevirt.io/migrationJobName"

// migrationTarget turns IP conflict detection off in resp when the pod is the target of a KubeVirt
// live migration: its addresses are still answered for by the source pod until the migration
// completes, and a probe would find them in use and fail the new pod.
func (s *Server) migrationTarget(resp *v1.IpamAddResponse, a *addition) *v1.IpamAddResponse {
	if s.staticVMI(a.base.Controller) == "" || a.pod.Annotations[migrationJobAnnotation] == "" {
		return resp
	}
	for i := range resp.IPs {
		resp.IPs[i].EnableIPConflictDetection = false
	}
	return resp
}

// endpointUIDIndex indexes the cached SpiderEndpoints by the UID of their current pod, so that a
// DEL finds a VM pod's endpoint (named after its VMI) without listing its namespace.
const endpointUIDIndex = "spiderpool.spidernet.io/current-pod-uid"

func indexEndpointUID(o client.Object) []string {
	if ep, ok := o.(*v2beta1.SpiderEndpoint); ok && ep.Status.Current.UID != "" {
		return []string{ep.Status.Current.UID}
	}
	return nil
}

// vmiEndpointOf returns the endpoint of a VMI whose current pod has UID uid in namespace, from the
// cache, or nil.
func (s *Server) vmiEndpointOf(ctx context.Context, namespace, uid string) (*v2beta1.SpiderEndpoint, error) {
	var eps v2beta1.SpiderEndpointList
	if err := s.cache.List(ctx, &eps, client.InNamespace(namespace), client.MatchingFields{endpointUIDIndex: uid}); err != nil {
		return nil, fmt.Errorf("list SpiderEndpoints in %s: %w", namespace, err)
	}
	for i := range eps.Items {
		ep := &eps.Items[i]
		if ep.Status.Current.UID == uid && workload.VMIOfEndpoint(ep) != "" {
			return ep, nil
		}
	}
	return nil, nil
}

// endpointOfPod returns the endpoint holding the addresses of pod namespace/name: its own, or
// that of its VMI.
func (s *Server) endpointOfPod(ctx context.Context, key client.ObjectKey) (*v2beta1.SpiderEndpoint, error) {
	ep, err := s.getEndpoint(ctx, key, fromCacheOrLive)
	if err != nil || ep != nil || !s.cfg.EnableKubevirtStaticIP {
		return ep, err
	}
	pod := &corev1.Pod{}
	if err := s.cache.Get(ctx, key, pod); err != nil {
		return nil, client.IgnoreNotFound(fmt.Errorf("get pod %s: %w", key, err))
	}
	if vmi := workload.VMIOf(pod); vmi != "" {
		return s.getEndpoint(ctx, client.ObjectKey{Namespace: key.Namespace, Name: vmi}, fromCacheOrLive)
	}
	return nil, nil
}
