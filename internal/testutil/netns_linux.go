package testutil

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// RequireRoot skips the test unless it runs as root, which creating namespaces and links needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// NewNS creates a throwaway network namespace, bind-mounted under /run/netns so that its path can
// be passed as CNI_NETNS. It is removed when the test ends, and with it every link inside it
// (the peer of a veth in another namespace goes too), so tests that create links only inside
// such namespaces leave nothing behind even when they fail.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if err := testutils.UnmountNS(n); err != nil {
			t.Errorf("remove network namespace: %v", err)
		}
	})
	return n
}

// InNS runs f inside n and fails the test on error.
func InNS(t testing.TB, n ns.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}
