package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"github.com/spiderpool-go/spiderpool/internal/testutil/uml"
)

// skewGrace is the evicted pods' terminationGracePeriodSeconds in the clock-skew class.
const skewGrace = 20 * time.Second

// controllerClockSkewed: the only controller runs in a user-mode-linux guest, whose wall clock is
// its own: set 5 min ahead of the apiserver's, then 5 min behind. Pods on a Ready node are
// evicted with a 20 s grace period and replacements wait for their addresses (the pool is
// exact-fit). A GC that compared deletionTimestamp (the apiserver's clock) with its own clock
// would free them at once when ahead, and 5 min late when behind; the addresses must come back
// no sooner than the grace period after the eviction, and within a few GC scans of it.
func controllerClockSkewed(t *testing.T, _ *rand.Rand, ctl *proc) outcome {
	if err := uml.Available(); err != nil {
		t.Skipf("the skewed controller runs in a user-mode-linux guest, which cannot boot here: %v", err)
	}
	node := "skew-0"
	w := newWorld(t, "f-skew", node)
	w.podGrace = int64(skewGrace / time.Second)
	w.createPool("f-skew", "10.82.0.0/24", "10.82.0.10-10.82.0.15")
	failed := w.bringUp(6, "f-skew", []string{node}, 6)

	// The guest reaches its proxy listener through a forwarder in the switch namespace.
	const gateway, guestIP = "10.98.0.1", "10.98.0.2"
	kc, err := proxy.Listen("controller-skew")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	hostAddr := strings.TrimPrefix(cfg.Host, "http://")
	port := netip.MustParseAddrPort(hostAddr).Port()
	sw := testutil.NewNS(t)
	fw, err := netsim.ForwardTCP(sw, netip.AddrPortFrom(netip.MustParseAddr(gateway), port), hostAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	dir := filepath.Join(workDir, "controller-skew")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	guestKC := strings.Replace(string(kc), hostAddr, fmt.Sprintf("%s:%d", gateway, port), 1)
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(guestKC), 0o600); err != nil {
		t.Fatal(err)
	}
	g := uml.Boot(t, uml.Options{Memory: "512M", NetNS: sw,
		NICs: []uml.NIC{{Tap: "skewtap0", Name: "eth0",
			Addrs: []netip.Prefix{netip.MustParsePrefix(guestIP + "/24")}, HostAddrs: []netip.Prefix{netip.MustParsePrefix(gateway + "/24")}}},
		Mounts: []uml.Mount{{HostPath: dir, GuestPath: "/run/skew"}}})
	t.Logf("guest booted in %v", g.BootTime().Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the skewed controller's log:\n%s", tail(filepath.Join(dir, "log"), 30))
		}
	})

	// The host's replica steps aside (its lease released on SIGTERM): the guest's leads. It is back
	// before the final check, as a cluster always has a controller (Start is a no-op if it runs).
	ctl.Stop()
	defer func() { _ = ctl.Start() }()
	injected := 0
	for _, skew := range []time.Duration{5 * time.Minute, -5 * time.Minute} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		g.MustRun(t, fmt.Sprintf("date -s @%d >/dev/null", time.Now().Add(skew).Unix()))
		out := strings.TrimSpace(g.MustRun(t, "date +%s"))
		guestNow, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			t.Fatalf("guest date: %q", out)
		}
		if got := time.Until(time.Unix(guestNow, 0)); (got - skew).Abs() > 10*time.Second {
			t.Fatalf("guest clock is %v off the host's, want %v", got.Round(time.Second), skew)
		}
		args := strings.Join(controllerArgs(), " ")
		g.MustRun(t, fmt.Sprintf("echo '=== skew %v' >>/run/skew/log; setsid %s %s --kubeconfig /run/skew/kubeconfig >>/run/skew/log 2>&1 & echo $! >/run/skewctl.pid",
			skew, filepath.Join(bin, "spiderpool-controller"), args))
		// Leading once the log says so; UML makes the start slow.
		if err := testenv.WaitFor(ctx, func(context.Context) (bool, error) {
			data, _ := os.ReadFile(filepath.Join(dir, "log"))
			_, last, _ := strings.Cut(string(data), fmt.Sprintf("=== skew %v", skew))
			return strings.Contains(last, "Successfully acquired lease"), nil
		}); err != nil {
			t.Fatalf("skewed controller (%v) never led", skew)
		}
		injected++

		// Evict two pods; their replacements need the addresses.
		live := w.live()
		evictAt := time.Now()
		for _, p := range live[:2] {
			w.mu.Lock()
			delete(w.pods, p.obj.Name)
			w.mu.Unlock()
			if err := deleteRetrying(ctx, p.obj); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu   sync.Mutex
			took []time.Duration
		)
		var wg sync.WaitGroup
		for range 2 {
			p, err := w.newPod(node, "f-skew")
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.addRetry(p, addBudget); err != nil {
					t.Log(err)
					mu.Lock()
					failed++
					mu.Unlock()
					return
				}
				mu.Lock()
				took = append(took, time.Since(evictAt))
				mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("controller clock %+v: evicted pods' addresses reused %v after the eviction (grace %v)", skew, took, skewGrace)
		for _, d := range took {
			if d < skewGrace-time.Second {
				t.Errorf("controller clock %+v: an evicted pod's address was reused %v after the eviction, within its %v grace period", skew, d.Round(time.Millisecond), skewGrace)
			}
		}
		for _, p := range live[:2] {
			_ = deleteRetrying(ctx, p.obj, clientGrace0)
		}
		// SIGTERM releases the lease; the guest's init does not reap, so "gone" is a zombie.
		g.MustRun(t, `p=$(cat /run/skewctl.pid); kill $p; while [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; do sleep 0.2; done`)
		cancel()
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	o := w.settle(settleBudget, failed)
	o.injected = injected
	return o
}
