package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/agent"
	agentclient "github.com/spiderpool-go/spiderpool/internal/agent/client"
	"github.com/spiderpool-go/spiderpool/internal/cni/cnilog"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// runningAgent is a spiderpool-agent started in this process for one simulated node.
type runningAgent struct {
	node   string
	socket string
	stop   context.CancelFunc
	done   chan error
	once   sync.Once
}

// startAgent runs an agent for node until the test ends (or Stop is called) and waits until it
// answers its health check.
func startAgent(t *testing.T, node string, mutate func(*agent.Config)) *runningAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent-") // short: unix socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := agent.DefaultConfig(node)
	cfg.SocketPath = filepath.Join(dir, "spiderpool.sock")
	cfg.HealthAddr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	// IPv4 and IPv6 stay enabled, as the chart installs them: the guides' IPv4-only pools must
	// serve pods under those defaults (docs/design/behaviour.md#pool-selection).
	cfg.Logger = quietLogger()
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{node: node, socket: cfg.SocketPath, stop: cancel, done: make(chan error, 1)}
	go func() { a.done <- agent.Run(ctx, cfg, env.Config) }()
	t.Cleanup(a.Stop)

	c := agentclient.New(a.socket, agentclient.WithTimeout(2*time.Second))
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	err = testenv.WaitFor(wctx, func(ctx context.Context) (bool, error) {
		select {
		case err := <-a.done:
			return false, fmt.Errorf("agent %s exited: %v", node, err)
		default:
		}
		return c.Healthy(ctx) == nil, nil
	})
	if err != nil {
		t.Fatalf("agent %s never became healthy: %v", node, err)
	}
	return a
}

// Stop shuts the agent down and waits for it; calling it twice is fine.
func (a *runningAgent) Stop() {
	a.once.Do(func() {
		a.stop()
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
		}
	})
}

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// pluginBinary builds cmd/spiderpool once per test binary: the tests exec the real plugin the way
// a container runtime does.
func pluginBinary(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			pluginErr = err
			return
		}
		dir, err := os.MkdirTemp("", "plugin-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "spiderpool")
		cmd := exec.Command("go", "build", "-o", pluginPath, "./cmd/spiderpool")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("build plugin: %v: %s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginPath
}

// cniInvocation is one exec of the plugin.
type cniInvocation struct {
	command, cniVersion, ifName string
	pod                         *corev1.Pod
	ipam                        map[string]any // extra keys of the ipam object
	socket                      string
	netns                       string // CNI_NETNS; default /var/run/netns/<pod name>, which need not exist
}

// run executes the plugin and returns stdout; a non-zero exit returns the CNI error printed.
func (c cniInvocation) run(t *testing.T) ([]byte, error) {
	t.Helper()
	ipamConf := map[string]any{
		"type":                  "spiderpool",
		"ipam_unix_socket_path": c.socket,
	}
	for k, v := range c.ipam {
		ipamConf[k] = v
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": c.cniVersion, "name": "net", "type": "ipvlan", "ipam": ipamConf})
	if err != nil {
		t.Fatal(err)
	}
	netns := c.netns
	if netns == "" {
		netns = "/var/run/netns/" + c.pod.Name
	}
	cmd := exec.Command(pluginBinary(t))
	cmd.Env = append(os.Environ(),
		cnilog.DirEnv+"="+t.TempDir(), // the plugin logs there, not to the host's /var/log/spidernet
		"CNI_COMMAND="+c.command,
		"CNI_CONTAINERID=ctr-"+string(c.pod.UID),
		"CNI_NETNS="+netns,
		"CNI_IFNAME="+c.ifName,
		"CNI_PATH=/opt/cni/bin",
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=ctr-%s;K8S_POD_UID=%s",
			c.pod.Namespace, c.pod.Name, c.pod.UID, c.pod.UID),
	)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var cniErr cnitypes.Error
		if jerr := json.Unmarshal(stdout.Bytes(), &cniErr); jerr == nil && cniErr.Msg != "" {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("plugin %s: %v: stdout %q stderr %q", c.command, err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("plugin wrote to stderr: %s", stderr.String())
	}
	return stdout.Bytes(), nil
}

// add runs ADD with CNI 1.1.0 and returns the parsed result.
func (c cniInvocation) add(t *testing.T) (*types100.Result, error) {
	t.Helper()
	c.command = "ADD"
	if c.cniVersion == "" {
		c.cniVersion = "1.1.0"
	}
	out, err := c.run(t)
	if err != nil {
		return nil, err
	}
	res, err := types100.NewResult(out)
	if err != nil {
		return nil, fmt.Errorf("parse result %s: %w", out, err)
	}
	return types100.GetResult(res)
}

// addresses lists the addresses of a result, without prefix length.
func addresses(r *types100.Result) []string {
	var out []string
	for _, ipc := range r.IPs {
		out = append(out, ipc.Address.IP.String())
	}
	return out
}

// makeNode creates a Node object (the agent reads its labels) unless it exists.
func makeNode(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	n := build.Node(name, build.Labels(labels))
	if err := env.Client.Create(testContext(t), n); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
}

// makePod creates a pod bound to node, the way the scheduler leaves it for the kubelet.
func makePod(t *testing.T, ns, name, node string, annotations, labels map[string]string) *corev1.Pod {
	t.Helper()
	p, err := createPod(t, ns, name, node, annotations, labels)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// createPod is makePod for goroutines other than the test's, which must not call t.Fatal.
func createPod(t *testing.T, ns, name, node string, annotations, labels map[string]string) (*corev1.Pod, error) {
	p := build.Pod(ns, name, build.Annotations(annotations), build.Labels(labels), build.OnNode(node), build.Container("c", "busybox"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Client.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
	return p, nil
}

// makeNamespace creates a namespace with annotations.
func makeNamespace(t *testing.T, name string, annotations map[string]string) {
	t.Helper()
	ns := build.Namespace(name, build.Annotations(annotations))
	if err := env.Client.Create(testContext(t), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
}

// poolRecords returns the pool's records as IP → pod UID, read from the apiserver.
func poolRecords(t *testing.T, name string) map[string]string {
	t.Helper()
	p := getPool(t, name)
	allocs, err := p.Status.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for ip, a := range allocs {
		out[ip] = a.PodUID
	}
	return out
}

func hasAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// quietLogger drops logs of components run in process; a failing test says what went wrong.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
