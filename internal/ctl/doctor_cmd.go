package ctl

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/workload"
)

// DoctorReport is what doctor -o json prints.
type DoctorReport struct {
	Pools     int       `json:"pools"`
	Records   int       `json:"records"`
	Endpoints int       `json:"endpoints"`
	Findings  []Finding `json:"findings"`
}

var findingHeader = []string{"CHECK", "IP", "POOLS", "ENDPOINTS", "DETAIL"}

func findingRows(fs []Finding) [][]string {
	var rows [][]string
	for _, f := range fs {
		rows = append(rows, []string{f.Check, f.IP, strings.Join(f.Pools, ","), strings.Join(f.Endpoints, ","), f.Message})
	}
	return rows
}

func newDoctorCommand(g *globals) *cobra.Command {
	var output string
	var pools []string
	enableSts := true
	enableKubevirt := true
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the IP allocation invariants; exit 0 when clean, 1 on findings, 2 on errors",
		Long: `Check the IP allocation invariants and report every finding with the objects it names:
  duplicate-ip             an IP recorded twice (in two pools, or twice in one)
  orphan-record            a record whose pod is gone, replaced (other UID) or finished
  record-without-endpoint  a live pod's record its SpiderEndpoint does not list
  endpoint-not-recorded    an endpoint IP its pool does not record for that pod
  orphan-endpoint          a SpiderEndpoint whose pod is gone or replaced
  allocated-count          status.allocatedIPCount differs from the records
  bad-record               a record or endpoint entry that does not decode or lies outside its pool
StatefulSet members are matched by pod name while their StatefulSet expects them
(--enable-statefulset, ipam.enableStatefulSet). Exit code 0: clean; 1: findings; 2: errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fail := func(err error) error { return &exitError{code: ExitError, err: err} }
			if err := checkFormat(output); err != nil {
				return fail(err)
			}
			c, err := g.kube()
			if err != nil {
				return fail(err)
			}
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			snap, err := loadSnapshot(ctx, c, true)
			if err != nil {
				return fail(err)
			}
			for _, p := range pools {
				if !slices.ContainsFunc(snap.Pools, func(sp v2beta1.SpiderIPPool) bool { return sp.Name == p }) {
					return fail(fmt.Errorf("--pool %s: SpiderIPPool %q not found", p, p))
				}
			}
			findings, err := Diagnose(ctx, snap, DoctorOptions{EnableStatefulSet: enableSts, Pools: pools,
				StatefulSetWants: func(ctx2 context.Context, ns, sts, pod string) (bool, error) {
					return workload.StatefulSetWantsPod(ctx2, c, ns, sts, pod)
				},
				EnableKubevirtStaticIP: enableKubevirt,
				VMWants: func(ctx2 context.Context, ns, vmi string) (bool, error) {
					return workload.VMWantsAddresses(ctx2, c, ns, vmi)
				}})
			if err != nil {
				return fail(err)
			}
			rep := doctorSummary(snap, pools)
			rep.Findings = findings
			if rep.Findings == nil {
				rep.Findings = []Finding{}
			}
			out := cmd.OutOrStdout()
			if output == formatJSON {
				if err := writeJSON(out, rep); err != nil {
					return fail(err)
				}
			} else {
				if len(findings) > 0 {
					if err := writeTable(out, findingHeader, findingRows(findings)); err != nil {
						return fail(err)
					}
				}
				fmt.Fprintf(out, "checked %d SpiderIPPools, %d IP records, %d SpiderEndpoints: %d finding(s)\n",
					rep.Pools, rep.Records, rep.Endpoints, len(findings))
			}
			if len(findings) > 0 {
				return &exitError{code: ExitFindings, err: fmt.Errorf("%d finding(s)", len(findings)), quiet: true}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", formatTable, "table or json")
	cmd.Flags().StringSliceVar(&pools, "pool", nil, "report only findings naming these pools (repeatable)")
	cmd.Flags().BoolVar(&enableSts, "enable-statefulset", enableSts, "StatefulSet members keep their IPs while their StatefulSet expects them (ipam.enableStatefulSet)")
	cmd.Flags().BoolVar(&enableKubevirt, "enable-kubevirt-static-ip", enableKubevirt, "KubeVirt VMs keep their IPs, named after their VirtualMachineInstance, while the VMI or VM exists (ipam.enableKubevirtStaticIP)")
	return cmd
}

// doctorSummary counts what was checked: with --pool, the named pools, their records and the
// endpoints listing an IP of theirs.
func doctorSummary(s *Snapshot, pools []string) DoctorReport {
	x := newIndex(s)
	if len(pools) == 0 {
		return DoctorReport{Pools: len(x.pools), Records: len(x.records), Endpoints: len(x.endpoints)}
	}
	var rep DoctorReport
	for _, p := range pools {
		if x.pools[p] != nil {
			rep.Pools++
			rep.Records += len(x.poolOf[p])
		}
	}
	for k := range x.endpoints {
		if slices.ContainsFunc(x.epOf[k], func(e EndpointIP) bool { return slices.Contains(pools, e.Pool) }) {
			rep.Endpoints++
		}
	}
	return rep
}
