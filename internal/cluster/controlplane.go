package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/spiderpool-go/spiderpool/internal/netlinkx"
)

// KubernetesVersion is the version of the components hack/tools builds (k8s.io/kubernetes in
// hack/tools/go.mod); every binary reports it as its gitVersion.
const KubernetesVersion = "v1.37.2"

// APIServerPort is kube-apiserver's secure port on the advertise address.
const APIServerPort = 6443

// Ports inside the control plane's namespace. Each control plane has a namespace of its own, so
// the well-known ports never collide with anything on the host.
const (
	etcdClientPort        = 2379
	etcdPeerPort          = 2380
	controllerManagerPort = 10257
	schedulerPort         = 10259
)

// Layout of the state directory.
const (
	certsDir       = "certs"
	kubeconfigsDir = "kubeconfigs"
	configDir      = "config"
	logsDir        = "logs"
	pidsDir        = "pids"
	dataDir        = "data"
)

// DefaultStartTimeout bounds StartControlPlane when ControlPlaneOptions.Timeout is 0: the first
// start of kube-apiserver on a loaded 2-core machine takes a minute.
const DefaultStartTimeout = 3 * time.Minute

// stopGrace is how long Stop waits for a component to end after SIGTERM.
const stopGrace = 10 * time.Second

// serviceAccountIssuer is the issuer of service-account tokens, the in-cluster name of the
// apiserver as kubeadm sets it.
const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// ControlPlaneOptions configures StartControlPlane.
type ControlPlaneOptions struct {
	// Dir holds the control plane's state: data (etcd), certs, kubeconfigs, config, logs
	// (<component>.log) and pids (<component>.pid). A start always begins a new cluster: data an
	// earlier run left in Dir is discarded.
	Dir string
	// ToolsBin holds the etcd, kube-apiserver, kube-controller-manager and kube-scheduler binaries.
	ToolsBin string
	// NetNS is the control plane's network namespace, attached to the sandbox's switch by the
	// caller with AdvertiseAddr on a NIC and a default route. When nil, NetNSPath is opened.
	NetNS     ns.NetNS
	NetNSPath string
	// AdvertiseAddr is the apiserver's address on the switch, the one nodes and pods reach.
	AdvertiseAddr netip.Addr
	// ServiceCIDR is the cluster's service range (the sandbox uses 10.233.0.0/18).
	ServiceCIDR netip.Prefix
	// PodCIDR, when set, makes kube-controller-manager allocate each node's spec.podCIDR from it
	// (the overlay scenario). Each node gets a /24 (IPv4) or /64 (IPv6), narrower when PodCIDR is
	// too small for four of them; see nodeCIDRMaskSize.
	PodCIDR netip.Prefix
	// HostPort is the port on 127.0.0.1 in the host's namespace that forwards to the apiserver;
	// 0 picks a free one.
	HostPort int
	// Timeout bounds the start; 0 means DefaultStartTimeout.
	Timeout time.Duration
	// Progress, when set, receives a line at each step of the start.
	Progress func(format string, args ...any)
}

// Component describes a running control-plane process.
type Component struct {
	Name    string
	PID     int
	LogPath string
	// Ready is the time from the process's start until it answered its health check.
	Ready time.Duration
}

// ControlPlane is a running control plane. Stop ends it.
type ControlPlane struct {
	dir         string
	bin         string
	netns       ns.NetNS
	ownNS       bool
	advertise   netip.Addr
	serviceCIDR netip.Prefix
	podCIDR     netip.Prefix
	progress    func(format string, args ...any)

	pki   *PKI
	paths paths
	fwd   *hostForward
	admin Credentials

	mu    sync.Mutex // guards procs and ready against Stop running beside a late reader
	procs []*process
	ready map[string]time.Duration

	stopOnce sync.Once
	stopErr  error
}

// paths are the files the components read: key material, kubeconfigs and configuration.
type paths struct {
	caCert, caKey                       string
	apiserverCert, apiserverKey         string
	kubeletClientCert, kubeletClientKey string
	saKey, saPub                        string
	frontProxyCA                        string
	frontProxyCert, frontProxyKey       string
	controllerManagerCert               string
	controllerManagerKey                string
	schedulerCert, schedulerKey         string
	controllerManager, scheduler        string // kubeconfigs
	adminKubeconfig, kubeProxy          string // kubeconfigs
	schedulerConfig                     string
}

// StartControlPlane starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler inside
// opts.NetNS and the host forward, and returns once the apiserver is ready, both controllers
// answer their health checks and kube-controller-manager has created the default namespace's
// ServiceAccount. ctx bounds the start only; the processes run until Stop. On error nothing is
// left running. Call it from the host's namespace: the forward listens in the caller's.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (_ *ControlPlane, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("control plane directory: %w", err)
	}
	if err := checkTools(opts.ToolsBin); err != nil {
		return nil, err
	}
	if err := KillLeftovers(dir); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, dataDir)); err != nil {
		return nil, fmt.Errorf("discard old control plane data: %w", err)
	}
	for _, d := range []string{certsDir, kubeconfigsDir, configDir, logsDir, pidsDir, filepath.Join(dataDir, Etcd)} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("control plane directory: %w", err)
		}
	}

	cp := &ControlPlane{
		dir:         dir,
		bin:         opts.ToolsBin,
		netns:       opts.NetNS,
		advertise:   opts.AdvertiseAddr,
		serviceCIDR: opts.ServiceCIDR,
		podCIDR:     opts.PodCIDR,
		progress:    opts.Progress,
		ready:       map[string]time.Duration{},
	}
	if cp.progress == nil {
		cp.progress = func(string, ...any) {}
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	if cp.netns == nil {
		if cp.netns, err = ns.GetNS(opts.NetNSPath); err != nil {
			return nil, fmt.Errorf("control plane namespace: %w", err)
		}
		cp.ownNS = true
	}
	// etcd and the controllers talk over the namespace's loopback, which is down in a namespace
	// nobody has prepared.
	err = cp.netns.Do(func(ns.NetNS) error {
		lo, err := netlinkx.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlinkx.LinkUp(lo)
	})
	if err != nil {
		return nil, fmt.Errorf("loopback of %s: %w", cp.netns.Path(), err)
	}

	// The forward comes first: a taken HostPort fails the start before any process runs, and the
	// admin kubeconfig needs the port.
	cp.fwd, err = forwardFromHost(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(opts.HostPort)), cp.netns,
		netip.AddrPortFrom(cp.advertise, APIServerPort))
	if err != nil {
		return nil, err
	}
	if err := cp.writePKI(); err != nil {
		return nil, err
	}
	cp.progress("control plane: certificates and kubeconfigs in %s", dir)

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	begin := time.Now()
	if err := cp.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := cp.startControllers(ctx); err != nil {
		return nil, err
	}
	cp.progress("control plane: ready in %s; kubectl --kubeconfig %s", since(begin), cp.AdminKubeconfig())
	return cp, nil
}

func (o *ControlPlaneOptions) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if o.ToolsBin == "" {
		errs = append(errs, errors.New("ToolsBin is required"))
	}
	if o.NetNS == nil && o.NetNSPath == "" {
		errs = append(errs, errors.New("NetNS or NetNSPath is required"))
	}
	if !o.AdvertiseAddr.IsValid() || o.AdvertiseAddr.IsUnspecified() {
		errs = append(errs, fmt.Errorf("AdvertiseAddr %q is not a usable address", o.AdvertiseAddr))
	}
	if !o.ServiceCIDR.IsValid() {
		errs = append(errs, errors.New("ServiceCIDR is required"))
	}
	if o.PodCIDR.IsValid() && o.PodCIDR.Overlaps(o.ServiceCIDR) {
		errs = append(errs, fmt.Errorf("PodCIDR %s overlaps ServiceCIDR %s", o.PodCIDR, o.ServiceCIDR))
	}
	if o.HostPort < 0 || o.HostPort > 65535 {
		errs = append(errs, fmt.Errorf("HostPort %d is out of range", o.HostPort))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("control plane options: %w", err)
	}
	return nil
}

// writePKI creates the CAs and every certificate, key and kubeconfig the components read.
func (cp *ControlPlane) writePKI() error {
	pki, err := NewPKI()
	if err != nil {
		return err
	}
	cp.pki = pki
	if cp.admin, err = pki.AdminCredentials(); err != nil {
		return err
	}
	certs := filepath.Join(cp.dir, certsDir)
	f := &cp.paths
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		base      string
		issue     func() (Credentials, error)
		cert, key *string
	}{
		{"ca", func() (Credentials, error) { return pki.CA(), nil }, &f.caCert, &f.caKey},
		{"apiserver", func() (Credentials, error) { return pki.APIServerServing(cp.advertise, cp.serviceCIDR) }, &f.apiserverCert, &f.apiserverKey},
		{"apiserver-kubelet-client", pki.APIServerKubeletClientCredentials, &f.kubeletClientCert, &f.kubeletClientKey},
		{"front-proxy-client", pki.FrontProxyClientCredentials, &f.frontProxyCert, &f.frontProxyKey},
		// kube-controller-manager and kube-scheduler would otherwise sign their own serving
		// certificates; with the CA's, their health checks are verified like any other endpoint.
		{ControllerManager, func() (Credentials, error) { return pki.ServingCredentials(ControllerManager, loopback) }, &f.controllerManagerCert, &f.controllerManagerKey},
		{Scheduler, func() (Credentials, error) { return pki.ServingCredentials(Scheduler, loopback) }, &f.schedulerCert, &f.schedulerKey},
	} {
		creds, err := c.issue()
		if err != nil {
			return err
		}
		if *c.cert, *c.key, err = writeCredentials(certs, c.base, creds); err != nil {
			return err
		}
	}
	saKey, saPub, err := NewServiceAccountKey()
	if err != nil {
		return err
	}
	f.saKey, f.saPub = filepath.Join(certs, "sa.key"), filepath.Join(certs, "sa.pub")
	f.frontProxyCA = filepath.Join(certs, "front-proxy-ca.crt")
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{f.saKey, saKey, 0o600}, {f.saPub, saPub, 0o644}, {f.frontProxyCA, pki.FrontProxyCACertPEM(), 0o644}} {
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
	}

	// The controllers run beside the apiserver and reach it on the namespace's loopback; the host
	// reaches it through the forward; kube-proxy, like the nodes, at the advertise address.
	local := "https://" + netip.AddrPortFrom(loopback, APIServerPort).String()
	kubeconfigs := filepath.Join(cp.dir, kubeconfigsDir)
	f.adminKubeconfig = filepath.Join(kubeconfigs, "admin.conf")
	f.controllerManager = filepath.Join(kubeconfigs, "controller-manager.conf")
	f.scheduler = filepath.Join(kubeconfigs, "scheduler.conf")
	f.kubeProxy = filepath.Join(kubeconfigs, "kube-proxy.conf")
	for _, k := range []struct {
		path, server, user string
		issue              func() (Credentials, error)
	}{
		{f.adminKubeconfig, cp.HostURL(), AdminUser, func() (Credentials, error) { return cp.admin, nil }},
		{f.controllerManager, local, ControllerManagerUser, pki.ControllerManagerCredentials},
		{f.scheduler, local, SchedulerUser, pki.SchedulerCredentials},
		{f.kubeProxy, cp.APIServerURL(), KubeProxyUser, pki.KubeProxyCredentials},
	} {
		creds, err := k.issue()
		if err != nil {
			return err
		}
		if err := WriteKubeconfig(k.path, k.server, pki.CACertPEM(), k.user, creds); err != nil {
			return err
		}
	}

	// The scheduler's flags for these settings are deprecated in favour of its configuration file.
	f.schedulerConfig = filepath.Join(cp.dir, configDir, "kube-scheduler.yaml")
	schedConfig := "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n" +
		"clientConnection:\n  kubeconfig: " + strconv.Quote(f.scheduler) + "\n" +
		"leaderElection:\n  leaderElect: false\n"
	if err := os.WriteFile(f.schedulerConfig, []byte(schedConfig), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.schedulerConfig, err)
	}
	return nil
}

// childEnv is the whole environment of the components. Nothing is inherited: a proxy variable of
// the user's shell would send the controllers' requests for addresses that exist only in the
// namespace to a proxy that cannot reach them.
func (cp *ControlPlane) childEnv() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + cp.dir, "TMPDIR=" + os.TempDir()}
}

func (cp *ControlPlane) start(name string, args ...string) (*process, error) {
	p, err := startProcess(cp.netns, name, filepath.Join(cp.bin, name), args, cp.childEnv(),
		filepath.Join(cp.dir, logsDir, name+".log"), filepath.Join(cp.dir, pidsDir, name+".pid"))
	if err != nil {
		return nil, err
	}
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
	return p, nil
}

func (cp *ControlPlane) markReady(p *process) time.Duration {
	d := time.Since(p.started)
	cp.mu.Lock()
	cp.ready[p.name] = d
	cp.mu.Unlock()
	return d
}

func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	client := "http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), etcdClientPort).String()
	peer := "http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), etcdPeerPort).String()
	p, err := cp.start(Etcd,
		"--name=controlplane",
		"--data-dir="+filepath.Join(cp.dir, dataDir, Etcd),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=controlplane="+peer,
		"--initial-cluster-state=new",
		// The sandbox's data dies with the sandbox; without fsync a shared disk busy with a build
		// does not stall every write of the cluster.
		"--unsafe-no-fsync=true",
	)
	if err != nil {
		return err
	}
	hc := nsHTTPClient(cp.netns, nil)
	err = cp.waitFor(ctx, "etcd /health", p, func(ctx context.Context) (bool, string) {
		body, code, err := get(ctx, hc, client+"/health")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK && strings.Contains(body, `"health":"true"`), body
	})
	if err != nil {
		return err
	}
	cp.progress("control plane: etcd ready in %s", round(cp.markReady(p)))
	return nil
}

func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	f := cp.paths
	args := []string{
		"--advertise-address=" + cp.advertise.String(),
		"--secure-port=" + strconv.Itoa(APIServerPort),
		"--etcd-servers=http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), etcdClientPort).String(),
		"--service-cluster-ip-range=" + cp.serviceCIDR.Masked().String(),
		"--client-ca-file=" + f.caCert,
		"--tls-cert-file=" + f.apiserverCert,
		"--tls-private-key-file=" + f.apiserverKey,
		"--kubelet-client-certificate=" + f.kubeletClientCert,
		"--kubelet-client-key=" + f.kubeletClientKey,
		// Node names do not resolve inside the control plane's namespace: logs, exec and
		// port-forward must dial the node's address.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + f.saPub,
		"--service-account-signing-key-file=" + f.saKey,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		// Webhooks and aggregated APIs are dialled at their Service's endpoints (pod or node
		// addresses on the switch): the control plane's namespace runs no kube-proxy, so a
		// ClusterIP leads nowhere from there.
		"--enable-aggregator-routing=true",
		"--allow-privileged=true",
		// The front proxy, as kubeadm sets it up: aggregated API servers (metrics-server) trust the
		// identity the apiserver passes in these headers, and kube-controller-manager and
		// kube-scheduler, which read the same settings for their own authentication, stop
		// reporting a missing CA bundle.
		"--requestheader-client-ca-file=" + f.frontProxyCA,
		"--requestheader-allowed-names=" + FrontProxyClientUser,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + f.frontProxyCert,
		"--proxy-client-key-file=" + f.frontProxyKey,
	}
	p, err := cp.start(APIServer, args...)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	err = cp.waitFor(ctx, "kube-apiserver /readyz", p, func(ctx context.Context) (bool, string) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Param("verbose", "").Do(ctx).Raw()
		if err == nil {
			return true, ""
		}
		if failing := failingChecks(string(body)); failing != "" {
			return false, failing
		}
		return false, err.Error()
	})
	if err != nil {
		return err
	}
	cp.progress("control plane: kube-apiserver ready in %s at %s (host: %s)", round(cp.markReady(p)), cp.APIServerURL(), cp.HostURL())
	return nil
}

// startControllers starts kube-controller-manager and kube-scheduler. They start once the
// apiserver is ready because kube-controller-manager gives up and exits when the apiserver stays
// unhealthy for its first seconds.
func (cp *ControlPlane) startControllers(ctx context.Context) error {
	f := cp.paths
	kcmArgs := []string{
		"--kubeconfig=" + f.controllerManager,
		"--authentication-kubeconfig=" + f.controllerManager,
		"--authorization-kubeconfig=" + f.controllerManager,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(controllerManagerPort),
		"--tls-cert-file=" + f.controllerManagerCert,
		"--tls-private-key-file=" + f.controllerManagerKey,
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + f.saKey,
		"--root-ca-file=" + f.caCert,
		// Signing CSRs costs nothing and lets kubelets rotate or bootstrap their certificates.
		"--cluster-signing-cert-file=" + f.caCert,
		"--cluster-signing-key-file=" + f.caKey,
		"--service-cluster-ip-range=" + cp.serviceCIDR.Masked().String(),
		"--controllers=*",
	}
	if cp.podCIDR.IsValid() {
		kcmArgs = append(kcmArgs,
			"--allocate-node-cidrs=true",
			"--cluster-cidr="+cp.podCIDR.Masked().String(),
			"--node-cidr-mask-size="+strconv.Itoa(nodeCIDRMaskSize(cp.podCIDR)),
		)
	}
	kcm, err := cp.start(ControllerManager, kcmArgs...)
	if err != nil {
		return err
	}
	sched, err := cp.start(Scheduler,
		"--config="+f.schedulerConfig,
		"--authentication-kubeconfig="+f.scheduler,
		"--authorization-kubeconfig="+f.scheduler,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(schedulerPort),
		"--tls-cert-file="+f.schedulerCert,
		"--tls-private-key-file="+f.schedulerKey,
	)
	if err != nil {
		return err
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cp.pki.CACertPEM())
	hc := nsHTTPClient(cp.netns, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	for _, c := range []struct {
		p    *process
		port int
	}{{kcm, controllerManagerPort}, {sched, schedulerPort}} {
		url := "https://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(c.port)).String() + "/healthz"
		err := cp.waitFor(ctx, c.p.name+" /healthz", c.p, func(ctx context.Context) (bool, string) {
			body, code, err := get(ctx, hc, url)
			if err != nil {
				return false, err.Error()
			}
			return code == http.StatusOK, strings.TrimSpace(body)
		})
		if err != nil {
			return err
		}
		cp.progress("control plane: %s healthy in %s", c.p.name, round(cp.markReady(c.p)))
	}

	// The service-account controller creating "default" proves kube-controller-manager reaches
	// the apiserver with its own credentials and runs its controllers.
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	begin := time.Now()
	err = cp.waitFor(ctx, "the default ServiceAccount", kcm, func(ctx context.Context) (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "not created yet"
		}
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if err != nil {
		return err
	}
	cp.progress("control plane: default ServiceAccount created %s after the controllers were healthy", round(time.Since(begin)))
	return nil
}

// waitFor polls check until it reports ready. It fails at once when any component has exited,
// with that component's log tail, and when ctx ends, with the log tail of about (the component
// being waited for) and check's last detail.
func (cp *ControlPlane) waitFor(ctx context.Context, what string, about *process, check func(context.Context) (ok bool, detail string)) error {
	begin := time.Now()
	reported := begin
	detail := ""
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if p := cp.exited(); p != nil {
			return fmt.Errorf("waiting for %s: %w", what, p.exitError())
		}
		// A check may block for seconds (client-go retries a GET that meets a closed connection);
		// the death of the component it waits for ends it at once.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		go func() {
			select {
			case <-about.exited:
				cancel()
			case <-cctx.Done():
			}
		}()
		ok, d := check(cctx)
		cancel()
		if ok {
			return nil
		}
		if d != "" {
			detail = d
		}
		if time.Since(reported) >= 10*time.Second {
			cp.progress("control plane: waiting for %s (%s): %s", what, since(begin), oneLine(detail))
			reported = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (%w): %s; last lines of %s:\n%s",
				what, since(begin), ctx.Err(), oneLine(detail), about.logPath, logTail(about.logPath, 20))
		case <-tick.C:
		}
	}
}

// exited returns a component that has stopped, if any.
func (cp *ControlPlane) exited() *process {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range cp.procs {
		if p.done() {
			return p
		}
	}
	return nil
}

// get fetches url and returns the body (at most 64 KiB) and status code.
func get(ctx context.Context, c *http.Client, url string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, err
	}
	return string(b), resp.StatusCode, nil
}

// failingChecks extracts the failing checks ("[-]name failed: reason") of a verbose /readyz.
func failingChecks(body string) string {
	var failing []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			failing = append(failing, strings.TrimPrefix(l, "[-]"))
		}
	}
	return strings.Join(failing, ", ")
}

// nodeCIDRMaskSize is the size of each node's pod range carved out of podCIDR by
// kube-controller-manager. It starts from kube-controller-manager's defaults (/24 for IPv4, /64 for
// IPv6; 10.244.64.0/18 then holds 64 nodes of 256 addresses) and respects its limits: the node
// mask may not be shorter than the cluster's, and for IPv6 at most 16 bits longer (its allocator
// keeps one bitmap bit per node range). A pod CIDR too small for four default ranges is split in
// four instead.
func nodeCIDRMaskSize(podCIDR netip.Prefix) int {
	size, limit := 24, 32
	if podCIDR.Addr().Is6() {
		size, limit = 64, 128
		if size-podCIDR.Bits() > 16 {
			size = podCIDR.Bits() + 16
		}
	}
	if size < podCIDR.Bits()+2 {
		size = podCIDR.Bits() + 2
	}
	return min(size, limit)
}

// Stop terminates the components in the reverse order of their start (SIGTERM, then SIGKILL
// after a grace period), removes their pid files and closes the host forward. It is safe to call
// more than once; it reports a component that survived.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		if cp.fwd != nil {
			cp.fwd.Close()
		}
		cp.mu.Lock()
		procs := append([]*process(nil), cp.procs...)
		cp.mu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(stopGrace)
		}
		var errs []error
		for _, p := range procs {
			if alive(p.pid) {
				errs = append(errs, fmt.Errorf("%s (pid %d) still runs", p.name, p.pid))
			}
		}
		if cp.ownNS {
			errs = append(errs, cp.netns.Close())
		}
		if err := errors.Join(errs...); err != nil {
			cp.stopErr = fmt.Errorf("stop control plane: %w", err)
		}
	})
	return cp.stopErr
}

// Dir returns the state directory (absolute).
func (cp *ControlPlane) Dir() string { return cp.dir }

// PKI returns the cluster's CA, for credentials beyond the ones the control plane writes.
func (cp *ControlPlane) PKI() *PKI { return cp.pki }

// CACertPEM returns the cluster CA certificate.
func (cp *ControlPlane) CACertPEM() []byte { return cp.pki.CACertPEM() }

// APIServerURL is the apiserver's URL on the switch, the one nodes and pods use.
func (cp *ControlPlane) APIServerURL() string {
	return "https://" + netip.AddrPortFrom(cp.advertise, APIServerPort).String()
}

// HostURL is the apiserver's URL for processes in the host's namespace (the forwarded port).
func (cp *ControlPlane) HostURL() string { return "https://" + cp.fwd.Addr().String() }

// AdminKubeconfig is the path of the cluster admin's kubeconfig for the host's kubectl and helm.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.paths.adminKubeconfig }

// KubeProxyKubeconfig is the path of kube-proxy's kubeconfig (in-network URL).
func (cp *ControlPlane) KubeProxyKubeconfig() string { return cp.paths.kubeProxy }

// AdminConfig is a client configuration of the cluster admin for this (host) process.
func (cp *ControlPlane) AdminConfig() *rest.Config { return cp.HostConfig(cp.admin) }

// HostConfig is a client configuration with creds for a process in the host's namespace.
func (cp *ControlPlane) HostConfig(creds Credentials) *rest.Config {
	return &rest.Config{
		Host: cp.HostURL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.pki.CACertPEM(),
			CertData: creds.CertPEM,
			KeyData:  creds.KeyPEM,
		},
		// The sandbox's setup issues bursts of requests; client-go's default of 5 QPS would make
		// it wait on its own rate limiter.
		QPS:   100,
		Burst: 200,
	}
}

// NodeKubeconfig writes (once more on each call) the kubelet kubeconfig of node, with the
// in-network URL, and returns its path.
func (cp *ControlPlane) NodeKubeconfig(node string) (string, error) {
	creds, err := cp.pki.NodeCredentials(node)
	if err != nil {
		return "", err
	}
	return cp.InClusterKubeconfig("node-"+node, creds)
}

// InClusterKubeconfig writes Dir/kubeconfigs/<name>.conf with creds, pointing at the in-network
// URL (for nodes and their components), and returns its path. name also names the kubeconfig's
// user entry; the identity the apiserver sees is the certificate's.
func (cp *ControlPlane) InClusterKubeconfig(name string, creds Credentials) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("kubeconfig name %q is not a file name", name)
	}
	path := filepath.Join(cp.dir, kubeconfigsDir, name+".conf")
	if err := WriteKubeconfig(path, cp.APIServerURL(), cp.pki.CACertPEM(), name, creds); err != nil {
		return "", err
	}
	return path, nil
}

// Components lists the running components in start order.
func (cp *ControlPlane) Components() []Component {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make([]Component, 0, len(cp.procs))
	for _, p := range cp.procs {
		out = append(out, Component{Name: p.name, PID: p.pid, LogPath: p.logPath, Ready: cp.ready[p.name]})
	}
	return out
}

func since(t time.Time) string { return round(time.Since(t)) }

func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
