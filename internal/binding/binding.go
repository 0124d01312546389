package binding

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/ipam/kubestore"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// DefaultInterface is the interface bound when a Request names none.
const DefaultInterface = "eth0"

// Kinds of refusal, matched with errors.Is on an *Error.
var (
	// ErrInvalid: the request is malformed, or asks for something the pool cannot give (an
	// address outside its IPs).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the pod, the pool or the container named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the cluster's state forbids the binding until something is released: the
	// address is another pod's, the interface has another address, the pod is gone or another
	// incarnation holds its SpiderEndpoint.
	ErrConflict = errors.New("conflict")
)

// Error is a refusal of a Request, tied to the field it is about.
type Error struct {
	Kind  error  // ErrInvalid, ErrNotFound or ErrConflict
	Field string // the Request field, by its JSON name: ip, pool, podNamespace, podName, podUID, interface, containerID
	Msg   string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Request binds IP to interface Interface of pod PodNamespace/PodName.
type Request struct {
	IP netip.Addr
	// Pool records the address; "" means the one pool whose IPs (minus excludeIPs) contain it.
	Pool         string
	PodNamespace string
	PodName      string
	// PodUID, when set, must be the pod's: a binding meant for one incarnation must not land
	// on the next.
	PodUID string
	// Interface is the interface in the pod; "" means DefaultInterface.
	Interface string
	// Node is recorded in a SpiderEndpoint the binding creates or updates; "" keeps the
	// endpoint's or takes the pod's.
	Node string
	// ContainerID, when set, must be one of the pod's containers while they report IDs; nothing
	// stores it (SpiderEndpoint has no field for it). Upstream's CLI takes it.
	ContainerID string
	// EnableStatefulSet is ipam.enableStatefulSet: a StatefulSet member's new endpoint then has
	// no owner, so that it outlives the pod like the one the agent writes.
	EnableStatefulSet bool
}

// check validates the fields that need no cluster state and fills the defaults.
func (r *Request) check() error {
	if r.Interface == "" {
		r.Interface = DefaultInterface
	}
	switch {
	case !r.IP.IsValid():
		return refuse(ErrInvalid, "ip", "ip is required")
	case r.IP.Zone() != "":
		return refuse(ErrInvalid, "ip", "ip %s: an address with a zone cannot be bound", r.IP)
	case r.PodNamespace == "":
		return refuse(ErrInvalid, "podNamespace", "podNamespace is required")
	case r.PodName == "":
		return refuse(ErrInvalid, "podName", "podName is required")
	}
	if err := ipam.CheckInterfaceName(r.Interface); err != nil {
		return refuse(ErrInvalid, "interface", "%v", err)
	}
	return nil
}

// Result is what a binding recorded.
type Result struct {
	Address   netip.Prefix // the address with its pool's prefix length, as the endpoint lists it
	Pool      string
	Interface string
	Pod       string // namespace/name
	PodUID    string
	Node      string // as the endpoint records it
	// Recorded is false when the pool already recorded the address for the pod (a repeated
	// binding, which changes nothing).
	Recorded bool
}

// String says what was done, for people.
func (r *Result) String() string {
	node := r.Node
	if node == "" {
		node = "-"
	}
	return fmt.Sprintf("set %s from SpiderIPPool %s on interface %s of pod %s (UID %s, node %s)",
		r.Address.Addr(), r.Pool, r.Interface, r.Pod, r.PodUID, node)
}

// Set binds req.IP to the pod: it records the address for the pod's UID in the pool and lists it
// on the interface in the pod's SpiderEndpoint, creating the endpoint when the pod has none.
// Repeating a binding changes nothing and succeeds. It refuses, with an *Error and nothing
// written, a pod that is missing, of another UID, terminating or finished; an address another pod
// holds in any pool; an address outside the pool; an endpoint of an earlier incarnation of the
// pod; an interface that already has another address of the family; and an address a
// SpiderReservedIP reserves. If the endpoint cannot be written, the pool record it made is taken
// back.
func Set(ctx context.Context, c client.Client, req Request) (*Result, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	pk := client.ObjectKey{Namespace: req.PodNamespace, Name: req.PodName}
	pod := &corev1.Pod{}
	if err := c.Get(ctx, pk, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, refuse(ErrNotFound, "podName", "pod %s not found", pk)
		}
		return nil, fmt.Errorf("get pod %s: %w", pk, err)
	}
	uid := string(pod.UID)
	switch {
	case req.PodUID != "" && req.PodUID != uid:
		return nil, refuse(ErrConflict, "podUID", "pod %s has UID %s, not %s", pk, uid, req.PodUID)
	case pod.DeletionTimestamp != nil:
		return nil, refuse(ErrConflict, "podName", "pod %s is terminating: it will not use an IP", pk)
	case !workload.PodAlive(pod):
		return nil, refuse(ErrConflict, "podName", "pod %s has finished (%s): it will not use an IP", pk, pod.Status.Phase)
	case req.ContainerID != "" && !hasContainerID(pod, req.ContainerID):
		return nil, refuse(ErrNotFound, "containerID", "pod %s has no container %q", pk, req.ContainerID)
	}

	var pools v2beta1.SpiderIPPoolList
	if err := c.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	if err := checkHolders(ctx, c, pools.Items, req.IP, uid); err != nil {
		return nil, err
	}
	pool, err := choosePool(pools.Items, req.IP, req.Pool)
	if err != nil {
		return nil, err
	}
	subnet, err := pool.Spec.SubnetPrefix()
	if err != nil {
		return nil, fmt.Errorf("SpiderIPPool %s: spec.subnet: %w", pool.Name, err)
	}
	ep := &v2beta1.SpiderEndpoint{}
	switch err := c.Get(ctx, pk, ep); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get SpiderEndpoint %s: %w", pk, err)
	default:
		if err := checkEndpoint(ep, uid, req.Interface, req.IP); err != nil {
			return nil, err
		}
	}

	store, err := NewStore(c, pod.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	// A reserved address is never handed out (docs/design/ipam-invariants.md, invariant 4), by hand
	// neither.
	reserved, err := store.Reserved(ctx, ipam.PoolVersion(pool))
	if err != nil {
		return nil, err
	}
	if reserved.Contains(req.IP) {
		return nil, refuse(ErrConflict, "ip", "IP %s is reserved by a SpiderReservedIP: it is never handed out", req.IP)
	}
	recorded, err := record(ctx, store, pool.Name, req.IP, ipam.Owner{Pod: pk.String(), PodUID: uid})
	if err != nil {
		return nil, err
	}
	prefix := netip.PrefixFrom(req.IP, subnet.Bits())
	node, err := writeEndpoint(ctx, c, pod, pool, prefix, req)
	if err != nil {
		if recorded {
			// Leave nothing half done: the record goes again, only if still the pod's.
			if rerr := store.UpdatePool(ctx, pool.Name, func(st *ipam.PoolState) error { st.Release(req.IP, uid); return nil }); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo the record of %s in SpiderIPPool %s: %w", req.IP, pool.Name, rerr))
			}
		}
		return nil, err
	}
	return &Result{Address: prefix, Pool: pool.Name, Interface: req.Interface, Pod: pk.String(), PodUID: uid, Node: node, Recorded: recorded}, nil
}

// NewStore returns the store a command line or a one-off request writes records through: each
// pool's in its own format (docs/design/ipam-blocks.md), read live through c and written with one
// compare-and-swap per call, retried on conflicts. A record it adds to a block names node, the
// pod's, so that the block carries that node's holder label and the pod's agent sees the record.
func NewStore(c client.Client, node string) (*blockstore.Router, error) {
	// Blocks are read live too: with AllBlocks the reader must see every block of a pool.
	blocks, err := blockstore.New(c, c, c, blockstore.Options{AllBlocks: true, NodeName: node})
	if err != nil {
		return nil, err
	}
	return blockstore.NewRouter(blocks, kubestore.New(c, c, kubestore.Options{Unbatched: true})), nil
}

// checkHolders refuses addr when any pool records it for another pod UID than uid, reading the
// records of a pool in block format from its blocks through c. Pools whose status records do not
// decode are skipped here; the chosen pool's are decoded again when it is written.
func checkHolders(ctx context.Context, c client.Reader, pools []v2beta1.SpiderIPPool, addr netip.Addr, uid string) error {
	for i := range pools {
		p := &pools[i]
		if ipblock.InBlocks(p) {
			if subnet, err := p.Spec.SubnetPrefix(); err == nil && !subnet.Contains(addr) {
				continue // no block of p can hold addr
			}
		}
		allocs, err := blockstore.Allocations(ctx, c, p)
		if err != nil {
			if ipblock.InBlocks(p) {
				return fmt.Errorf("SpiderIPPool %s: %w", p.Name, err)
			}
			continue
		}
		for k, a := range allocs {
			if held, err := ip.ParseAddr(k); err == nil && held == addr && a.PodUID != uid {
				return refuse(ErrConflict, "ip", "IP %s is recorded in SpiderIPPool %s for pod %s (UID %s): release it first",
					addr, p.Name, a.NamespacedName, a.PodUID)
			}
		}
	}
	return nil
}

// choosePool returns the pool named name, or the one pool whose usable IPs contain addr.
func choosePool(pools []v2beta1.SpiderIPPool, addr netip.Addr, name string) (*v2beta1.SpiderIPPool, error) {
	if name != "" {
		for i := range pools {
			if pools[i].Name == name {
				return &pools[i], nil
			}
		}
		return nil, refuse(ErrNotFound, "pool", "SpiderIPPool %q not found", name)
	}
	var found []*v2beta1.SpiderIPPool
	for i := range pools {
		if set, err := pools[i].Spec.UsableIPs(); err == nil && set.Contains(addr) {
			found = append(found, &pools[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, refuse(ErrNotFound, "ip", "no SpiderIPPool has %s in its IPs", addr)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, p := range found {
		names[i] = p.Name
	}
	slices.Sort(names)
	return nil, refuse(ErrInvalid, "pool", "SpiderIPPools %s all have %s in their IPs: name one as the pool", strings.Join(names, ", "), addr)
}

// checkEndpoint refuses an endpoint of another incarnation than uid, and an interface nic that
// already lists another address of addr's family.
func checkEndpoint(ep *v2beta1.SpiderEndpoint, uid, nic string, addr netip.Addr) error {
	if ep.Status.Current.UID != uid {
		return refuse(ErrConflict, "podName", "SpiderEndpoint %s/%s is of pod UID %s, an earlier incarnation: release its IPs first",
			ep.Namespace, ep.Name, ep.Status.Current.UID)
	}
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
		if a, ok := endpointAddr(*cur); ok && a == addr {
			return nil
		}
		return refuse(ErrConflict, "interface", "SpiderEndpoint %s/%s: interface %s already has %s: release it first", ep.Namespace, ep.Name, nic, *cur)
	}
	return nil
}

// endpointAddr reads an endpoint's "addr/prefix" or a bare address.
func endpointAddr(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	a, err := ip.ParseAddr(s)
	return a, err == nil
}

// record writes the record of addr for owner in pool and reports whether it was new. Everything
// else in the pool is treated as reserved, so that the allocator's own search lands on addr.
func record(ctx context.Context, store ipam.Store, pool string, addr netip.Addr, owner ipam.Owner) (bool, error) {
	var added bool
	err := store.UpdatePool(ctx, pool, func(st *ipam.PoolState) error {
		added = false
		if o, ok := st.Record(addr); ok {
			if o.PodUID == owner.PodUID {
				return nil
			}
			return refuse(ErrConflict, "ip", "IP %s is recorded in SpiderIPPool %s for pod %s (UID %s): release it first", addr, pool, o.Pod, o.PodUID)
		}
		if !st.Usable().Contains(addr) {
			return refuse(ErrInvalid, "ip", "IP %s is not in spec.ips minus spec.excludeIPs of SpiderIPPool %s", addr, pool)
		}
		only, err := ip.ParseSet([]string{ip.FormatAddr(addr)}, st.Version())
		if err != nil {
			return err
		}
		// The pod's other addresses here are not taken for a retry of this one.
		var avoid []netip.Addr
		for held, o := range st.All() {
			if o.PodUID == owner.PodUID {
				avoid = append(avoid, held)
			}
		}
		got, _, err := st.Allocate(ipam.Claim{Owner: owner, Reserved: st.Usable().Subtract(only), Avoid: avoid})
		if err != nil {
			return fmt.Errorf("record %s in SpiderIPPool %s: %w", addr, pool, err)
		}
		if got != addr {
			return fmt.Errorf("record %s in SpiderIPPool %s: the pool chose %s", addr, pool, got)
		}
		added = true
		return nil
	})
	if errors.Is(err, ipam.ErrPoolNotFound) {
		return false, refuse(ErrNotFound, "pool", "SpiderIPPool %q not found", pool)
	}
	return added, err
}

// NewEndpoint returns the SpiderEndpoint skeleton of pod's first addresses, without any: recorded
// for the pod's UID on node, labelled with its top controller, held by the finalizer until its
// addresses are released, and owned by the pod (not as controller, and without blocking the pod's
// deletion) so that it goes with it, except a StatefulSet member's when enableStatefulSet is set,
// which must outlive its pod to give the next incarnation its addresses.
func NewEndpoint(pod *corev1.Pod, top workload.Controller, node string, enableStatefulSet bool) *v2beta1.SpiderEndpoint {
	ep := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, Finalizers: []string{v2beta1.Finalizer}},
		Status: v2beta1.WorkloadEndpointStatus{
			Current:             v2beta1.PodIPAllocation{UID: string(pod.UID), Node: node, IPs: []v2beta1.IPAllocationDetail{}},
			OwnerControllerType: top.Kind,
			OwnerControllerName: top.Name,
		},
	}
	if !(enableStatefulSet && top.Kind == workload.KindStatefulSet) {
		ep.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: workload.KindPod, Name: pod.Name, UID: pod.UID,
			Controller: new(false), BlockOwnerDeletion: new(false)}}
	}
	return ep
}

// writeEndpoint lists prefix on the interface of pod's endpoint, creating the endpoint when
// missing, and returns the node it records.
func writeEndpoint(ctx context.Context, c client.Client, pod *corev1.Pod, pool *v2beta1.SpiderIPPool, prefix netip.Prefix, req Request) (string, error) {
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
			ep = NewEndpoint(pod, top, pod.Spec.NodeName, req.EnableStatefulSet)
		case err != nil:
			return fmt.Errorf("get SpiderEndpoint %s: %w", k, err)
		}
		if err := checkEndpoint(ep, string(pod.UID), req.Interface, prefix.Addr()); err != nil {
			return err
		}
		if req.Node != "" {
			ep.Status.Current.Node = req.Node
		}
		i := slices.IndexFunc(ep.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == req.Interface })
		if i < 0 {
			ep.Status.Current.IPs = append(ep.Status.Current.IPs, v2beta1.IPAllocationDetail{NIC: req.Interface})
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
	var refusal *Error
	if errors.As(err, &refusal) {
		return "", err
	}
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
