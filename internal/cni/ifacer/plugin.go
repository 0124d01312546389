package ifacer

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnirun"
)

// Netlink requests act on the calling thread's namespace; keep the main goroutine on one thread.
func init() { runtime.LockOSThread() }

// plugin holds the process's outside world so that tests can replace it.
type plugin struct {
	stdout io.Writer
}

// Funcs returns the plugin's CNI commands for cnirun.Main.
func Funcs() skel.CNIFuncs { return (&plugin{stdout: os.Stdout}).funcs() }

func (p *plugin) funcs() skel.CNIFuncs {
	return (&cnirun.Plugin[*call]{Name: "ifacer", Setup: setup, Add: p.cmdAdd, Del: p.cmdDel, Check: p.cmdCheck}).Funcs()
}

// call is one command's parsed configuration and log.
type call struct {
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
	log = log.With("command", command, "containerID", args.ContainerID, "ifName", args.IfName)
	return &call{conf: conf, log: log}, log, closeLog, nil
}

func (p *plugin) cmdAdd(c *call) error {
	if err := ensure(c.conf, c.log); err != nil {
		return err
	}
	return p.print(c.conf)
}

// cmdDel does nothing: the bond and the VLAN interface are shared by the node's pods and stay.
func (p *plugin) cmdDel(*call) error { return nil }

// cmdCheck verifies that the devices ADD ensures are in place.
func (p *plugin) cmdCheck(c *call) error { return check(c.conf) }

// print writes prevResult unchanged, or an empty result, in the configuration's version.
func (p *plugin) print(conf *NetConf) error {
	var r types.Result = conf.PrevResult
	if r == nil {
		empty := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
		var err error
		if r, err = empty.GetAsVersion(conf.CNIVersion); err != nil {
			return fmt.Errorf("empty result as version %s: %w", conf.CNIVersion, err)
		}
	}
	if err := r.PrintTo(p.stdout); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}
