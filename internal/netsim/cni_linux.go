package netsim

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// CNI runs network configuration lists the way a container runtime does: libcni execs each
// plugin of the list in turn, here from inside a node's namespace, so that the plugins' "host"
// is that node.
type CNI struct {
	conf *libcni.CNIConfig
}

// NewCNI finds plugins in binDirs (in order) and keeps libcni's result cache in cacheDir. exec
// nil runs plugins directly; a *NodeExec gives them a node's view of the filesystem.
func NewCNI(binDirs []string, cacheDir string, exec invoke.Exec) *CNI {
	return &CNI{conf: libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec)}
}

// Pod identifies the pod a runtime sets up.
type Pod struct {
	Namespace, Name, UID string
	ContainerID          string
	NetNS                string // path
}

func (p Pod) runtimeConf(ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       p.NetNS,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "true"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_UID", p.UID},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
		},
	}
}

// Add runs ADD of the configuration list for the pod's ifName on node and returns the result.
func (c *CNI) Add(ctx context.Context, node *Node, conflist []byte, pod Pod, ifName string) (*types100.Result, error) {
	list, err := libcni.NetworkConfFromBytes(conflist)
	if err != nil {
		return nil, fmt.Errorf("parse configuration list: %w", err)
	}
	var res *types100.Result
	err = node.Do(func() error {
		r, err := c.conf.AddNetworkList(ctx, list, pod.runtimeConf(ifName))
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s %s/%s on %s: %w", list.Name, pod.Namespace, pod.Name, node.Name, err)
	}
	return res, nil
}

// Del runs DEL of the configuration list for the pod's ifName on node; libcni hands the plugins
// the cached result of the ADD as prevResult.
func (c *CNI) Del(ctx context.Context, node *Node, conflist []byte, pod Pod, ifName string) error {
	list, err := libcni.NetworkConfFromBytes(conflist)
	if err != nil {
		return fmt.Errorf("parse configuration list: %w", err)
	}
	err = node.Do(func() error { return c.conf.DelNetworkList(ctx, list, pod.runtimeConf(ifName)) })
	if err != nil {
		return fmt.Errorf("CNI DEL %s %s/%s on %s: %w", list.Name, pod.Namespace, pod.Name, node.Name, err)
	}
	return nil
}
