package integration

import (
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/spiderpool-go/spiderpool/internal/ctl"
)

// Forced releases by spiderpoolctl race allocations by two real agents on one pool: every write
// goes through the pool's compare-and-swap, so no allocation is lost, no released record comes
// back and no IP ends up recorded twice; doctor is clean afterwards.
func TestCtlReleaseRacesAgents(t *testing.T) {
	const pool = "ctl-race"
	nodes := []string{"ctl-race-node-1", "ctl-race-node-2"}
	pods, addrs, agent1 := ctlSetup(t, nodes[0], pool, "10.180.7.0/24", "10.180.7.10-10.180.7.49",
		"ctl-race-old-0", "ctl-race-old-1", "ctl-race-old-2", "ctl-race-old-3", "ctl-race-old-4", "ctl-race-old-5")
	makeNode(t, nodes[1], nil)
	agents := []*runningAgent{agent1, startAgent(t, nodes[1], nil)}

	const newPods = 16
	fresh := make([]*corev1.Pod, newPods)
	for i := range fresh {
		fresh[i] = makePod(t, "default", fmt.Sprintf("ctl-race-new-%d", i), nodes[i%2], gcPodAnno(pool), nil)
		gcForgetEndpoint(t, fresh[i].Name)
	}
	released := []string{"ctl-race-old-0", "ctl-race-old-2", "ctl-race-old-4"}
	kept := []string{"ctl-race-old-1", "ctl-race-old-3", "ctl-race-old-5"}

	var wg sync.WaitGroup
	got := make([]string, newPods)
	errs := make([]error, newPods)
	codes := make([]ctlResult, len(released))
	for i, p := range fresh {
		wg.Go(func() {
			res, err := cniInvocation{ifName: "eth0", pod: p, socket: agents[i%2].socket}.add(t)
			if err != nil {
				errs[i] = err
				return
			}
			if as := addresses(res); len(as) == 1 {
				got[i] = as[0]
			} else {
				errs[i] = fmt.Errorf("ADD gave %v", as)
			}
		})
	}
	for i, name := range released {
		wg.Go(func() { codes[i] = runCtl(t, "ip", "release", addrs[name], "--force") })
	}
	wg.Wait()

	for i, r := range codes {
		if r.code != 0 {
			t.Errorf("release of %s: exit %d: %s", addrs[released[i]], r.code, r.errOut)
		}
	}
	recs := poolRecords(t, pool)
	for i, p := range fresh {
		if errs[i] != nil {
			t.Errorf("ADD %s: %v", p.Name, errs[i])
			continue
		}
		if recs[got[i]] != string(p.UID) {
			t.Errorf("new pod %s got %s but the pool records it for %q: an allocation was lost", p.Name, got[i], recs[got[i]])
		}
	}
	for _, name := range kept {
		if recs[addrs[name]] != string(pods[name].UID) {
			t.Errorf("untouched pod %s lost its record of %s (now %q)", name, addrs[name], recs[addrs[name]])
		}
	}
	for _, name := range released {
		for ip, uid := range recs {
			if uid == string(pods[name].UID) {
				t.Errorf("released pod %s still holds %s", name, ip)
			}
		}
	}
	if want := newPods + len(kept); len(recs) != want {
		t.Errorf("pool holds %d records, want %d: %v", len(recs), want, recs)
	}
	if r := runCtl(t, "doctor", "--pool", pool); r.code != ctl.ExitOK {
		t.Errorf("doctor after the race: exit %d", r.code)
	}
}
