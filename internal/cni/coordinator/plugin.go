package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// Namespace switches apply to the calling OS thread; the Go runtime must not move the main
// goroutine to another thread while it is in a pod's namespace.
func init() { runtime.LockOSThread() }

// agent is what the plugin needs from spiderpool-agent.
type agent interface {
	CoordinatorConfig(ctx context.Context, args *v1.CoordinatorConfigArgs) (*v1.CoordinatorConfig, error)
}

var _ agent = (*client.Client)(nil)

// plugin holds the process's outside world so that tests can replace it.
type plugin struct {
	stdout     io.Writer
	socketPath string
	newAgent   func(socketPath string) agent
}

// Funcs returns the plugin's CNI commands for cnirun.Main.
func Funcs() skel.CNIFuncs {
	p := &plugin{
		stdout:     os.Stdout,
		socketPath: v1.DefaultSocketPath,
		newAgent:   func(socketPath string) agent { return client.New(socketPath) },
	}
	return p.funcs()
}

func (p *plugin) funcs() skel.CNIFuncs {
	return (&cnirun.Plugin[*call]{Name: "coordinator", Setup: setup, Add: p.cmdAdd, Del: p.cmdDel, Check: p.cmdCheck}).Funcs()
}

// call is one command's parsed input.
type call struct {
	ctx  context.Context
	args *skel.CmdArgs
	conf *NetConf
	log  *slog.Logger
}

// setup parses the configuration and opens the log for cnirun, which runs the command, turns a
// panic into an error and logs a failure once.
func setup(command string, args *skel.CmdArgs) (*call, *slog.Logger, func(), error) {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return nil, nil, nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	log, closeLog := newLogger(&conf.LogOptions)
	log = log.With("command", command, "containerID", args.ContainerID, "ifName", args.IfName, "netns", args.Netns)
	log.Debug("request", "cniArgs", args.Args)
	return &call{ctx: context.Background(), args: args, conf: conf, log: log}, log, closeLog, nil
}

func (p *plugin) cmdAdd(c *call) error {
	prev, err := prevResult(c.conf)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if c.conf.disabled() {
		return p.print(c)
	}
	cfg, err := p.config(c)
	if err != nil {
		return err
	}
	if cfg.Mode == ModeDisabled {
		return p.print(c)
	}

	podNS, err := netlinkx.GetNS(c.args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("open netns %q: %v", c.args.Netns, err), "")
	}
	defer podNS.Close()
	var hasVeth0 bool
	err = podNS.Do(func(ns.NetNS) (err error) {
		hasVeth0, err = netlinkx.LinkExists(podVeth)
		return err
	})
	if err != nil {
		return err
	}
	mode, err := resolveMode(cfg.Mode, c.args.IfName, cfg.PodDefaultCNINIC, hasVeth0)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	firstNIC := c.args.IfName == cfg.PodDefaultCNINIC
	c.log = c.log.With("mode", mode, "firstNIC", firstNIC)

	switch {
	case mode == ModeUnderlay && firstNIC:
		u := &underlay{cfg: cfg, args: c.args, prev: prev, podNS: podNS, log: c.log}
		if err := u.add(); err != nil {
			return err
		}
	case mode == ModeUnderlay:
		s := &secondary{cfg: cfg, args: c.args, prev: prev, podNS: podNS, log: c.log}
		if err := s.add(); err != nil {
			return err
		}
	default:
		o := &overlay{cfg: cfg, args: c.args, prev: prev, podNS: podNS, log: c.log}
		if err := o.add(); err != nil {
			return err
		}
	}
	return p.print(c)
}

// print writes prevResult unchanged, in the configuration's version.
func (p *plugin) print(c *call) error {
	if err := c.conf.PrevResult.PrintTo(p.stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}

// config asks the agent for the SpiderCoordinator's values and merges them under the NAD's.
func (p *plugin) config(c *call) (*Config, error) {
	pod, err := parseCNIArgs(c.args.Args)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	c.log = c.log.With("pod", pod.Namespace+"/"+pod.Name)
	socket := p.socketPath
	if c.conf.SocketPath != "" {
		socket = c.conf.SocketPath
	}
	ac, err := p.newAgent(socket).CoordinatorConfig(c.ctx, &v1.CoordinatorConfigArgs{PodName: pod.Name, PodNamespace: pod.Namespace})
	if err != nil {
		code := uint(types.ErrInternal)
		var apiErr *v1.Error
		if !errors.As(err, &apiErr) || apiErr.Code == v1.CodeNotReady || apiErr.Code == v1.CodeConflict {
			code = types.ErrTryAgainLater
		}
		return nil, types.NewError(code, "get coordinator config from spiderpool-agent: "+err.Error(), "")
	}
	cfg, err := merge(c.conf, ac)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid coordinator configuration: "+err.Error(), "")
	}
	c.log.Debug("configuration", "config", cfg)
	return cfg, nil
}

// cmdDel undoes the host side of ADD; the pod side goes with the pod's namespace. For the first
// NIC it removes the host end of the veth pair, and with it the pod end and every route and
// neighbour entry through either (the host routes to the pod's IPs in hostRuleTable). For a
// secondary NIC it removes the host routes to that NIC's addresses (from prevResult) through the
// pair. The host rule "from all lookup hostRuleTable" is shared by all pods of the node and stays.
// A missing netns, link or route is success; the agent is not asked, so DEL works while it is
// down, and hostRuleTable is the configuration's or the default.
func (p *plugin) cmdDel(c *call) error {
	if c.conf.disabled() {
		return nil
	}
	cfg, err := merge(c.conf, nil)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	name := hostVethName(c.args.ContainerID)
	if c.args.IfName == cfg.PodDefaultCNINIC {
		if err := netlinkx.DelLinkByName(name); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
		if err := withHostLock(func() error { return releaseHostRules(cfg) }); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
		c.log.Info("deleted host veth", "link", name)
		return nil
	}
	if c.conf.PrevResult == nil {
		return nil
	}
	prev, err := prevResult(c.conf)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	hv, err := secondaryHostLink(c.args.Netns, name, cfg.PodDefaultCNINIC)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	if hv == nil {
		// The routes went with the link; the host rule may be the last thing left.
		if err := withHostLock(func() error { return releaseHostRules(cfg) }); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
		return nil
	}
	addrs, _ := nicAddrs(prev, c.args.IfName)
	if err := unroutePod(cfg, hv, addrs); err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	c.log.Info("deleted host routes", "link", hv.Attrs().Name, "podIPs", addrs)
	return nil
}

// secondaryHostLink finds the host link a secondary NIC's host routes go through: the underlay
// pair's host end, else the host end of the overlay CNI's first NIC. nil: nothing is left.
func secondaryHostLink(netnsPath, hostVeth, firstNIC string) (netlink.Link, error) {
	l, err := netlinkx.LinkByName(hostVeth)
	if err == nil || !netlinkx.IsLinkNotFound(err) {
		return l, err
	}
	podNS, err := netlinkx.GetNS(netnsPath)
	if err != nil {
		return nil, nil // the pod is gone, and the overlay CNI's veth with it
	}
	defer podNS.Close()
	peer := 0
	_ = podNS.Do(func(ns.NetNS) error {
		if first, err := netlinkx.LinkByName(firstNIC); err == nil {
			peer, _ = netlinkx.VethPeerIndex(first)
		}
		return nil
	})
	if peer == 0 {
		return nil, nil
	}
	l, err = netlinkx.LinkByIndex(peer)
	if err != nil {
		return nil, nil //nolint:nilerr // already gone
	}
	return l, nil
}

// cmdCheck passes: upstream's CHECK verifies nothing either (docs/design/behaviour.md#coordinator-del-and-check).
func (p *plugin) cmdCheck(*call) error { return nil }

// podArgs identify the pod.
type podArgs struct{ Namespace, Name string }

type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // the CNI_ARGS key
}

func parseCNIArgs(s string) (podArgs, error) {
	var a k8sArgs
	if err := types.LoadArgs(s, &a); err != nil {
		return podArgs{}, fmt.Errorf("parse CNI_ARGS: %w", err)
	}
	p := podArgs{Namespace: string(a.K8S_POD_NAMESPACE), Name: string(a.K8S_POD_NAME)}
	switch {
	case p.Namespace == "":
		return podArgs{}, errors.New("CNI_ARGS: K8S_POD_NAMESPACE is missing")
	case p.Name == "":
		return podArgs{}, errors.New("CNI_ARGS: K8S_POD_NAME is missing")
	}
	return p, nil
}
