package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// setArgs are the flags of ip set.
type setArgs struct {
	ip, pool, namespace, pod, node, nic, containerID string
	enableSts                                        bool
}

func newIPSetCommand(g *globals) *cobra.Command {
	a := setArgs{namespace: "default", nic: "eth0", enableSts: true}
	cmd := &cobra.Command{
		Use:   "set [IP] --pod NAME [--namespace NS] [--interface NIC] [--node NODE] [--pool POOL]",
		Short: "Bind a free IP to a pod: a pool record and its SpiderEndpoint entry",
		Long: `Bind a free IP to an existing pod: record it for the pod's UID in the pool whose IPs contain it
(or --pool), through the pool's compare-and-swap, and list it on the interface of the pod's
SpiderEndpoint, creating the endpoint when the pod has none. An IP recorded for another pod, an
endpoint of an earlier incarnation, or an interface that already has an address of that family
is refused: release first. --containerid is accepted for upstream compatibility and checked
against the pod's containers when they report IDs; SpiderEndpoint has no field that stores it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := ipFromArgs(args, a.ip)
			if err != nil {
				return err
			}
			if a.pod == "" {
				return errors.New("--pod is required")
			}
			c, err := g.kube()
			if err != nil {
				return err
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			msg, err := setIP(ctx, c, addr, a)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.ip, "ip", "", "the IP (instead of the argument)")
	f.StringVar(&a.pod, "pod", "", "pod name (required)")
	f.StringVarP(&a.namespace, "namespace", "n", a.namespace, "pod namespace")
	f.StringVar(&a.nic, "interface", a.nic, "interface in the pod")
	f.StringVar(&a.node, "node", "", "node recorded in a new SpiderEndpoint (default: the pod's node)")
	f.StringVar(&a.pool, "pool", "", "pool to record the IP in (default: the one pool whose IPs contain it)")
	f.StringVar(&a.containerID, "containerid", "", "the pod's container ID, checked against its status (not stored)")
	f.BoolVar(&a.enableSts, "enable-statefulset", a.enableSts, "a StatefulSet pod's new endpoint has no owner, so that it outlives the pod (ipam.enableStatefulSet)")
	return cmd
}

// setIP binds addr to pod a.namespace/a.pod and says what it did.
func setIP(ctx context.Context, c client.Client, addr netip.Addr, a setArgs) (string, error) {
	pk := client.ObjectKey{Namespace: a.namespace, Name: a.pod}
	pod := &corev1.Pod{}
	if err := c.Get(ctx, pk, pod); err != nil {
		return "", fmt.Errorf("get pod %s: %w", pk, err)
	}
	if !workload.PodAlive(pod) {
		return "", fmt.Errorf("pod %s is %s: it will not use an IP", pk, podState(pod, string(pod.UID)))
	}
	if a.containerID != "" && !hasContainerID(pod, a.containerID) {
		return "", fmt.Errorf("pod %s has no container %q", pk, a.containerID)
	}
	uid := string(pod.UID)
	rep, x, err := lookupIP(ctx, c, addr)
	if err != nil {
		return "", err
	}
	for _, h := range rep.Holders {
		if h.Recorded && h.PodUID != uid {
			return "", fmt.Errorf("IP %s is recorded in SpiderIPPool %s for pod %s (UID %s, %s): release it first", addr, h.Pool, h.Pod, h.PodUID, h.PodState)
		}
	}
	pool, err := choosePool(x, addr, a.pool)
	if err != nil {
		return "", err
	}
	subnet, err := pool.Spec.SubnetPrefix()
	if err != nil {
		return "", fmt.Errorf("SpiderIPPool %s: spec.subnet: %w", pool.Name, err)
	}
	if ep := x.endpoints[pk.String()]; ep != nil {
		if ep.Status.Current.UID != uid {
			return "", fmt.Errorf("SpiderEndpoint %s is of pod UID %s, an earlier incarnation: release its IPs first", pk, ep.Status.Current.UID)
		}
		if err := checkNIC(ep, a.nic, addr); err != nil {
			return "", err
		}
	}

	store := kubestore.New(c, c, kubestore.Options{Unbatched: true})
	var added bool
	err = store.UpdatePool(ctx, pool.Name, func(st *ipam.PoolState) error {
		added = false
		if o, ok := st.Record(addr); ok {
			if o.PodUID == uid {
				return nil
			}
			return fmt.Errorf("IP %s is recorded in SpiderIPPool %s for pod %s (UID %s): release it first", addr, pool.Name, o.Pod, o.PodUID)
		}
		if !st.Usable().Contains(addr) {
			return fmt.Errorf("IP %s is not in spec.ips minus spec.excludeIPs of SpiderIPPool %s", addr, pool.Name)
		}
		// Allocate takes the first free address outside Reserved: everything but addr is
		// reserved, and the pod's other addresses here are not taken for a retry.
		only, err := ip.ParseSet([]string{addr.String()}, st.Version())
		if err != nil {
			return err
		}
		var avoid []netip.Addr
		for held, o := range st.All() {
			if o.PodUID == uid {
				avoid = append(avoid, held)
			}
		}
		got, _, err := st.Allocate(ipam.Claim{Owner: ipam.Owner{Pod: pk.String(), PodUID: uid}, Reserved: st.Usable().Subtract(only), Avoid: avoid})
		if err != nil {
			return fmt.Errorf("record %s in SpiderIPPool %s: %w", addr, pool.Name, err)
		}
		if got != addr {
			return fmt.Errorf("record %s in SpiderIPPool %s: the pool chose %s", addr, pool.Name, got)
		}
		added = true
		return nil
	})
	if err != nil {
		return "", err
	}
	node, err := writeSetEndpoint(ctx, c, pod, pool, netip.PrefixFrom(addr, subnet.Bits()), a)
	if err != nil {
		if added {
			// Leave nothing half done: the record goes again, only if still ours.
			if rerr := store.UpdatePool(ctx, pool.Name, func(st *ipam.PoolState) error { st.Release(addr, uid); return nil }); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo the record of %s in SpiderIPPool %s: %w", addr, pool.Name, rerr))
			}
		}
		return "", err
	}
	return fmt.Sprintf("set %s from SpiderIPPool %s on interface %s of pod %s (UID %s, node %s)", addr, pool.Name, a.nic, pk, uid, orDash(node)), nil
}

// choosePool returns the named pool, or the one pool whose IPs contain addr.
func choosePool(x *index, addr netip.Addr, name string) (*v2beta1.SpiderIPPool, error) {
	if name != "" {
		p := x.pools[name]
		if p == nil {
			return nil, fmt.Errorf("SpiderIPPool %q not found", name)
		}
		return p, nil
	}
	var found []string
	for _, n := range sortedKeys(x.pools) {
		if set, err := usable(x.pools[n]); err == nil && set.Contains(addr) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no SpiderIPPool has %s in its IPs", addr)
	case 1:
		return x.pools[found[0]], nil
	default:
		return nil, fmt.Errorf("SpiderIPPools %s all have %s in their IPs: choose one with --pool", strings.Join(found, ", "), addr)
	}
}

// checkNIC refuses an interface that already has another address of addr's family.
func checkNIC(ep *v2beta1.SpiderEndpoint, nic string, addr netip.Addr) error {
	for _, d := range ep.Status.Current.IPs {
		if d.NIC != nic {
			continue
		}
		cur := d.IPv4
		if addr.Is6() && !addr.Is4In6() {
			cur = d.IPv6
		}
		if cur == nil || *cur == "" {
			return nil
		}
		if a, err := parseEndpointAddr(*cur); err == nil && a == addr {
			return nil
		}
		return fmt.Errorf("SpiderEndpoint %s/%s: interface %s already has %s: release it first", ep.Namespace, ep.Name, nic, *cur)
	}
	return nil
}

// writeSetEndpoint lists prefix on the interface of pod's endpoint, creating the endpoint when
// missing, and returns the node it records.
func writeSetEndpoint(ctx context.Context, c client.Client, pod *corev1.Pod, pool *v2beta1.SpiderIPPool, prefix netip.Prefix, a setArgs) (string, error) {
	k := client.ObjectKeyFromObject(pod)
	var node string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ep := &v2beta1.SpiderEndpoint{}
		err := c.Get(ctx, k, ep)
		create := apierrors.IsNotFound(err)
		switch {
		case create:
			// A failed lookup of a ReplicaSet or Job leaves that owner as the top controller.
			top, _ := workload.TopController(ctx, c, pod, nil)
			ep = &v2beta1.SpiderEndpoint{
				ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, Finalizers: []string{v2beta1.Finalizer}},
				Status: v2beta1.WorkloadEndpointStatus{
					Current:             v2beta1.PodIPAllocation{UID: string(pod.UID), Node: pod.Spec.NodeName, IPs: []v2beta1.IPAllocationDetail{}},
					OwnerControllerType: top.Kind, OwnerControllerName: top.Name,
				},
			}
			// Like the agent's: owned by the pod so that it goes with it, except a StatefulSet
			// member's, which must outlive its pod.
			if !(a.enableSts && top.Kind == workload.KindStatefulSet) {
				ep.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
					Controller: new(false), BlockOwnerDeletion: new(false)}}
			}
		case err != nil:
			return fmt.Errorf("get SpiderEndpoint %s: %w", k, err)
		case ep.Status.Current.UID != string(pod.UID):
			return fmt.Errorf("SpiderEndpoint %s is of pod UID %s, an earlier incarnation: release its IPs first", k, ep.Status.Current.UID)
		}
		if a.node != "" {
			ep.Status.Current.Node = a.node
		}
		if err := checkNIC(ep, a.nic, prefix.Addr()); err != nil {
			return err
		}
		i := slices.IndexFunc(ep.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == a.nic })
		if i < 0 {
			ep.Status.Current.IPs = append(ep.Status.Current.IPs, v2beta1.IPAllocationDetail{NIC: a.nic})
			i = len(ep.Status.Current.IPs) - 1
		}
		d := &ep.Status.Current.IPs[i]
		if prefix.Addr().Is4() {
			d.IPv4, d.IPv4Pool, d.IPv4Gateway = new(prefix.String()), new(pool.Name), pool.Spec.Gateway
		} else {
			d.IPv6, d.IPv6Pool, d.IPv6Gateway = new(prefix.String()), new(pool.Name), pool.Spec.Gateway
		}
		node = ep.Status.Current.Node
		if create {
			return c.Create(ctx, ep)
		}
		return c.Update(ctx, ep)
	})
	if err != nil {
		return "", fmt.Errorf("write SpiderEndpoint %s: %w", k, err)
	}
	return node, nil
}

// hasContainerID reports whether one of pod's containers has ID id ("<runtime>://<id>" or the
// bare ID), or whether the pod reports no container ID at all (nothing to check against).
func hasContainerID(pod *corev1.Pod, id string) bool {
	reported := false
	for _, cs := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		if cs.ContainerID == "" {
			continue
		}
		reported = true
		if cs.ContainerID == id || strings.HasSuffix(cs.ContainerID, "://"+id) {
			return true
		}
	}
	return !reported
}
