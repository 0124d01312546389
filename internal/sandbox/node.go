package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/internal/multusconf"
	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// NodeOptions configure the node process that runs inside a user-mode-linux node
// (`spiderpool-sandbox node`): the node's stand-in kubelet (the agent runs beside it).
type NodeOptions struct {
	Name              string
	NodeIP            netip.Addr // eth0's, for pod status and the node's banner server
	Gateway           netip.Addr // default route
	Kubeconfig        string     // reaches the control plane from the node
	PluginDir         string     // our plugins
	ToolsDir          string     // reference plugins and Multus
	ClusterDefaultNAD string     // namespace/name
	Log               io.Writer
}

// RunNode runs a node's kubelet until ctx ends. It expects to be the node: its network
// namespace is the node's, with eth0 configured.
func RunNode(ctx context.Context, o NodeOptions) error {
	log := slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The guest kernel has no nf_tables for IPv4: iptables (and the coordinator's go-iptables)
	// find the legacy flavour first in PATH.
	legacy := "/tmp/iptables-legacy"
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		if err := os.Symlink("/usr/sbin/xtables-legacy-multi", filepath.Join(legacy, name)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if err := os.Setenv("PATH", legacy+":"+os.Getenv("PATH")); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"sysctl", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "route", "replace", "default", "via", o.Gateway.String()},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return err
	}
	c, err := client.New(restConfig, client.Options{Scheme: testenv.NewScheme()})
	if err != nil {
		return err
	}
	host, err := ns.GetCurrentNS()
	if err != nil {
		return err
	}
	// A host service the pods' "own host" check reaches.
	srv, err := netsim.ServeTCP(host, netip.AddrPortFrom(o.NodeIP, 8080), "node "+o.Name)
	if err != nil {
		return err
	}
	defer srv.Close()

	k := &kubelet{
		name:   o.Name,
		c:      c,
		net:    &netsim.Node{Name: o.Name, NS: host},
		cni:    netsim.NewCNI([]string{o.PluginDir, o.ToolsDir}, "/tmp/cni-cache", nil),
		log:    log.With("component", "kubelet"),
		hostIP: o.NodeIP.String(),
		newNS:  guestNewNS,
		delNS:  func(name string) error { return exec.Command("ip", "netns", "delete", name).Run() },
		pods:   map[types.UID]*podSandbox{},
		errs:   map[string]string{},
	}
	k.clusterNet = func(ctx context.Context) (attachment, error) {
		return k.nadAttachment(ctx, "kube-system", o.ClusterDefaultNAD, "eth0")
	}
	if _, err := os.Stat(filepath.Join(o.ToolsDir, "multus")); err == nil {
		k.multus, err = multusconf.ThinConfList(multusconf.Options{
			Name: "multus-cni-network", CNIVersion: "1.0.0", Kubeconfig: o.Kubeconfig, ClusterNetwork: o.ClusterDefaultNAD,
			BinDir: o.PluginDir, CacheDir: "/tmp/multus-cache", LogFile: "/tmp/multus.log", LogLevel: "verbose",
		})
		if err != nil {
			return err
		}
	}
	k.start(ctx)
	log.Info("node up", "node", o.Name, "multus", k.multus != nil)
	<-ctx.Done()
	k.stop()
	tctx, tcancel := context.WithTimeout(context.Background(), time.Minute)
	defer tcancel()
	return k.teardownAll(tctx)
}

// guestNewNS makes a named network namespace in the node (ip netns, under the node's own /run).
func guestNewNS(name string) (ns.NetNS, string, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	path := "/run/netns/" + name
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, "", err
	}
	if err := n.Do(func(ns.NetNS) error { return exec.Command("ip", "link", "set", "lo", "up").Run() }); err != nil {
		n.Close()
		return nil, "", err
	}
	return n, path, nil
}

// Probe runs one connectivity check from the network namespace at nsPath: a ping and/or a TCP
// connection answered by banner (`spiderpool-sandbox probe`, run inside a node).
func Probe(nsPath string, ping bool, target string, tcp bool, banner string) error {
	n, err := ns.GetNS(nsPath)
	if err != nil {
		return err
	}
	defer n.Close()
	return probe(n, &Check{Ping: ping, TCP: tcp, Target: target, Banner: banner})
}
