package multusconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig returns the kubeconfig the thin plugin reads NADs and pods with: the apiserver at
// host:port (the kubernetes Service, as a pod sees it in KUBERNETES_SERVICE_HOST/PORT), the
// cluster CA and the Multus service account's token.
//
// Multus' own entrypoint writes the server as "https://[host]:port" for every host. Go 1.26's
// net/url refuses brackets around an IPv4 address, so a Multus plugin built with a current Go
// cannot load that file and fails every pod's ADD ("host must be a URL or a host:port pair");
// net.JoinHostPort brackets IPv6 addresses only.
func Kubeconfig(host, port string, caPEM, token []byte) ([]byte, error) {
	if host == "" || port == "" {
		return nil, errors.New("multus kubeconfig: the apiserver host and port are required (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT)")
	}
	if len(caPEM) == 0 || len(bytes.TrimSpace(token)) == 0 {
		return nil, errors.New("multus kubeconfig: the service account's ca.crt and token are required")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: "https://" + net.JoinHostPort(host, port), CertificateAuthorityData: caPEM}
	cfg.AuthInfos["multus"] = &clientcmdapi.AuthInfo{Token: string(bytes.TrimSpace(token))}
	cfg.Contexts["multus-context"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "multus"}
	cfg.CurrentContext = "multus-context"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("multus kubeconfig: %w", err)
	}
	return b, nil
}

// KeepKubeconfig writes the kubeconfig to path from the service account directory saDir and
// rewrites it whenever the file differs from what it should be: the token or CA changed (the
// kubelet rotates projected tokens), or another writer replaced it (Multus' entrypoint writes its
// own, unparsable, form of this file when it starts). It runs until ctx ends; each write is
// reported to logf.
func KeepKubeconfig(ctx context.Context, path, saDir, host, port string, every time.Duration, logf func(format string, args ...any)) error {
	for {
		ca, err1 := os.ReadFile(filepath.Join(saDir, "ca.crt"))
		token, err2 := os.ReadFile(filepath.Join(saDir, "token"))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("multus kubeconfig: %w", err)
		}
		data, err := Kubeconfig(host, port, ca, token)
		if err != nil {
			return err
		}
		if have, err := os.ReadFile(path); err != nil || !bytes.Equal(have, data) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("multus kubeconfig: %w", err)
			}
			if err := WriteFile(path, data); err != nil {
				return fmt.Errorf("multus kubeconfig: %w", err)
			}
			// The file holds a token: only the runtime (root) reads it.
			if err := os.Chmod(path, 0o600); err != nil {
				return fmt.Errorf("multus kubeconfig: %w", err)
			}
			logf("wrote %s for https://%s", path, net.JoinHostPort(host, port))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
