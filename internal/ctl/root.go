package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Exit codes. Doctor distinguishes findings from failures to look; the other commands exit
// ExitFailure on any error.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the command failed, or doctor found something
	ExitFindings = 1
	ExitError    = 2 // doctor could not complete its checks
)

// Options injects what a process normally takes from its environment, so that tests run the
// commands in process.
type Options struct {
	// Out and Err receive the output and the error messages; nil means io.Discard.
	Out, Err io.Writer
	// RESTConfig, when set, is used instead of --kubeconfig / KUBECONFIG / in-cluster.
	RESTConfig *rest.Config
	// HTTPClient talks to the controller (gc); nil means a client with a 30 s timeout.
	HTTPClient *http.Client
}

// exitError carries a chosen exit code; its message has already been printed when quiet.
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode maps an error returned by the root command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitFailure
}

// Run executes spiderpoolctl with args (without the program name), prints errors to opts.Err and
// returns the exit code.
func Run(ctx context.Context, opts Options, args ...string) int {
	cmd := NewRootCommand(opts)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		var ee *exitError
		if !errors.As(err, &ee) || !ee.quiet {
			fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
		}
	}
	return ExitCode(err)
}

// globals are the flags every command shares.
type globals struct {
	opts       Options
	kubeconfig string
	context    string
	timeout    time.Duration

	restConfig *rest.Config
	client     client.Client
}

// NewRootCommand returns the spiderpoolctl command tree.
func NewRootCommand(opts Options) *cobra.Command {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Err == nil {
		opts.Err = io.Discard
	}
	g := &globals{opts: opts}
	root := &cobra.Command{
		Use:           "spiderpoolctl",
		Short:         "Inspect and repair Spiderpool IP allocations",
		SilenceUsage:  true,
		SilenceErrors: true, // Run prints them once, with the exit code it chose
	}
	root.SetOut(opts.Out)
	root.SetErr(opts.Err)
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	pf.StringVar(&g.context, "context", "", "kubeconfig context to use")
	pf.DurationVar(&g.timeout, "timeout", time.Minute, "how long a command may take")
	root.AddCommand(newIPCommand(g), newPoolCommand(g), newGCCommand(g), newDoctorCommand(g))
	return root
}

// withTimeout bounds a command by --timeout.
func (g *globals) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, g.timeout)
}

// scheme knows the kinds spiderpoolctl reads.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipblockv1alpha1.AddToScheme(s))
	return s
}

// kube returns a client reading and writing the API server directly (no cache: a command line
// must see the state of now).
func (g *globals) kube() (client.Client, error) {
	if g.client != nil {
		return g.client, nil
	}
	cfg := g.opts.RESTConfig
	if cfg == nil {
		// The kubectl rules: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster.
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = g.kubeconfig
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: g.context})
		var err error
		if cfg, err = loader.ClientConfig(); err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "spiderpoolctl"
	c, err := client.New(cfg, client.Options{Scheme: scheme()})
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	g.restConfig, g.client = cfg, c
	return c, nil
}
