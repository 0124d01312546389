package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
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

// TestProvisionerRotationOverlap drives checks of one replica with an injected clock through a
// rotation: from the rotation until the old CA expires, the configurations trust both CAs, so a
// replica still serving the old pair is accepted; after that only the new CA.
func TestProvisionerRotationOverlap(t *testing.T) {
	ctx := context.Background()
	c := newConfigClient(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	p := &provisioner{
		client: c,
		opts:   Options{Namespace: "kube-system", SecretName: DefaultSecretName, CertDir: t.TempDir(), URLHost: "127.0.0.1"},
		server: crwebhook.NewServer(crwebhook.Options{Port: 40000}),
		now:    func() time.Time { return now },
	}
	hosts := p.hosts()
	check := func(t *testing.T) (*Certs, [][]byte) {
		t.Helper()
		if err := p.sync(ctx); err != nil {
			t.Fatal(err)
		}
		var secret corev1.Secret
		if err := c.Get(ctx, p.secretKey(), &secret); err != nil {
			t.Fatal(err)
		}
		return certsFromSecret(&secret), configuredCAs(ctx, t, c)
	}

	first, cas := check(t)
	if diff := cmp.Diff([][]byte{first.CACert}, cas); diff != "" {
		t.Fatalf("caBundle before any rotation (-want +got):\n%s", diff)
	}

	// 29 days before expiry the check rotates; the Secret keeps the old CA, the bundle has both,
	// and both the new pair and the old one (a replica that has not reloaded) verify against it.
	now = start.Add(certValidity - 29*24*time.Hour)
	rotated, cas := check(t)
	if bytes.Equal(rotated.CACert, first.CACert) {
		t.Fatal("not rotated 29 days before expiry")
	}
	if !bytes.Equal(rotated.PreviousCA, first.CACert) {
		t.Errorf("Secret key %s does not hold the replaced CA", secretPreviousCAKey)
	}
	if diff := cmp.Diff([][]byte{rotated.CACert, first.CACert}, cas); diff != "" {
		t.Fatalf("caBundle after the rotation (-want +got):\n%s", diff)
	}
	for name, served := range map[string]*Certs{"new pair": rotated, "old pair": first} {
		if err := verifyWithBundle(served.Cert, cas, hosts, now); err != nil {
			t.Errorf("%s not trusted during the overlap: %v", name, err)
		}
	}

	// A day before the old CA expires it is still in; the next check after it expired drops it.
	now = start.Add(certValidity - 24*time.Hour)
	if _, cas = check(t); len(cas) != 2 {
		t.Errorf("caBundle a day before the old CA expires holds %d CAs, want 2", len(cas))
	}
	now = start.Add(certValidity + time.Hour)
	after, cas := check(t)
	if !bytes.Equal(after.CACert, rotated.CACert) {
		t.Fatal("rotated again although the new pair is good for 11 months")
	}
	if diff := cmp.Diff([][]byte{rotated.CACert}, cas); diff != "" {
		t.Errorf("caBundle after the old CA expired (-want +got):\n%s", diff)
	}
}

// TestApplyConfigurationsStaleReplica: a replica whose check read the Secret before another replica
// rotated it must not write a bundle without the new CA. The other replica rotates and registers
// between this replica's certificate check and its configuration update.
func TestApplyConfigurationsStaleReplica(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var other *provisioner
	raced := false
	c := newConfigClientWith(t, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok && other != nil && !raced {
				raced = true
				if err := other.sync(ctx); err != nil {
					return err
				}
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	opts := Options{Namespace: "kube-system", SecretName: DefaultSecretName, URLHost: "127.0.0.1"}
	newReplica := func(now time.Time) *provisioner {
		o := opts
		o.CertDir = t.TempDir()
		return &provisioner{client: c, opts: o, server: crwebhook.NewServer(crwebhook.Options{Port: 40000}), now: func() time.Time { return now }}
	}
	// Both replicas start on the first pair. This one checks a minute before the pair is due for
	// rotation, and the other a minute after, while this one is between its two steps.
	if err := newReplica(start).sync(ctx); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName}, &secret); err != nil {
		t.Fatal(err)
	}
	first := certsFromSecret(&secret)
	due := start.Add(certValidity - renewBefore)
	stale := newReplica(due.Add(-time.Minute))
	other = newReplica(due.Add(time.Minute))
	if err := stale.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !raced {
		t.Fatal("the other replica never ran")
	}
	if err := c.Get(ctx, stale.secretKey(), &secret); err != nil {
		t.Fatal(err)
	}
	stored := certsFromSecret(&secret)
	if !bytes.Equal(stored.PreviousCA, first.CACert) {
		t.Fatal("the other replica did not rotate the first pair")
	}
	if diff := cmp.Diff([][]byte{stored.CACert, stored.PreviousCA}, configuredCAs(ctx, t, c)); diff != "" {
		t.Errorf("caBundle after the stale replica's check (-want +got):\n%s", diff)
	}
}

func TestCABundle(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cur, err := GenerateCerts(testHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := GenerateCerts(testHosts, now.Add(-300*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		certs   *Certs
		at      time.Time
		want    [][]byte
		wantErr bool
	}{
		{"no previous", &Certs{CACert: cur.CACert}, now, [][]byte{cur.CACert}, false},
		{"previous valid", &Certs{CACert: cur.CACert, PreviousCA: prev.CACert}, now, [][]byte{cur.CACert, prev.CACert}, false},
		{"previous expired", &Certs{CACert: cur.CACert, PreviousCA: prev.CACert}, now.Add(66 * 24 * time.Hour), [][]byte{cur.CACert}, false},
		{"previous garbage", &Certs{CACert: cur.CACert, PreviousCA: []byte("x")}, now, [][]byte{cur.CACert}, false},
		{"previous is current", &Certs{CACert: cur.CACert, PreviousCA: cur.CACert}, now, [][]byte{cur.CACert}, false},
		{"no CA", &Certs{PreviousCA: prev.CACert}, now, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.certs.CABundle(tc.at)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CABundle() error %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, splitPEM(got)); diff != "" {
				t.Errorf("CABundle() (-want +got):\n%s", diff)
			}
		})
	}
}

func newConfigClient(t *testing.T) client.Client {
	return newConfigClientWith(t, interceptor.Funcs{})
}

func newConfigClientWith(t *testing.T, funcs interceptor.Funcs) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(funcs).Build()
}

// configuredCAs returns the CA bundle of every webhook, split into PEM certificates, after checking
// that all webhooks of both configurations carry the same one.
func configuredCAs(ctx context.Context, t *testing.T, c client.Client) [][]byte {
	t.Helper()
	var mut admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: ConfigurationName}, &mut); err != nil {
		t.Fatal(err)
	}
	var val admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: ConfigurationName}, &val); err != nil {
		t.Fatal(err)
	}
	var bundles [][]byte
	for _, w := range mut.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for _, w := range val.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	if len(bundles) == 0 {
		t.Fatal("no webhooks registered")
	}
	for _, b := range bundles[1:] {
		if !bytes.Equal(b, bundles[0]) {
			t.Fatal("webhooks carry different CA bundles")
		}
	}
	return splitPEM(bundles[0])
}

func splitPEM(data []byte) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		out = append(out, pem.EncodeToMemory(b))
	}
}

// verifyWithBundle verifies a serving certificate for every host the way the apiserver does.
func verifyWithBundle(certPEM []byte, cas [][]byte, hosts []string, now time.Time) error {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AppendCertsFromPEM(ca)
	}
	for _, h := range hosts {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: now}); err != nil {
			return fmt.Errorf("host %s: %w", h, err)
		}
	}
	return nil
}
