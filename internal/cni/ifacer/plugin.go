package ifacer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Netlink requests act on the calling thread's namespace; keep the main goroutine on one thread.
func init() { runtime.LockOSThread() }

// plugin holds the process's outside world so that tests can replace it.
type plugin struct {
	stdout io.Writer
}

// Funcs returns the plugin's CNI commands for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs { return (&plugin{stdout: os.Stdout}).funcs() }

func (p *plugin) funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:   func(a *skel.CmdArgs) error { return p.run("ADD", a, p.cmdAdd) },
		Del:   func(a *skel.CmdArgs) error { return p.run("DEL", a, p.cmdDel) },
		Check: func(a *skel.CmdArgs) error { return p.run("CHECK", a, p.cmdCheck) },
	}
}

// run parses the configuration, opens the log and runs cmd; a panic becomes an error, never a
// success. Failures are logged here once and returned as *types.Error.
func (p *plugin) run(command string, args *skel.CmdArgs, cmd func(*NetConf, *slog.Logger) error) (err error) {
	log, closeLog := discardLogger, func() {}
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = types.NewError(types.ErrInternal, fmt.Sprintf("ifacer panicked during %s: %v", command, r), "")
		}
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) {
				cniErr = types.NewError(types.ErrInternal, err.Error(), "")
			}
			err = cniErr
			log.Error("command failed", "code", cniErr.Code, "error", cniErr.Error())
		}
		closeLog()
	}()

	conf, err := loadConf(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	log, closeLog = newLogger(&conf.LogOptions)
	log = log.With("command", command, "containerID", args.ContainerID, "ifName", args.IfName)
	return cmd(conf, log)
}

func (p *plugin) cmdAdd(conf *NetConf, log *slog.Logger) error {
	if err := ensure(conf, log); err != nil {
		return err
	}
	return p.print(conf)
}

// cmdDel does nothing: the bond and the VLAN interface are shared by the node's pods and stay.
func (p *plugin) cmdDel(*NetConf, *slog.Logger) error { return nil }

// cmdCheck verifies that the devices ADD ensures are in place.
func (p *plugin) cmdCheck(conf *NetConf, _ *slog.Logger) error { return check(conf) }

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
