package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/binding"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

func newIPCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ip", Short: "Show, release or set one IP address"}
	cmd.AddCommand(newIPShowCommand(g), newIPReleaseCommand(g), newIPSetCommand(g))
	return cmd
}

// ipFromArgs takes the address from the one argument or from --ip (upstream's form).
func ipFromArgs(args []string, flag string) (netip.Addr, error) {
	s := flag
	switch {
	case len(args) == 1 && flag != "" && args[0] != flag:
		return netip.Addr{}, fmt.Errorf("two different IPs given: argument %q and --ip %q", args[0], flag)
	case len(args) == 1:
		s = args[0]
	case len(args) > 1:
		return netip.Addr{}, fmt.Errorf("want one IP, got %d arguments", len(args))
	}
	if s == "" {
		return netip.Addr{}, errors.New("an IP is required: pass it as the argument or with --ip")
	}
	a, err := ip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IP %q: %w", s, err)
	}
	return a, nil
}

// Holder is one claim on an address: a pool record, or an endpoint entry no record backs.
type Holder struct {
	Pool        string `json:"pool,omitempty"`
	Recorded    bool   `json:"recorded"` // the pool has a record of the address for PodUID
	Pod         string `json:"pod"`
	PodUID      string `json:"podUID"`
	PodState    string `json:"podState"`
	Node        string `json:"node,omitempty"`
	Interface   string `json:"interface,omitempty"`
	ContainerID string `json:"containerID,omitempty"`
	Endpoint    string `json:"endpoint"` // the state of the pod's SpiderEndpoint as to this address
	StatefulSet string `json:"statefulSet,omitempty"`

	live   bool // the pod exists with PodUID and has not finished
	epOurs bool // the pod's SpiderEndpoint is of PodUID
}

// IPReport is what ip show prints.
type IPReport struct {
	IP      string   `json:"ip"`
	Holders []Holder `json:"holders"`
}

// lookupIP gathers every pool record and endpoint entry of addr, with the pods they name.
func lookupIP(ctx context.Context, c client.Reader, addr netip.Addr) (*IPReport, *index, error) {
	snap, err := loadSnapshot(ctx, c, false)
	if err != nil {
		return nil, nil, err
	}
	x := newIndex(snap)
	names := map[string]bool{}
	for _, r := range x.byAddr[addr] {
		names[r.Pod] = true
	}
	for _, e := range x.epByAddr[addr] {
		names[e.Endpoint] = true
	}
	for _, k := range sortedKeys(names) {
		ns, name := splitKey(k)
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, nil, fmt.Errorf("get pod %s: %w", k, err)
		}
		snap.Pods = append(snap.Pods, p)
	}
	x = newIndex(snap)
	rep := &IPReport{IP: addr.String(), Holders: []Holder{}}
	for _, r := range x.byAddr[addr] {
		rep.Holders = append(rep.Holders, x.holder(r.Pod, r.PodUID, r.Pool, true, addr))
	}
	for _, e := range x.epByAddr[addr] {
		if slices.ContainsFunc(x.byAddr[addr], func(r Record) bool { return r.Pod == e.Endpoint && r.PodUID == e.UID && r.Pool == e.Pool }) {
			continue
		}
		rep.Holders = append(rep.Holders, x.holder(e.Endpoint, e.UID, e.Pool, false, addr))
	}
	return rep, x, nil
}

// holder describes pod k of uid as a holder of addr from pool.
func (x *index) holder(k, uid, pool string, recorded bool, addr netip.Addr) Holder {
	p, ep := x.pods[k], x.endpoints[k]
	h := Holder{Pool: pool, Recorded: recorded, Pod: k, PodUID: uid, PodState: podState(p, uid), live: podHolds(p, uid),
		StatefulSet: workload.StatefulSetOf(p, ep)}
	if p != nil && string(p.UID) == uid {
		h.Node = p.Spec.NodeName
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			if cs.ContainerID != "" {
				h.ContainerID = cs.ContainerID
				break
			}
		}
	}
	switch {
	case ep == nil:
		h.Endpoint = "missing"
	case ep.Status.Current.UID != uid:
		h.Endpoint = fmt.Sprintf("of another pod UID %s", ep.Status.Current.UID)
	default:
		h.epOurs = true
		h.Node = ep.Status.Current.Node
		h.Endpoint = "does not list it"
		for _, e := range x.epByAddr[addr] {
			if e.Endpoint == k && e.Pool == pool {
				h.Endpoint, h.Interface = "lists it", e.NIC
			}
		}
		if !recorded {
			h.Endpoint = "lists it, but the pool has no record"
		}
	}
	return h
}

func newIPShowCommand(g *globals) *cobra.Command {
	var ipFlag, output string
	cmd := &cobra.Command{
		Use:   "show [IP]",
		Short: "Show which pod holds an IP: pool, pod, UID, node, interface, container, endpoint",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			addr, err := ipFromArgs(args, ipFlag)
			if err != nil {
				return err
			}
			c, err := g.kube()
			if err != nil {
				return err
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			rep, _, err := lookupIP(ctx, c, addr)
			if err != nil {
				return err
			}
			if len(rep.Holders) == 0 {
				return fmt.Errorf("IP %s is not allocated: no SpiderIPPool records it and no SpiderEndpoint lists it", addr)
			}
			if output == formatJSON {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if err := writeTable(cmd.OutOrStdout(), holderHeader, holderRows(rep)); err != nil {
				return err
			}
			if !slices.ContainsFunc(rep.Holders, func(h Holder) bool { return h.Recorded }) {
				return fmt.Errorf("IP %s is not allocated: no SpiderIPPool records it, yet a SpiderEndpoint lists it (run spiderpoolctl doctor)", addr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ipFlag, "ip", "", "the IP (instead of the argument)")
	cmd.Flags().StringVarP(&output, "output", "o", formatTable, "table or json")
	return cmd
}

var holderHeader = []string{"IP", "POOL", "POD", "POD-UID", "POD-STATE", "NODE", "INTERFACE", "CONTAINER-ID", "ENDPOINT"}

func holderRows(rep *IPReport) [][]string {
	var rows [][]string
	for _, h := range rep.Holders {
		pool := h.Pool
		if !h.Recorded && pool != "" {
			pool += " (no record)"
		}
		rows = append(rows, []string{rep.IP, pool, h.Pod, h.PodUID, h.PodState, h.Node, h.Interface, h.ContainerID, h.Endpoint})
	}
	return rows
}

func newIPReleaseCommand(g *globals) *cobra.Command {
	var ipFlag string
	var force, enableSts bool
	cmd := &cobra.Command{
		Use:   "release [IP]",
		Short: "Release an IP from its pool record and its SpiderEndpoint",
		Long: `Release an IP: remove its pool record (compare-and-swap on the pool, removing only the record of
the UID that holds it, as the agent and the GC do) and remove it from the pod's SpiderEndpoint,
deleting the endpoint when nothing is left in it and its pod is gone.

A pod that still holds the IP (it exists with the recorded UID and has not finished), or a
StatefulSet member its StatefulSet expects back, keeps it unless --force is given.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := ipFromArgs(args, ipFlag)
			if err != nil {
				return err
			}
			c, err := g.kube()
			if err != nil {
				return err
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			rep, _, err := lookupIP(ctx, c, addr)
			if err != nil {
				return err
			}
			if len(rep.Holders) == 0 {
				return fmt.Errorf("IP %s is not allocated: no SpiderIPPool records it and no SpiderEndpoint lists it", addr)
			}
			if !force {
				for _, h := range rep.Holders {
					if err := refuse(ctx, c, addr, h, enableSts); err != nil {
						return err
					}
				}
			}
			return release(ctx, c, cmd, addr, rep)
		},
	}
	cmd.Flags().StringVar(&ipFlag, "ip", "", "the IP (instead of the argument)")
	cmd.Flags().BoolVar(&force, "force", false, "release even if a live pod holds the IP")
	cmd.Flags().BoolVar(&enableSts, "enable-statefulset", true, "StatefulSet members keep their IPs while their StatefulSet expects them (ipam.enableStatefulSet)")
	return cmd
}

// refuse returns why h must keep addr without --force, or nil.
func refuse(ctx context.Context, c client.Reader, addr netip.Addr, h Holder, enableSts bool) error {
	if h.live {
		return fmt.Errorf("IP %s is held by pod %s (UID %s) on node %s, which is %s: not released; pass --force to release it anyway",
			addr, h.Pod, h.PodUID, orDash(h.Node), h.PodState)
	}
	// As in the GC, a member keeps what its endpoint holds for the UID while its StatefulSet
	// expects it back.
	if enableSts && h.StatefulSet != "" && h.epOurs {
		ns, name := splitKey(h.Pod)
		wants, err := workload.StatefulSetWantsPod(ctx, c, ns, h.StatefulSet, name)
		if err != nil {
			return err
		}
		if wants {
			return fmt.Errorf("IP %s is kept for pod %s (UID %s, node %s) of StatefulSet %s/%s, which expects it back: not released; pass --force to release it anyway",
				addr, h.Pod, h.PodUID, orDash(h.Node), ns, h.StatefulSet)
		}
	}
	return nil
}

// release removes addr's records and endpoint entries.
func release(ctx context.Context, c client.Client, cmd *cobra.Command, addr netip.Addr, rep *IPReport) error {
	out := cmd.OutOrStdout()
	// One live read and one compare-and-swap write per call, retried on conflicts, on the pool's
	// status or, for a pool in block format, on the block holding the address.
	store, err := binding.NewStore(c, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range rep.Holders {
		if !h.Recorded {
			continue
		}
		var released bool
		err := store.UpdatePool(ctx, h.Pool, func(st *ipam.PoolState) error {
			released = st.Release(addr, h.PodUID)
			return nil
		})
		switch {
		case errors.Is(err, ipam.ErrPoolNotFound):
			fmt.Fprintf(out, "SpiderIPPool %s is gone, and its record of %s with it\n", h.Pool, addr)
		case err != nil:
			errs = append(errs, fmt.Errorf("release %s from SpiderIPPool %s: %w", addr, h.Pool, err))
		case released:
			fmt.Fprintf(out, "released %s from SpiderIPPool %s (pod %s, UID %s)\n", addr, h.Pool, h.Pod, h.PodUID)
		default:
			fmt.Fprintf(out, "SpiderIPPool %s no longer records %s for pod %s (UID %s): released meanwhile\n", h.Pool, addr, h.Pod, h.PodUID)
		}
	}
	done := map[string]bool{}
	for _, h := range rep.Holders {
		if done[h.Pod+"@"+h.PodUID] {
			continue
		}
		done[h.Pod+"@"+h.PodUID] = true
		msg, err := dropFromEndpoint(ctx, c, h, addr)
		if err != nil {
			errs = append(errs, err)
		} else if msg != "" {
			fmt.Fprintln(out, msg)
		}
	}
	return errors.Join(errs...)
}

// dropFromEndpoint removes addr from the SpiderEndpoint of h's pod incarnation. The write carries
// the resourceVersion of a fresh read, so a concurrent agent update is re-read, not overwritten.
func dropFromEndpoint(ctx context.Context, c client.Client, h Holder, addr netip.Addr) (string, error) {
	ns, name := splitKey(h.Pod)
	k := client.ObjectKey{Namespace: ns, Name: name}
	var msg string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		msg = ""
		ep := &v2beta1.SpiderEndpoint{}
		if err := c.Get(ctx, k, ep); err != nil {
			return client.IgnoreNotFound(err)
		}
		if ep.Status.Current.UID != h.PodUID {
			return nil // a newer incarnation's endpoint: not ours to change
		}
		if !removeAddr(ep, addr) {
			return nil
		}
		if len(ep.Status.Current.IPs) > 0 || h.live {
			if err := c.Update(ctx, ep); err != nil {
				return err
			}
			msg = fmt.Sprintf("removed %s from SpiderEndpoint %s", addr, h.Pod)
			return nil
		}
		// Nothing left and no live pod: delete it, as a DEL would.
		if controllerutil.RemoveFinalizer(ep, v2beta1.Finalizer) {
			if err := c.Update(ctx, ep); err != nil {
				return err
			}
		}
		uid := ep.UID
		if err := c.Delete(ctx, ep, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return err
		}
		msg = fmt.Sprintf("deleted SpiderEndpoint %s: no address left", h.Pod)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("remove %s from SpiderEndpoint %s: %w", addr, h.Pod, err)
	}
	return msg, nil
}

// removeAddr drops addr from ep's entries (an entry left without address goes) and reports
// whether anything changed.
func removeAddr(ep *v2beta1.SpiderEndpoint, addr netip.Addr) bool {
	changed := false
	kept := ep.Status.Current.IPs[:0]
	for _, d := range ep.Status.Current.IPs {
		if a, err := parseEndpointAddr(deref(d.IPv4)); err == nil && a == addr {
			d.IPv4, d.IPv4Pool, d.IPv4Gateway = nil, nil, nil
			changed = true
		}
		if a, err := parseEndpointAddr(deref(d.IPv6)); err == nil && a == addr {
			d.IPv6, d.IPv6Pool, d.IPv6Gateway = nil, nil, nil
			changed = true
		}
		if d.IPv4 == nil && d.IPv6 == nil {
			continue
		}
		kept = append(kept, d)
	}
	ep.Status.Current.IPs = kept
	return changed
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
