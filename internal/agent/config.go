package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/multusconf"
)

// Defaults of Config (docs/reference/flags.md#spiderpool-agent).
const (
	DefaultHealthAddr       = ":5710"
	DefaultMetricsAddr      = ":5711"
	DefaultInstallNamespace = "kube-system"
	DefaultCoordinatorName  = "default"
	DefaultAllocateTimeout  = 60 * time.Second
	DefaultShutdownTimeout  = 15 * time.Second
	DefaultKubeAPIQPS       = 50
	DefaultKubeAPIBurst     = 100
)

// Config is what the agent needs to know about its node and the Helm values
// it honours. Start from DefaultConfig: the zero value disables both IP
// families.
type Config struct {
	// NodeName is the node this agent serves (required). Pods are cached
	// for this node only.
	NodeName string

	// SocketPath is the unix socket the plugins call (Helm
	// global.ipamUNIXSocketHostPath). Its directory is created; the socket
	// is made accessible to root only (0600).
	SocketPath string

	// HealthAddr serves the runtime probes and /v1/ipam/healthy over TCP.
	HealthAddr string

	// MetricsAddr serves /metrics; empty disables it.
	MetricsAddr string

	// DebugMetrics exports the spiderpool_debug_ metric families too
	// (spiderpoolAgent.prometheus.enabledDebugMetric).
	DebugMetrics bool

	// EnableIPv4 and EnableIPv6 are ipam.enableIPv4 / ipam.enableIPv6.
	EnableIPv4, EnableIPv6 bool

	// EnableStatefulSet is ipam.enableStatefulSet: a StatefulSet pod that
	// its StatefulSet will recreate keeps its SpiderEndpoint and addresses
	// on DEL.
	EnableStatefulSet bool

	// EnableKubevirtStaticIP is ipam.enableKubevirtStaticIP: the pods of a
	// KubeVirt virtual machine share one SpiderEndpoint and one set of pool
	// records, named after its VirtualMachineInstance, and keep the
	// addresses across restarts and live migrations while the VM exists.
	EnableKubevirtStaticIP bool

	// InstallNamespace is Spiderpool's namespace: the namespace of a
	// multusName or default network given without one.
	InstallNamespace string

	// ClusterDefaultNAD is multus.multusCNI.defaultCniCRName as given, the
	// NAD that configures eth0 when a pod does not name one: "name" (in
	// InstallNamespace) or "namespace/name". It is resolved by
	// multusconf.ResolveClusterNetwork, the function that writes Multus's
	// clusterNetwork and multusNamespace, so both mean the same NAD.
	ClusterDefaultNAD string

	// CoordinatorName is the SpiderCoordinator whose settings
	// /v1/coordinator/config returns (Helm coordinator.name).
	CoordinatorName string

	// AllocateTimeout bounds one request (ADD or DEL) including its retries.
	AllocateTimeout time.Duration

	// ShutdownTimeout bounds how long in-flight requests may run after the
	// context of Run is cancelled.
	ShutdownTimeout time.Duration

	// Unbatched makes every request write its pool on its own instead of
	// group commit: the benchmark baseline.
	Unbatched bool

	// MaxRecords caps the records of one pool
	// (SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS); <= 0 means ipam.DefaultMaxRecords.
	MaxRecords int

	// EnableAutoPool is ipam.spiderSubnet.enable together with
	// autoPool.enable: pods annotated with ipam.spidernet.io/subnet(s) get
	// their addresses from the pools the controller creates for their
	// application; without it such a pod's ADD is refused.
	EnableAutoPool bool

	// EnableIPConflictDetection and EnableGatewayDetection are
	// ipam.enableIPConflictDetection / ipam.enableGatewayDetection; they
	// are passed to the plugin on every address it is given.
	EnableIPConflictDetection, EnableGatewayDetection bool
	// ConflictQuarantine is how long an address a plugin found in use by
	// another host stays out of this agent's allocations (default
	// ipam.DefaultQuarantine).
	ConflictQuarantine time.Duration

	// KubeAPIQPS and KubeAPIBurst rate-limit the agent's API client when the
	// rest.Config given to Run leaves them unset. client-go's own defaults
	// (5 and 10) would throttle a node starting many pods at once.
	KubeAPIQPS   float32
	KubeAPIBurst int

	// Logger receives the agent's logs and, through logr, those of
	// controller-runtime and client-go; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the configuration of a default Helm install for
// node nodeName.
func DefaultConfig(nodeName string) Config {
	return Config{
		NodeName:               nodeName,
		SocketPath:             v1.DefaultSocketPath,
		HealthAddr:             DefaultHealthAddr,
		MetricsAddr:            DefaultMetricsAddr,
		EnableIPv4:             true,
		EnableIPv6:             true,
		EnableStatefulSet:      true,
		EnableKubevirtStaticIP: true,
		EnableAutoPool:         true,
		InstallNamespace:       DefaultInstallNamespace,
		CoordinatorName:        DefaultCoordinatorName,
		AllocateTimeout:        DefaultAllocateTimeout,
		ShutdownTimeout:        DefaultShutdownTimeout,
		MaxRecords:             ipam.DefaultMaxRecords,
		KubeAPIQPS:             DefaultKubeAPIQPS,
		KubeAPIBurst:           DefaultKubeAPIBurst,
	}
}

// complete fills the zero values that have a default (not the booleans,
// whose zero value is a valid choice) and checks what has none.
func (c *Config) complete() error {
	if c.NodeName == "" {
		return errors.New("agent config: node name is required")
	}
	if !c.EnableIPv4 && !c.EnableIPv6 {
		return errors.New("agent config: neither IPv4 nor IPv6 is enabled")
	}
	if c.SocketPath == "" {
		c.SocketPath = v1.DefaultSocketPath
	}
	if c.HealthAddr == "" {
		c.HealthAddr = DefaultHealthAddr
	}
	if c.InstallNamespace == "" {
		c.InstallNamespace = DefaultInstallNamespace
	}
	if c.ClusterDefaultNAD != "" {
		// Refused at start rather than on every eth0 ADD whose pools have a multusName.
		if _, _, err := multusconf.ResolveClusterNetwork(c.ClusterDefaultNAD, c.InstallNamespace); err != nil {
			return fmt.Errorf("agent config: cluster default NAD (multus.multusCNI.defaultCniCRName): %w", err)
		}
	}
	if c.CoordinatorName == "" {
		c.CoordinatorName = DefaultCoordinatorName
	}
	if c.AllocateTimeout <= 0 {
		c.AllocateTimeout = DefaultAllocateTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.KubeAPIQPS <= 0 {
		c.KubeAPIQPS = DefaultKubeAPIQPS
	}
	if c.KubeAPIBurst <= 0 {
		c.KubeAPIBurst = DefaultKubeAPIBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ConflictQuarantine <= 0 {
		c.ConflictQuarantine = ipam.DefaultQuarantine
	}
	return nil
}

// ipamConfig is the part of c the IPAM core needs; the caller adds the
// store's search offsets.
func (c *Config) ipamConfig() ipam.Config {
	return ipam.Config{
		EnableIPv4:        c.EnableIPv4,
		EnableIPv6:        c.EnableIPv6,
		InstallNamespace:  c.InstallNamespace,
		ClusterDefaultNAD: c.ClusterDefaultNAD,
		EnableAutoPool:    c.EnableAutoPool,
		MaxRecords:        c.MaxRecords,
	}
}
