package ctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spiderpool-go/spiderpool/internal/binding"
)

func newIPSetCommand(g *globals) *cobra.Command {
	req := binding.Request{PodNamespace: "default", Interface: binding.DefaultInterface, EnableStatefulSet: true}
	var ipFlag string
	cmd := &cobra.Command{
		Use:   "set [IP] --pod NAME [--namespace NS] [--interface NIC] [--node NODE] [--pool POOL]",
		Short: "Bind a free IP to a pod: a pool record and its SpiderEndpoint entry",
		Long: `Bind a free IP to an existing pod: record it for the pod's UID in the pool whose IPs contain it
(or --pool), through the pool's compare-and-swap, and list it on the interface of the pod's
SpiderEndpoint, creating the endpoint when the pod has none. An IP recorded for another pod, an
endpoint of an earlier incarnation, or an interface that already has an address of that family
is refused: release first. --containerid is accepted for upstream compatibility and checked
against the pod's containers when they report IDs; SpiderEndpoint has no field that stores it.
spiderpool-controller's PUT /v1/ipam/ip does the same through the same code.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := ipFromArgs(args, ipFlag)
			if err != nil {
				return err
			}
			if req.PodName == "" {
				return errors.New("--pod is required")
			}
			c, err := g.kube()
			if err != nil {
				return err
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			r := req
			r.IP = addr
			res, err := binding.Set(ctx, c, r)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ipFlag, "ip", "", "the IP (instead of the argument)")
	f.StringVar(&req.PodName, "pod", "", "pod name (required)")
	f.StringVarP(&req.PodNamespace, "namespace", "n", req.PodNamespace, "pod namespace")
	f.StringVar(&req.Interface, "interface", req.Interface, "interface in the pod")
	f.StringVar(&req.Node, "node", "", "node recorded in a new SpiderEndpoint (default: the pod's node)")
	f.StringVar(&req.Pool, "pool", "", "pool to record the IP in (default: the one pool whose IPs contain it)")
	f.StringVar(&req.ContainerID, "containerid", "", "the pod's container ID, checked against its status (not stored)")
	f.BoolVar(&req.EnableStatefulSet, "enable-statefulset", req.EnableStatefulSet, "a StatefulSet pod's new endpoint has no owner, so that it outlives the pod (ipam.enableStatefulSet)")
	return cmd
}
