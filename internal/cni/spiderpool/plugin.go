package spiderpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
	"github.com/spiderpool-go/spiderpool/internal/sriov"
)

// agent is what the plugin needs from spiderpool-agent; tests substitute it only to reach paths
// the real client cannot take (a panic).
type agent interface {
	Healthy(ctx context.Context) error
	Allocate(ctx context.Context, args *v1.IpamAddArgs) (*v1.IpamAddResponse, error)
	Release(ctx context.Context, args *v1.IpamDelArgs) error
	ReleaseAll(ctx context.Context, args *v1.IpamBatchDelArgs) error
	WorkloadEndpoint(ctx context.Context, podNamespace, podName string) (*v1.WorkloadEndpoint, error)
}

var _ agent = (*client.Client)(nil)

// plugin holds the process's outside world so that tests can replace it.
type plugin struct {
	stdout   io.Writer
	newAgent func(socketPath string) agent
	// master finds the master of interface ifName of the pod whose network namespace is at
	// netns, for match_master_subnet (sriov.Sysfs.Master).
	master func(netns, ifName string) (*sriov.Master, error)
}

// Funcs returns the plugin's CNI commands for cnirun.Main. GC is left out: the
// controller's garbage collector reclaims leaked addresses cluster-wide.
func Funcs() skel.CNIFuncs {
	p := &plugin{
		stdout:   os.Stdout,
		newAgent: func(socketPath string) agent { return client.New(socketPath) },
		master:   sriov.Sysfs{}.Master,
	}
	return p.funcs()
}

func (p *plugin) funcs() skel.CNIFuncs {
	return (&cnirun.Plugin[*call]{
		Name:   "spiderpool IPAM plugin",
		Setup:  p.setup,
		Add:    p.cmdAdd,
		Del:    p.cmdDel,
		Check:  p.cmdCheck,
		Status: p.cmdStatus,
	}).Funcs()
}

// call is one command's parsed input and collaborators.
type call struct {
	ctx        context.Context
	args       *skel.CmdArgs
	conf       *NetConf
	cniVersion string
	agent      agent
	log        *slog.Logger
}

// setup parses the configuration and opens the log for cnirun, which runs the command, turns a
// panic into an error (a runtime that believes an ADD succeeded starts a pod without an address)
// and logs a failure once: the returned error goes to the runtime's log on the node, the file is
// where operators of spiderpool look.
func (p *plugin) setup(command string, args *skel.CmdArgs) (*call, *slog.Logger, func(), error) {
	conf, cniVersion, err := loadConf(args.StdinData)
	if err != nil {
		return nil, nil, nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	log, closeLog := newLogger(&conf.IPAM)
	log = log.With("command", command, "containerID", args.ContainerID, "ifName", args.IfName, "netns", args.Netns)
	log.Debug("request", "config", conf.IPAM, "cniArgs", args.Args)

	return &call{
		ctx:        context.Background(),
		args:       args,
		conf:       conf,
		cniVersion: cniVersion,
		agent:      p.newAgent(conf.IPAM.IPAMUnixSocketPath),
		log:        log,
	}, log, closeLog, nil
}

// pod parses CNI_ARGS and adds the pod to the call's log.
func (c *call) pod() (podArgs, error) {
	pod, err := parseCNIArgs(c.args.Args)
	if err != nil {
		return podArgs{}, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	c.log = c.log.With("pod", pod.Namespace+"/"+pod.Name, "podUID", pod.UID)
	return pod, nil
}

func (p *plugin) cmdAdd(c *call) error {
	pod, err := c.pod()
	if err != nil {
		return err
	}
	var master *v1.Master
	if c.conf.IPAM.MatchMasterSubnet {
		if master, err = p.findMaster(c); err != nil {
			return err
		}
	}
	if err := c.agent.Healthy(c.ctx); err != nil {
		return types.NewError(types.ErrTryAgainLater, "unhealthy spiderpool-agent backend: "+err.Error(), "")
	}

	resp, err := c.agent.Allocate(c.ctx, &v1.IpamAddArgs{
		ContainerID:       c.args.ContainerID,
		IfName:            c.args.IfName,
		NetNamespace:      c.args.Netns,
		PodNamespace:      pod.Namespace,
		PodName:           pod.Name,
		PodUID:            pod.UID,
		DefaultIPv4IPPool: c.conf.IPAM.DefaultIPv4IPPool,
		DefaultIPv6IPPool: c.conf.IPAM.DefaultIPv6IPPool,
		CleanGateway:      c.conf.IPAM.CleanGateway,
		MatchMasterSubnet: c.conf.IPAM.MatchMasterSubnet,
		Master:            master,
	})
	if err != nil {
		return agentError("spiderpool IP allocation error", err)
	}

	if err := detect(c, resp); err != nil {
		return err
	}
	if err := p.printResult(c, resp); err != nil {
		// The addresses are held but the runtime will not learn them: give them back rather
		// than rely on the runtime's DEL or on GC.
		if relErr := c.agent.Release(c.ctx, delArgs(c, pod)); relErr != nil && !isNotFound(relErr) {
			return types.NewError(types.ErrInternal, fmt.Sprintf("%v; releasing the allocation again failed: %v", err, relErr), "")
		}
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return nil
}

// findMaster finds the master of the interface for match_master_subnet: for the SR-IOV VF the
// main plugin moved into the pod, its PF and the addresses the PF carries on the host. The plugin
// looks, not the agent, because the lookup enters the pod's network namespace: the runtime runs
// the plugin as root on the host with that namespace's path, while the agent runs without the
// capabilities and mounts to enter it. A master that cannot be found fails the ADD before the
// agent is asked for anything, so nothing is allocated.
func (p *plugin) findMaster(c *call) (*v1.Master, error) {
	m, err := p.master(c.args.Netns, c.args.IfName)
	if err != nil {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("match_master_subnet: find the master of %s: %v", c.args.IfName, err), "")
	}
	wire := &v1.Master{Name: m.Name}
	for _, a := range m.Addrs {
		wire.Addresses = append(wire.Addresses, a.String())
	}
	c.log.Debug("match_master_subnet", "master", wire.Name, "addresses", wire.Addresses)
	return wire, nil
}

// printResult writes the result for the configuration's cniVersion. It is the only write to
// stdout; nothing is written when building or converting fails.
func (p *plugin) printResult(c *call, resp *v1.IpamAddResponse) error {
	result, err := buildResult(c.args.IfName, resp)
	if err != nil {
		return err
	}
	versioned, err := result.GetAsVersion(c.cniVersion)
	if err != nil {
		return fmt.Errorf("convert result to CNI version %s: %w", c.cniVersion, err)
	}
	c.log.Info("allocated", "result", result)
	// Equivalent to types.PrintResult, with a writer tests can capture.
	if err := versioned.PrintTo(p.stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}

func (p *plugin) cmdDel(c *call) error {
	pod, err := c.pod()
	if err != nil {
		return err
	}
	err = c.agent.Release(c.ctx, delArgs(c, pod))
	switch {
	case isNotFound(err):
		// DEL is idempotent: the pod, its endpoint or the records are already gone.
		c.log.Info("nothing to release", "agent", err.Error())
		return nil
	case err != nil:
		return agentError("spiderpool IP release error", err)
	}
	c.log.Info("released")
	return nil
}

func delArgs(c *call, pod podArgs) *v1.IpamDelArgs {
	return &v1.IpamDelArgs{
		ContainerID:  c.args.ContainerID,
		IfName:       c.args.IfName,
		NetNamespace: c.args.Netns,
		PodNamespace: pod.Namespace,
		PodName:      pod.Name,
		PodUID:       pod.UID,
	}
}

// cmdCheck compares the addresses the runtime holds for this interface (prevResult) with those
// the agent recorded in the pod's SpiderEndpoint.
func (p *plugin) cmdCheck(c *call) error {
	pod, err := c.pod()
	if err != nil {
		return err
	}
	if c.conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK: the network configuration carries no prevResult", "")
	}
	if err := version.ParsePrevResult(&c.conf.NetConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "CHECK: parse prevResult: "+err.Error(), "")
	}
	prev, err := types100.NewResultFromResult(c.conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "CHECK: convert prevResult: "+err.Error(), "")
	}

	ep, err := c.agent.WorkloadEndpoint(c.ctx, pod.Namespace, pod.Name)
	if err != nil {
		return agentError(fmt.Sprintf("CHECK: read the SpiderEndpoint of pod %s/%s", pod.Namespace, pod.Name), err)
	}
	if ep.PodUID != "" && ep.PodUID != pod.UID {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: the SpiderEndpoint of pod %s/%s belongs to pod UID %s, not %s", pod.Namespace, pod.Name, ep.PodUID, pod.UID), "")
	}
	i := slices.IndexFunc(ep.Interfaces, func(e v1.InterfaceEndpoint) bool { return e.Interface == c.args.IfName })
	if i < 0 {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: spiderpool-agent recorded no addresses for interface %s of pod %s/%s", c.args.IfName, pod.Namespace, pod.Name), "")
	}
	if err := compareAddresses(c.args.IfName, ep.Interfaces[i], prev); err != nil {
		return types.NewError(types.ErrInternal, "CHECK: "+err.Error(), "")
	}
	c.log.Info("checked")
	return nil
}

// compareAddresses requires the addresses of ifName in prev and the recorded ones to be the
// same set. A recorded value may carry a prefix length ("10.6.0.5/16"); then it must match too.
func compareAddresses(ifName string, rec v1.InterfaceEndpoint, prev *types100.Result) error {
	var recorded []netip.Prefix // Bits() < 0 when the record has no prefix length
	for _, s := range []string{rec.IPv4, rec.IPv6} {
		if s == "" {
			continue
		}
		pfx, err := parseRecorded(s)
		if err != nil {
			return fmt.Errorf("spiderpool-agent recorded an invalid address %q for %s: %w", s, ifName, err)
		}
		recorded = append(recorded, pfx)
	}
	if len(recorded) == 0 {
		return fmt.Errorf("spiderpool-agent recorded no addresses for interface %s", ifName)
	}

	var held []netip.Prefix
	for _, ipc := range prev.IPs {
		if !ownedBy(ipc, ifName, prev.Interfaces) {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return fmt.Errorf("prevResult holds an invalid address %v for %s", ipc.Address.IP, ifName)
		}
		bits, _ := ipc.Address.Mask.Size()
		held = append(held, netip.PrefixFrom(addr.Unmap(), bits))
	}

	for _, h := range held {
		if !slices.ContainsFunc(recorded, func(r netip.Prefix) bool { return samePrefix(r, h) }) {
			return fmt.Errorf("address %s of %s in prevResult is not the one spiderpool-agent allocated (recorded: %s)", h, ifName, prefixList(recorded))
		}
	}
	for _, r := range recorded {
		if !slices.ContainsFunc(held, func(h netip.Prefix) bool { return samePrefix(r, h) }) {
			return fmt.Errorf("address %s that spiderpool-agent allocated to %s is missing from prevResult", prefixString(r), ifName)
		}
	}
	return nil
}

// ownedBy reports whether an address of prevResult belongs to ifName: it points at an interface of
// that name, or (an IPAM-only result) at none.
func ownedBy(ipc *types100.IPConfig, ifName string, ifaces []*types100.Interface) bool {
	if ipc.Interface == nil {
		return true
	}
	i := *ipc.Interface
	return i >= 0 && i < len(ifaces) && ifaces[i].Name == ifName
}

func parseRecorded(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	// An invalid-length prefix marks "address only".
	return netip.PrefixFrom(a, -1), nil
}

func samePrefix(recorded, held netip.Prefix) bool {
	if recorded.Addr() != held.Addr() {
		return false
	}
	return recorded.Bits() < 0 || recorded.Bits() == held.Bits()
}

func prefixString(p netip.Prefix) string {
	if p.Bits() < 0 {
		return p.Addr().String()
	}
	return p.String()
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = prefixString(p)
	}
	return strings.Join(s, ", ")
}

func (p *plugin) cmdStatus(c *call) error {
	if err := c.agent.Healthy(c.ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "unhealthy spiderpool-agent backend: "+err.Error(), "")
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, &v1.Error{Code: v1.CodeNotFound}) }

// agentError keeps the agent's message (it lists the pools tried and why each was refused) and
// tells the runtime whether a retry may help: the agent unreachable, write conflicts and an agent
// that is not ready yet are transient.
func agentError(what string, err error) *types.Error {
	code := types.ErrInternal
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Code == v1.CodeConflict || apiErr.Code == v1.CodeNotReady {
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, what+": "+err.Error(), "")
}
