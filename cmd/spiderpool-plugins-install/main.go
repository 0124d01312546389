// Command spiderpool-plugins-install is the entrypoint of the spiderpool-plugins image: the agent
// DaemonSet's install-plugins init container runs it to copy the reference CNI plugins onto the
// node. The image has no shell, so this stands where upstream's entrypoint.sh stood, reading the
// same INSTALL_* switches (internal/cniplugins says which it honours).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/cniplugins"
)

func main() {
	// -h is a request, not a failure: the flag set has printed the help.
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "spiderpool-plugins-install:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("spiderpool-plugins-install", flag.ContinueOnError)
	from := fs.String("from", "/opt/cni/bin", "directory of the plugins in the image")
	to := fs.String("to", "/host/opt/cni/bin", "the node's CNI binary directory, mounted (Helm global.cniBinHostPath)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := cniplugins.SwitchesFromEnv(getenv)
	if err != nil {
		return err
	}
	// Asked for but not shipped: said plainly, not failed, because the chart turns these on by
	// default and a node without them still works for macvlan, ipvlan and vlan.
	for _, u := range s.Unshipped {
		fmt.Fprintf(out, "%s is set, but this image does not ship that plugin: nothing installed for it (install it from its own project)\n", u)
	}
	names, err := cniplugins.Install(*from, *to, s)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintf(out, "installed nothing into %s: the INSTALL_* switches select none of the plugins in %s\n", *to, *from)
		return nil
	}
	fmt.Fprintf(out, "installed %s into %s\n", strings.Join(names, ", "), *to)
	return nil
}
