package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblock "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ip"
	"github.com/spiderpool-go/spiderpool/internal/ipam/blockstore"
	"github.com/spiderpool-go/spiderpool/internal/testenv"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
	"github.com/spiderpool-go/spiderpool/internal/webhook"
)

// poolShrunkUnderLag: a pool in block format loses its lowest free addresses through the webhook
// while the one agent allocating from it sees every update 3 s late, and new pods start on its
// node right after each shrink. The agent's cached spec still calls the removed addresses usable,
// and they are the first it would choose: only the fences the webhook writes keep them out. The
// webhooks are served by a second controller replica, registered by URL as the sandbox does, for
// this class only (the others create what admission would refuse).
func poolShrunkUnderLag(t *testing.T, rng *rand.Rand, _ *proc) outcome {
	startWebhookReplica(t)
	w := newWorld(t, "f-shrink", "shrink-0")
	w.createPool("f-shrink", "10.91.0.0/24", "10.91.0.1-10.91.0.126")
	waitInBlocks(t, "f-shrink")
	a := w.agents["shrink-0"]
	failed := w.bringUp(6, "f-shrink", []string{a.node}, 3)
	lagWatches(t, a.node, 3*time.Second)

	removed := map[string]bool{}
	injected := 0
	for round := range 4 {
		before := map[string]bool{}
		for _, p := range w.live() {
			before[p.obj.Name] = true
		}
		gone := excludeLowestFree(t, "f-shrink", a.node, 1+rng.IntN(2))
		for _, r := range gone {
			removed[r] = true
		}
		injected++
		t0 := time.Now()
		failed += w.bringUp(3, "f-shrink", []string{a.node}, 3)
		var got []string
		for _, p := range w.live() {
			if !before[p.obj.Name] {
				got = append(got, p.addr)
			}
		}
		t.Logf("round %d: removed %v, then 3 pods got %v in %v", round, gone, got, time.Since(t0).Round(time.Millisecond))
	}
	var problems []string
	for _, p := range w.live() {
		if removed[p.addr] {
			problems = append(problems, fmt.Sprintf("pod %s was given %s after the webhook admitted its removal", p.obj.Name, p.addr))
		}
	}
	endLag(a.node)
	o := w.settle(settleBudget, failed)
	o.problems = append(o.problems, problems...)
	o.injected = injected
	return o
}

// excludeLowestFree adds the n lowest usable addresses of node's blocks that no record holds, the
// first the node's agent would hand out, to the pool's excludeIPs, through the apiserver and so
// the webhook, and returns them.
func excludeLowestFree(t *testing.T, name, node string, n int) []string {
	t.Helper()
	ctx := testContext(t)
	var out []string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var pl v2beta1.SpiderIPPool
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &pl); err != nil {
			return err
		}
		var blocks ipblock.SpiderIPBlockList
		if err := env.Client.List(ctx, &blocks, client.MatchingLabels{ipblock.LabelPool: name, ipblock.LabelNode: node}); err != nil {
			return err
		}
		var own []ip.Range
		for _, b := range blocks.Items {
			own = append(own, ip.PrefixRange(netip.MustParsePrefix(b.Spec.CIDR)))
		}
		ownSet, err := ip.NewSet(4, own...)
		if err != nil {
			return err
		}
		allocs, err := blockstore.Allocations(ctx, env.Client, &pl)
		if err != nil {
			return err
		}
		usable, err := pl.Spec.UsableIPs()
		if err != nil {
			return err
		}
		out = out[:0]
		for _, r := range usable.Intersect(ownSet).Ranges() {
			for a := r.First; len(out) < n; a = a.Next() {
				if _, held := allocs[ip.FormatAddr(a)]; !held {
					out = append(out, ip.FormatAddr(a))
				}
				if a == r.Last {
					break
				}
			}
		}
		if len(out) == 0 {
			return fmt.Errorf("pool %s has no free address left in the blocks of %s", name, node)
		}
		pl.Spec.ExcludeIPs = append(pl.Spec.ExcludeIPs, out...)
		return env.Client.Update(ctx, &pl)
	})
	if err != nil {
		t.Fatalf("exclude free addresses of pool %s: %v", name, err)
	}
	return out
}

// waitInBlocks waits for the controller to convert pool name to block format.
func waitInBlocks(t *testing.T, name string) {
	t.Helper()
	err := testenv.WaitFor(testContext(t), func(ctx context.Context) (bool, error) {
		var pl v2beta1.SpiderIPPool
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &pl); err != nil {
			return false, err
		}
		return ipblock.InBlocks(&pl), nil
	})
	if err != nil {
		t.Fatalf("pool %s never reached block format: %v", name, err)
	}
}

// startWebhookReplica runs a controller replica serving the admission webhooks on loopback,
// registered by URL, until the class ends; its cleanup unregisters them first, since a Fail-policy
// webhook with its server gone would refuse every later write of our kinds.
func startWebhookReplica(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := newController(t, "controller-webhooks", "--webhook-port", strconv.Itoa(port), "--webhook-host", "127.0.0.1",
		"--webhook-url-host", "127.0.0.1", "--webhook-cert-dir", filepath.Join(workDir, "controller-webhooks", "certs"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, obj := range []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ConfigurationName}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ConfigurationName}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: webhook.DefaultSecretName}},
		} {
			if err := env.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				t.Errorf("delete %T %s: %v", obj, obj.GetName(), err)
			}
		}
		p.Stop()
	})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered and answering: a dry run of a pool whose gateway lies outside its subnet, which
	// only the validating webhook refuses.
	var last error
	err = testenv.WaitFor(testContext(t), func(ctx context.Context) (bool, error) {
		bad := build.Pool("webhook-probe", "10.254.0.0/24", build.Gateway("10.254.1.1"))
		last = env.Client.Create(ctx, bad, client.DryRunAll)
		return last != nil && strings.Contains(last.Error(), "spec.gateway"), nil
	})
	if err != nil {
		t.Fatalf("the webhooks never answered: last result %v", last)
	}
}
