package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

var testHosts = append(ServiceHosts("spiderpool-controller", "kube-system"), "127.0.0.1", "::1")

func TestGenerateCertsSANsAndChain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := GenerateCerts(testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(c.Cert, c.Key); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	cert, err := parseCertPEM(c.Cert)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := parseCertPEM(c.CACert)
	if err != nil {
		t.Fatal(err)
	}

	wantDNS := []string{
		"spiderpool-controller",
		"spiderpool-controller.kube-system",
		"spiderpool-controller.kube-system.svc",
		"spiderpool-controller.kube-system.svc.cluster.local",
	}
	if diff := cmp.Diff(wantDNS, cert.DNSNames); diff != "" {
		t.Errorf("DNS SANs (-want +got):\n%s", diff)
	}
	var gotIPs []string
	for _, a := range cert.IPAddresses {
		gotIPs = append(gotIPs, a.String())
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "::1"}, gotIPs); diff != "" {
		t.Errorf("IP SANs (-want +got):\n%s", diff)
	}

	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA=%v KeyUsage=%v, want a signing CA", ca.IsCA, ca.KeyUsage)
	}
	if cert.IsCA {
		t.Error("serving certificate must not be a CA")
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage %v lacks server auth", cert.ExtKeyUsage)
	}
	for _, x := range []*x509.Certificate{ca, cert} {
		if !x.NotBefore.Before(now) || !x.NotAfter.Equal(now.Add(certValidity)) {
			t.Errorf("%s valid %s..%s, want from before %s for %s", x.Subject.CommonName, x.NotBefore, x.NotAfter, now, certValidity)
		}
	}
	// The apiserver verifies exactly this: the chain to caBundle for the host it dialled.
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, h := range []string{"spiderpool-controller.kube-system.svc", "127.0.0.1", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: now.Add(time.Hour)}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.kube-system.svc", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("certificate verified for a host it does not name")
	}

	other, err := GenerateCerts(testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.CACert, c.CACert) {
		t.Error("two generations produced the same CA")
	}
}

func TestGenerateCertsNeedsHosts(t *testing.T) {
	if _, err := GenerateCerts(nil, time.Now()); err == nil {
		t.Fatal("want an error without hosts")
	}
}

func TestReusable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := GenerateCerts(testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCerts(testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		certs  *Certs
		hosts  []string
		at     time.Time
		reused bool
	}{
		{"fresh", c, testHosts, now, true},
		{"31 days left", c, testHosts, now.Add(certValidity - 31*24*time.Hour), true},
		{"29 days left", c, testHosts, now.Add(certValidity - 29*24*time.Hour), false},
		{"expired", c, testHosts, now.Add(certValidity + time.Hour), false},
		{"new host", c, append(slices.Clone(testHosts), "10.0.0.1"), now, false},
		{"subset of hosts", c, testHosts[:2], now, true},
		{"foreign CA", &Certs{CACert: other.CACert, Cert: c.Cert, Key: c.Key}, testHosts, now, false},
		{"foreign key", &Certs{CACert: c.CACert, Cert: c.Cert, Key: other.Key}, testHosts, now, false},
		{"empty", &Certs{}, testHosts, now, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.certs.Reusable(tc.hosts, tc.at)
			if (err == nil) != tc.reused {
				t.Errorf("Reusable() = %v, want reused=%v", err, tc.reused)
			}
		})
	}
}

func newFakeClient(objs ...client.Object) client.Client {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func TestEnsureSecretCertsReuseAndRotation(t *testing.T) {
	ctx := context.Background()
	c := newFakeClient()
	key := client.ObjectKey{Namespace: "kube-system", Name: DefaultSecretName}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	first, err := ensureSecretCerts(ctx, c, key, testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, key, &secret); err != nil {
		t.Fatalf("Secret not created: %v", err)
	}
	if secret.Type != corev1.SecretTypeTLS || !bytes.Equal(secret.Data["tls.crt"], first.Cert) ||
		!bytes.Equal(secret.Data["tls.key"], first.Key) || !bytes.Equal(secret.Data["ca.crt"], first.CACert) {
		t.Fatalf("Secret does not hold the issued certificates: type %s, keys %v", secret.Type, keys(secret.Data))
	}

	// A second replica, or a restart, within the validity reuses the stored pair.
	again, err := ensureSecretCerts(ctx, c, key, testHosts, now.Add(100*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.CACert, first.CACert) || !bytes.Equal(again.Cert, first.Cert) {
		t.Error("certificates regenerated while still valid")
	}

	// 29 days before expiry: rotated, and the Secret holds the new pair.
	late := now.Add(certValidity - 29*24*time.Hour)
	rotated, err := ensureSecretCerts(ctx, c, key, testHosts, late)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rotated.CACert, first.CACert) || bytes.Equal(rotated.Cert, first.Cert) {
		t.Fatal("certificates not rotated 29 days before expiry")
	}
	if err := rotated.Reusable(testHosts, late); err != nil {
		t.Errorf("rotated certificates not usable: %v", err)
	}
	if err := c.Get(ctx, key, &secret); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret.Data["tls.crt"], rotated.Cert) || !bytes.Equal(secret.Data["ca.crt"], rotated.CACert) {
		t.Error("Secret not updated with the rotated certificates")
	}

	// A host added to the options (the Service renamed, an out-of-cluster address) also reissues.
	wider, err := ensureSecretCerts(ctx, c, key, append(slices.Clone(testHosts), "192.0.2.7"), late)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(wider.Cert, rotated.Cert) {
		t.Error("certificate not reissued for a new host")
	}
	cert, err := parseCertPEM(wider.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.IPAddresses, func(a net.IP) bool { return a.String() == "192.0.2.7" }) {
		t.Errorf("IP SANs %v lack 192.0.2.7", cert.IPAddresses)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestWriteServingFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	c, err := GenerateCerts(testHosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeServingFiles(dir, c); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		t.Fatalf("webhook server could not load the pair: %v", err)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if keyInfo.Mode().Perm()&0o077 != 0 {
		t.Errorf("tls.key mode %v is readable by others", keyInfo.Mode().Perm())
	}
	// Unchanged content is not rewritten, so the server's watcher does not reload for nothing.
	if err := writeServingFiles(dir, c); err != nil {
		t.Fatal(err)
	}
	again, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(keyInfo, again) {
		t.Error("unchanged key file was replaced")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"ca.crt", "tls.crt", "tls.key"}, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
