package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Identities the control plane's own clients present. RBAC's default bindings grant each of these
// user names (and the system:masters group) exactly what its component needs.
const (
	AdminUser             = "kubernetes-admin"
	APIServerKubeletUser  = "kube-apiserver-kubelet-client"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	KubeProxyUser         = "system:kube-proxy"
	// FrontProxyClientUser is the apiserver's front-proxy client, the only name aggregated API
	// servers accept identity headers from.
	FrontProxyClientUser = "front-proxy-client"
	MastersGroup         = "system:masters"
	NodesGroup           = "system:nodes"
	nodeUserPrefix       = "system:node:"
)

// Certificate lifetimes: the sandbox lives for hours, but a generous validity keeps a clock that
// jumps (a suspended laptop) from breaking a running cluster. NotBefore is set back a little for
// the same reason.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	clockSkew    = 5 * time.Minute
)

// Credentials is an X.509 certificate and its private key, both PEM-encoded.
type Credentials struct {
	CertPEM []byte
	KeyPEM  []byte
}

// PKI is a cluster's certificate authorities. Every certificate of the cluster (serving and
// client) is signed by the one cluster CA: the apiserver's --client-ca-file and every kubeconfig's
// certificate-authority are the same file, which is all a single-machine cluster needs. The
// front-proxy CA signs only the certificate with which the apiserver proxies to aggregated API
// servers: whoever holds it may assert any user in request headers, so no other client
// certificate may chain to it.
type PKI struct {
	cluster    authority
	frontProxy authority
}

// authority is one CA: the parsed certificate and key to sign with, and their PEM form.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  Credentials
}

// NewPKI creates fresh CAs (ECDSA P-256).
func NewPKI() (*PKI, error) {
	cluster, err := newAuthority("spiderpool-sandbox-ca")
	if err != nil {
		return nil, err
	}
	frontProxy, err := newAuthority("spiderpool-sandbox-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	return &PKI{cluster: cluster, frontProxy: frontProxy}, nil
}

func newAuthority(cn string) (authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return authority{}, fmt.Errorf("generate key of CA %q: %w", cn, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return authority{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return authority{}, fmt.Errorf("self-sign CA %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return authority{}, fmt.Errorf("parse CA %q: %w", cn, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return authority{}, err
	}
	return authority{cert: cert, key: key, pem: Credentials{CertPEM: encodeCert(der), KeyPEM: keyPEM}}, nil
}

// CACertPEM returns the CA certificate, the trust anchor of every client and server.
func (p *PKI) CACertPEM() []byte { return p.cluster.pem.CertPEM }

// CA returns the cluster CA's certificate and key; kube-controller-manager signs CSRs with them.
func (p *PKI) CA() Credentials { return p.cluster.pem }

// FrontProxyCACertPEM returns the front-proxy CA certificate (the apiserver's
// --requestheader-client-ca-file).
func (p *PKI) FrontProxyCACertPEM() []byte { return p.frontProxy.pem.CertPEM }

// FrontProxyClientCredentials is what the apiserver presents when it proxies a request to an
// aggregated API server.
func (p *PKI) FrontProxyClientCredentials() (Credentials, error) {
	return p.frontProxy.issue(FrontProxyClientUser, nil, x509.ExtKeyUsageClientAuth, nil, nil)
}

// APIServerServing issues kube-apiserver's serving certificate. Its names cover every way the
// apiserver is reached: the advertise address (nodes), the service CIDR's first address (pods,
// through the kubernetes Service), 127.0.0.1 (the host's forwarded port and the components in the
// control plane's namespace) and the Service's DNS names.
func (p *PKI) APIServerServing(advertise netip.Addr, serviceCIDR netip.Prefix) (Credentials, error) {
	if !advertise.IsValid() || !serviceCIDR.IsValid() {
		return Credentials{}, errors.New("apiserver certificate: advertise address and service CIDR are required")
	}
	ips := []netip.Addr{advertise, serviceCIDR.Masked().Addr().Next(), netip.MustParseAddr("127.0.0.1")}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	return p.cluster.issue("kube-apiserver", nil, x509.ExtKeyUsageServerAuth, ips, dns)
}

// ServingCredentials issues a serving certificate for name, valid for the given addresses and for
// name as a DNS name (kube-controller-manager's and kube-scheduler's health ports, a kubelet's
// port).
func (p *PKI) ServingCredentials(name string, ips ...netip.Addr) (Credentials, error) {
	return p.cluster.issue(name, nil, x509.ExtKeyUsageServerAuth, ips, []string{name})
}

// ClientCredentials issues a client certificate for user in groups: the apiserver reads the
// common name as the user name and the organizations as the groups.
func (p *PKI) ClientCredentials(user string, groups ...string) (Credentials, error) {
	return p.cluster.issue(user, groups, x509.ExtKeyUsageClientAuth, nil, nil)
}

// AdminCredentials is the cluster admin of the user's kubeconfig.
func (p *PKI) AdminCredentials() (Credentials, error) {
	return p.ClientCredentials(AdminUser, MastersGroup)
}

// APIServerKubeletClientCredentials is what kube-apiserver presents to kubelets (logs, exec,
// port-forward); system:masters passes the kubelet's authorization webhook call.
func (p *PKI) APIServerKubeletClientCredentials() (Credentials, error) {
	return p.ClientCredentials(APIServerKubeletUser, MastersGroup)
}

// ControllerManagerCredentials is kube-controller-manager's own identity (it runs each controller
// under a service account of its own, --use-service-account-credentials).
func (p *PKI) ControllerManagerCredentials() (Credentials, error) {
	return p.ClientCredentials(ControllerManagerUser)
}

// SchedulerCredentials is kube-scheduler's identity.
func (p *PKI) SchedulerCredentials() (Credentials, error) {
	return p.ClientCredentials(SchedulerUser)
}

// KubeProxyCredentials is kube-proxy's identity, bound to system:node-proxier by RBAC's defaults.
func (p *PKI) KubeProxyCredentials() (Credentials, error) {
	return p.ClientCredentials(KubeProxyUser)
}

// NodeCredentials is the kubelet identity of node name: the Node authorizer and the
// NodeRestriction admission plugin recognise system:node:<name> in system:nodes and limit it to
// its own Node object and the pods bound to it.
func (p *PKI) NodeCredentials(name string) (Credentials, error) {
	if name == "" {
		return Credentials{}, errors.New("node credentials: empty node name")
	}
	return p.ClientCredentials(nodeUserPrefix+name, NodesGroup)
}

func (a *authority) issue(cn string, orgs []string, usage x509.ExtKeyUsage, ips []netip.Addr, dns []string) (Credentials, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Credentials{}, fmt.Errorf("generate key for %q: %w", cn, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return Credentials{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return Credentials{}, fmt.Errorf("sign certificate for %q: %w", cn, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// NewServiceAccountKey returns a key pair for service-account tokens: kube-apiserver signs with
// the private key and verifies with the public one, kube-controller-manager signs the tokens of
// its controllers with the private one. ES256 tokens are accepted everywhere in the cluster.
func NewServiceAccountKey() (privatePEM, publicPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate service-account key: %w", err)
	}
	privatePEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode service-account public key: %w", err)
	}
	return privatePEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// WriteKubeconfig writes a kubeconfig for server that embeds the CA and the client's credentials,
// so that it stays valid when copied elsewhere (into a guest, to another user).
func WriteKubeconfig(path, server string, caPEM []byte, user string, creds Credentials) error {
	const cluster = "spiderpool-sandbox"
	ctxName := user + "@" + cluster
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: creds.CertPEM, ClientKeyData: creds.KeyPEM}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user}
	cfg.CurrentContext = ctxName
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return nil
}

// writeCredentials writes creds as base.crt and base.key in dir.
func writeCredentials(dir, base string, creds Credentials) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(certPath, creds.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", certPath, err)
	}
	if err := os.WriteFile(keyPath, creds.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", keyPath, err)
	}
	return certPath, keyPath, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial number: %w", err)
	}
	return n, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// encodeKey uses PKCS#8, which every reader in the cluster accepts (client-go, the apiserver's
// key files, etcd).
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
