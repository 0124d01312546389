package multusconf

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func TestKubeconfigServerParses(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"10.233.0.1", "https://10.233.0.1:443"},
		{"fd00:10:233::1", "https://[fd00:10:233::1]:443"},
	} {
		b, err := Kubeconfig(tc.host, "443", []byte("ca"), []byte("tok\n"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.Load(b)
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster].Server
		if got != tc.want {
			t.Errorf("server for %s = %q, want %q", tc.host, got, tc.want)
		}
		if _, err := url.Parse(got); err != nil {
			t.Errorf("server %q does not parse: %v", got, err)
		}
		if tok := cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo].Token; tok != "tok" {
			t.Errorf("token %q, want the file's without its newline", tok)
		}
	}
}

func TestKubeconfigRefusesMissingInputs(t *testing.T) {
	for name, args := range map[string][4]string{
		"no host":  {"", "443", "ca", "t"},
		"no port":  {"10.0.0.1", "", "ca", "t"},
		"no ca":    {"10.0.0.1", "443", "", "t"},
		"no token": {"10.0.0.1", "443", "ca", " \n"},
	} {
		if _, err := Kubeconfig(args[0], args[1], []byte(args[2]), []byte(args[3])); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestKeepKubeconfigFollowsTokenRotation(t *testing.T) {
	sa := t.TempDir()
	out := filepath.Join(t.TempDir(), "multus.d", "multus.kubeconfig")
	write := func(tok string) {
		if err := os.WriteFile(filepath.Join(sa, "ca.crt"), []byte("ca"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sa, "token"), []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- KeepKubeconfig(ctx, out, sa, "10.233.0.1", "443", 10*time.Millisecond, func(string, ...any) {})
	}()
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(out)
			if strings.Contains(string(b), "token: "+want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubeconfig never carried token %q:\n%s", want, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("first")
	write("second")
	wait("second")
	// Another writer (Multus' entrypoint) replaces the file: it is put back.
	if err := os.WriteFile(out, []byte("server: https://[10.233.0.1]:443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("second")
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, %v: want 0600", fi.Mode().Perm(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
