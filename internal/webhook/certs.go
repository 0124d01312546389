package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Certificate lifetimes. The CA and the serving certificate are issued and rotated together, so the
// CA key never needs to be stored: rotation makes a new CA and pushes it into the caBundles, next to
// the CA it replaced until that one expires (Certs.CABundle).
const (
	certValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a stored certificate stops being reused.
	renewBefore = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so that an apiserver whose clock is slightly behind accepts a
	// certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// Keys of the Secret: those of a kubernetes.io/tls Secret, the CA as cert-manager writes it, and the
// CA that the current one replaced (Certs.PreviousCA).
const (
	secretCertKey       = corev1.TLSCertKey
	secretKeyKey        = corev1.TLSPrivateKeyKey
	secretCAKey         = "ca.crt"
	secretPreviousCAKey = "previous-ca.crt"
)

// Certs is a CA and a serving certificate it signed, PEM encoded.
type Certs struct {
	CACert []byte
	Cert   []byte
	Key    []byte
	// PreviousCA is the CA of the pair this one replaced, kept so that the webhook configurations
	// go on trusting the replicas that still serve the old pair (CABundle); nil when there is none.
	PreviousCA []byte
}

// certsFromSecret reads the keys ensureSecretCerts writes.
func certsFromSecret(s *corev1.Secret) *Certs {
	return &Certs{CACert: s.Data[secretCAKey], Cert: s.Data[secretCertKey], Key: s.Data[secretKeyKey], PreviousCA: s.Data[secretPreviousCAKey]}
}

func (c *Certs) secretData() map[string][]byte {
	data := map[string][]byte{secretCAKey: c.CACert, secretCertKey: c.Cert, secretKeyKey: c.Key}
	if len(c.PreviousCA) != 0 {
		data[secretPreviousCAKey] = c.PreviousCA
	}
	return data
}

// CABundle is what the webhook configurations must trust at now: the CA, then PreviousCA while it
// has not expired, as concatenated PEM.
//
// Why until the previous CA expires rather than for a fixed period: each replica serves the pair it
// last copied from the Secret and copies it again only every checkInterval, and no replica reports
// what it serves, so nobody can tell when the last one has moved on. A serving certificate is never
// valid longer than its CA, so trusting the previous CA until its NotAfter keeps every lagging
// replica trusted for as long as its certificate could be accepted at all, and dropping it then
// removes nothing that still works. In a running cluster a rotation for expiry happens at the first
// check after less than renewBefore is left, so the overlap is close to renewBefore, some sixty
// checkIntervals. An early rotation (new hosts, a damaged Secret) overlaps longer, which trusts
// nothing new: the old CA's key was dropped once it had signed its one serving certificate.
func (c *Certs) CABundle(now time.Time) ([]byte, error) {
	ca, err := parseCertPEM(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	if prev, err := parseCertPEM(c.PreviousCA); err == nil && now.Before(prev.NotAfter) && !bytes.Equal(prev.Raw, ca.Raw) {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: prev.Raw})...)
	}
	return bundle, nil
}

// replacedCA returns the stored CA that a rotation at now replaces, to be kept as PreviousCA, or nil
// when nothing can still be trusted under it (missing, not a CA, expired). Only one CA is kept: after
// two rotations within checkInterval (hosts flapping between two versions of the controller during
// a rollout) a replica still on the oldest pair is refused until its next check copies the new one.
func replacedCA(stored []byte, now time.Time) []byte {
	ca, err := parseCertPEM(stored)
	if err != nil || !ca.IsCA || !now.Before(ca.NotAfter) {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
}

// ServiceHosts returns the DNS names under which the apiserver reaches service in namespace.
func ServiceHosts(service, namespace string) []string {
	return []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

// GenerateCerts issues a new ECDSA P-256 CA and a serving certificate for hosts (DNS names or IP
// addresses), both valid from now for certValidity.
func GenerateCerts(hosts []string, now time.Time) (*Certs, error) {
	if len(hosts) == 0 {
		return nil, errors.New("generate certificates: no host names")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	notBefore, notAfter := now.Add(-clockSkew), now.Add(certValidity)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "spiderpool-controller-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if a := net.ParseIP(h); a != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode serving key: %w", err)
	}
	return &Certs{
		CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	// 128 random bits, as RFC 5280 recommends; rand.Int cannot fail with crypto/rand.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}

// Reusable reports why c cannot keep serving hosts at now, or nil when it can: the pair must load,
// chain to the CA, name every host and stay valid for more than renewBefore.
func (c *Certs) Reusable(hosts []string, now time.Time) error {
	if _, err := tls.X509KeyPair(c.Cert, c.Key); err != nil {
		return fmt.Errorf("key pair: %w", err)
	}
	cert, err := parseCertPEM(c.Cert)
	if err != nil {
		return err
	}
	ca, err := parseCertPEM(c.CACert)
	if err != nil {
		return err
	}
	if left := cert.NotAfter.Sub(now); left <= renewBefore {
		return fmt.Errorf("serving certificate expires %s", cert.NotAfter.Format(time.RFC3339))
	}
	if left := ca.NotAfter.Sub(now); left <= renewBefore {
		return fmt.Errorf("CA certificate expires %s", ca.NotAfter.Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, h := range hosts {
		_, err := cert.Verify(x509.VerifyOptions{
			DNSName:     h,
			Roots:       roots,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("host %s: %w", h, err)
		}
	}
	return nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// ensureSecretCerts returns the certificates stored in Secret key, reusing them while they are
// good for hosts and replacing them (rotation) otherwise; a rotation keeps the CA it replaces as
// PreviousCA. Several controller replicas may race: the loser of a create or update re-reads and
// takes what the winner stored.
func ensureSecretCerts(ctx context.Context, c client.Client, key client.ObjectKey, hosts []string, now time.Time) (*Certs, error) {
	for attempt := 0; ; attempt++ {
		certs, err := tryEnsureSecretCerts(ctx, c, key, hosts, now)
		if err == nil || attempt == 2 || !(apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) {
			return certs, err
		}
	}
}

func tryEnsureSecretCerts(ctx context.Context, c client.Client, key client.ObjectKey, hosts []string, now time.Time) (*Certs, error) {
	var secret corev1.Secret
	err := c.Get(ctx, key, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get Secret %s: %w", key, err)
	}
	exists := err == nil
	var stored *Certs
	if exists {
		stored = certsFromSecret(&secret)
		if stored.Reusable(hosts, now) == nil {
			return stored, nil
		}
	}
	certs, err := GenerateCerts(hosts, now)
	if err != nil {
		return nil, err
	}
	if stored != nil {
		certs.PreviousCA = replacedCA(stored.CACert, now)
	}
	data := certs.secretData()
	if !exists {
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		}
		if err := c.Create(ctx, &secret); err != nil {
			return nil, fmt.Errorf("create Secret %s: %w", key, err)
		}
		return certs, nil
	}
	// The resourceVersion read above makes this a compare-and-swap against another replica.
	secret.Data = data
	if err := c.Update(ctx, &secret); err != nil {
		return nil, fmt.Errorf("update Secret %s: %w", key, err)
	}
	return certs, nil
}

// writeServingFiles puts the pair where the webhook server's certificate watcher reads it. Each
// file is replaced by a rename so that the watcher never sees half a file; unchanged files are left
// alone so that a periodic check does not make the server reload for nothing.
func writeServingFiles(dir string, c *Certs) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	// The key goes first: a watcher that reloads between the two writes then still fails to pair
	// the old certificate with the new key and keeps serving the old pair.
	for _, f := range []struct {
		name string
		data []byte
	}{{secretKeyKey, c.Key}, {secretCertKey, c.Cert}, {secretCAKey, c.CACert}} {
		path := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		tmp, err := os.CreateTemp(dir, "."+f.name+"-*")
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// hostsWith appends extra to base without duplicates.
func hostsWith(base, extra []string) []string {
	out := slices.Clone(base)
	for _, h := range extra {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
