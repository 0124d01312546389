// Package cnirun runs the commands of our CNI plugins (spiderpool, coordinator, ifacer) the same
// way. Each plugin describes itself as a Plugin: a Setup that parses the network configuration
// and opens the plugin's log (internal/cni/cnilog), and the commands it implements. Run turns
// whatever a command ends with into what the runtime must see: success, or a *types.Error. A
// panic becomes the generic error (code 999, types.ErrInternal), never a success, because a
// runtime that believes an ADD succeeded starts a pod without its network. Every failure is
// logged here exactly once, with the stack when it was a panic; commands return errors and do not
// log them.
//
// Main hands the commands to skel, which reads the CNI_* environment, answers VERSION from the
// plugin's spec versions and prints an error as the CNI error JSON on stdout, exiting 1.
//
// The package imports the CNI library and cnilog only.
package cnirun

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
)

// Plugin is one CNI plugin as the runner drives it. T is what Setup makes of one invocation and
// what the commands get.
type Plugin[T any] struct {
	// Name names the plugin in the error of a panic: "<Name> panicked during ADD: ...".
	Name string
	// Setup parses the network configuration of args for command and opens the plugin's log: it
	// returns the invocation, the logger and the function that closes it. Its error reaches the
	// runtime as Run's (a configuration error should be a *types.Error with
	// types.ErrInvalidNetworkConfig); until Setup returns a logger, nothing is logged.
	Setup func(command string, args *skel.CmdArgs) (T, *slog.Logger, func(), error)
	// The commands; a nil one is left out of Funcs, and skel then answers that command with
	// success.
	Add, Del, Check, Status, GC func(T) error
}

// Funcs returns p's commands for skel, each run through Run.
func (p *Plugin[T]) Funcs() skel.CNIFuncs {
	wrap := func(command string, cmd func(T) error) func(*skel.CmdArgs) error {
		if cmd == nil {
			return nil
		}
		return func(args *skel.CmdArgs) error { return p.Run(command, args, cmd) }
	}
	return skel.CNIFuncs{
		Add:    wrap("ADD", p.Add),
		Del:    wrap("DEL", p.Del),
		Check:  wrap("CHECK", p.Check),
		Status: wrap("STATUS", p.Status),
		GC:     wrap("GC", p.GC),
	}
}

// Run runs Setup and then cmd for command. It returns nil or a *types.Error: a panic in either
// becomes types.ErrInternal naming the plugin, the command and the panic's value, and any other
// error that is no *types.Error becomes types.ErrInternal with its message. A failure is logged
// once, as "command failed" with its code and message, and the stack of a panic.
func (p *Plugin[T]) Run(command string, args *skel.CmdArgs, cmd func(T) error) (err error) {
	log, closeLog := cnilog.Discard, func() {}
	defer func() {
		var stack []byte
		if r := recover(); r != nil {
			stack = debug.Stack()
			err = types.NewError(types.ErrInternal, fmt.Sprintf("%s panicked during %s: %v", p.Name, command, r), "")
		}
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) {
				cniErr = types.NewError(types.ErrInternal, err.Error(), "")
			}
			err = cniErr
			attrs := []any{"code", cniErr.Code, "error", cniErr.Error()}
			if stack != nil {
				attrs = append(attrs, "stack", string(stack))
			}
			log.Error("command failed", attrs...)
		}
		closeLog()
	}()

	t, l, c, err := p.Setup(command, args)
	if l != nil {
		log = l
	}
	if c != nil {
		closeLog = c
	}
	if err != nil {
		return err
	}
	return cmd(t)
}

// Main is the main function of a plugin binary: skel runs the command named by the CNI_COMMAND
// environment variable with funcs (a Plugin's Funcs), answers VERSION with the CNI spec versions
// given, and prints a failure as the CNI error JSON on stdout and exits 1. about is what a runtime
// sees of the plugin when it gives no command.
func Main(funcs skel.CNIFuncs, versions []string, about string) {
	skel.PluginMainFuncs(funcs, version.PluginSupports(versions...), about)
}
