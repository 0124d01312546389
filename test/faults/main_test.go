package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/apiproxy"
)

var (
	// env is the control plane of the suite; its apiserver is restarted by one fault class.
	env *testenv.Env
	// proxy stands between every component under test and the apiserver.
	proxy *apiproxy.Proxy
	// bin holds the binaries under test, built by make build.
	bin string
	// workDir holds the control plane's data, the components' logs and sockets.
	workDir string
)

// etcdRequestLimit is etcd's --max-request-bytes here: 128 KiB instead of 1.5 MiB, so that the
// "pool at etcd's request limit" class reaches the limit with a few hundred records instead of
// several thousand. The largest object otherwise stored, a CRD, is about 30 KiB.
const etcdRequestLimit = 128 << 10

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	bin = filepath.Join(root, "_output", "bin")
	for _, b := range []string{"spiderpool-agent", "spiderpool-controller", "spiderpool"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			fmt.Fprintf(os.Stderr, "faults: %s not built: run make build (make test-faults does)\n", filepath.Join(bin, b))
			return 1
		}
	}
	// Short: unix socket paths are limited to 107 bytes.
	workDir, err = os.MkdirTemp("", "faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	if os.Getenv("FAULT_KEEP") == "" {
		defer os.RemoveAll(workDir)
	} else {
		fmt.Fprintln(os.Stderr, "faults: logs kept in", workDir)
	}
	// Our client's warnings (long pod names) would go to controller-runtime's unset logger.
	ctrllog.SetLogger(logr.Discard())
	env, err = testenv.Start(testenv.Options{
		Dir:      filepath.Join(workDir, "cp"), // fixed: the apiserver restarts with the same certificates
		EtcdArgs: map[string]string{"max-request-bytes": fmt.Sprint(etcdRequestLimit)},
	})
	if err != nil {
		// The suite exists to test against the real thing: a missing apiserver is a failure.
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "faults: stop control plane:", err)
		}
	}()
	proxy, err = apiproxy.New(env.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer proxy.Close()
	return m.Run()
}
