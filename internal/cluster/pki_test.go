package cluster

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"
)

// parse checks that creds hold a matching key pair and returns the certificate.
func parse(t *testing.T, creds Credentials) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(creds.CertPEM, creds.KeyPEM)
	if err != nil {
		t.Fatalf("key pair: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func roots(t *testing.T, p *PKI) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.CACertPEM()) {
		t.Fatal("CA certificate does not parse")
	}
	return pool
}

func TestAPIServerServingCoversEveryName(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := p.APIServerServing(netip.MustParseAddr("10.6.0.2"), netip.MustParsePrefix("10.233.0.0/18"))
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, creds)
	for _, name := range []string{
		"10.6.0.2", "10.233.0.1", "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	} {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots(t, p), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "10.6.0.3", Roots: roots(t, p)}); err == nil {
		t.Error("the certificate is valid for 10.6.0.3, an address it was not issued for")
	}
}

func TestClientIdentities(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	type identity struct {
		CN string
		O  []string
	}
	for _, c := range []struct {
		name  string
		issue func() (Credentials, error)
		want  identity
	}{
		{"admin", p.AdminCredentials, identity{"kubernetes-admin", []string{"system:masters"}}},
		{"kubelet client", p.APIServerKubeletClientCredentials, identity{"kube-apiserver-kubelet-client", []string{"system:masters"}}},
		{"controller manager", p.ControllerManagerCredentials, identity{"system:kube-controller-manager", nil}},
		{"scheduler", p.SchedulerCredentials, identity{"system:kube-scheduler", nil}},
		{"kube-proxy", p.KubeProxyCredentials, identity{"system:kube-proxy", nil}},
		{"node", func() (Credentials, error) { return p.NodeCredentials("worker-1") }, identity{"system:node:worker-1", []string{"system:nodes"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			creds, err := c.issue()
			if err != nil {
				t.Fatal(err)
			}
			cert := parse(t, creds)
			got := identity{cert.Subject.CommonName, cert.Subject.Organization}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("subject (-want +got):\n%s", diff)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots(t, p), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("not a client certificate of the CA: %v", err)
			}
			if slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
				t.Error("a client certificate can serve")
			}
		})
	}
	if _, err := p.NodeCredentials(""); err == nil {
		t.Error("credentials for a node without a name")
	}
}

func TestServiceAccountKeyPair(t *testing.T) {
	priv, pub, err := NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(priv)
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = pem.Decode(pub)
	pk, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(pk) {
		t.Error("the public key is not the private key's")
	}
}

func TestWriteKubeconfigEmbedsCredentials(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := p.NodeCredentials("n1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "n1.conf")
	if err := WriteKubeconfig(path, "https://10.6.0.2:6443", p.CACertPEM(), "node-n1", creds); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://10.6.0.2:6443" {
		t.Errorf("server %q", cfg.Host)
	}
	if string(cfg.CAData) != string(p.CACertPEM()) || string(cfg.CertData) != string(creds.CertPEM) || string(cfg.KeyData) != string(creds.KeyPEM) {
		t.Error("the kubeconfig does not embed the CA and the client's key pair")
	}
}

// TestFrontProxyCAIsApart checks that the two CAs sign for disjoint roles: a cluster client cannot
// pass as the front proxy (and assert any user in headers), nor the front proxy as a cluster client.
func TestFrontProxyCAIsApart(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	frontRoots := x509.NewCertPool()
	frontRoots.AppendCertsFromPEM(p.FrontProxyCACertPEM())
	client := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}

	proxy, err := p.FrontProxyClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, proxy)
	if cert.Subject.CommonName != FrontProxyClientUser {
		t.Errorf("front proxy CN %q", cert.Subject.CommonName)
	}
	client.Roots = frontRoots
	if _, err := cert.Verify(client); err != nil {
		t.Errorf("front proxy client: %v", err)
	}
	client.Roots = roots(t, p)
	if _, err := cert.Verify(client); err == nil {
		t.Error("the front proxy client chains to the cluster CA")
	}

	admin, err := p.AdminCredentials()
	if err != nil {
		t.Fatal(err)
	}
	client.Roots = frontRoots
	if _, err := parse(t, admin).Verify(client); err == nil {
		t.Error("a cluster client chains to the front-proxy CA")
	}
}
