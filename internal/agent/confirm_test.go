package agent

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// frozenEndpoints is an informer that stopped seeing SpiderEndpoint changes at freeze: it keeps
// answering with the endpoints as they were then (other kinds pass through).
type frozenEndpoints struct {
	client.Reader
	mu     sync.Mutex
	frozen map[client.ObjectKey]*v2beta1.SpiderEndpoint
}

func (f *frozenEndpoints) freeze(t *testing.T) {
	t.Helper()
	var list v2beta1.SpiderEndpointList
	if err := f.Reader.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = map[client.ObjectKey]*v2beta1.SpiderEndpoint{}
	for i := range list.Items {
		f.frozen[client.ObjectKeyFromObject(&list.Items[i])] = list.Items[i].DeepCopy()
	}
}

func (f *frozenEndpoints) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	f.mu.Lock()
	frozen := f.frozen
	f.mu.Unlock()
	if ep, ok := obj.(*v2beta1.SpiderEndpoint); ok && frozen != nil {
		old, ok := frozen[key]
		if !ok {
			return apierrors.NewNotFound(v2beta1.Resource("spiderendpoints"), key.Name)
		}
		old.DeepCopyInto(ep)
		return nil
	}
	return f.Reader.Get(ctx, key, obj, opts...)
}

// TestAddAfterDelWithLaggingCache is defect 1 of the fault issue: the kubelet's DEL then ADD of
// one pod (sandbox re-creation) while the informer has not seen the DEL delete the endpoint. The
// ADD must not answer with the address the DEL just freed, which the next pod on the node gets.
func TestAddAfterDelWithLaggingCache(t *testing.T) {
	tests := []struct {
		name string
		del  func(e *testEnv)
		// notAgain: the address the second ADD must not get (the conflicting one).
		notAgain bool
	}{
		{name: "DEL of the interface", del: func(e *testEnv) {
			if err := e.del("default", "web", "u1", "eth0"); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "release after an IP conflict", notAgain: true, del: func(e *testEnv) {
			status, apiErr := e.do(http.MethodDelete, v1.PathIPAMIPs, v1.IpamBatchDelArgs{
				IsReleaseConflictIPs: true, ContainerID: "c-u1", PodNamespace: "default", PodName: "web", PodUID: "u1",
				ConflictIPs: []string{"10.6.0.10"},
			}, nil)
			if apiErr != nil {
				e.t.Fatalf("conflict release: %d %+v", status, apiErr)
			}
		}},
		{name: "pool record gone, endpoint left (a crash between the two writes of a DEL)", del: func(e *testEnv) {
			err := e.store.UpdatePool(context.Background(), "p", func(st *ipam.PoolState) error {
				st.ReleaseOwner("u1")
				return nil
			})
			if err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
			frozen := &frozenEndpoints{}
			e := newEnv(t, testConfig(), []*v2beta1.SpiderIPPool{pool},
				baseObjects(newPod("web", "u1"), newPod("other", "u2")),
				withCache(func(r client.Reader) client.Reader { frozen.Reader = r; return frozen }))

			first := e.mustAdd(addArgs("web", "u1", "eth0"))
			if first.IPs[0].Address != "10.6.0.10/16" {
				t.Fatalf("first ADD got %s, want the pool's first address", first.IPs[0].Address)
			}
			frozen.freeze(t)
			tt.del(e)
			again := e.mustAdd(addArgs("web", "u1", "eth0"))
			other := e.mustAdd(addArgs("other", "u2", "eth0"))

			if again.IPs[0].Address == other.IPs[0].Address {
				t.Fatalf("web and other were both given %s", again.IPs[0].Address)
			}
			if tt.notAgain && again.IPs[0].Address == first.IPs[0].Address {
				t.Errorf("the ADD after the conflict release got the conflicting %s again", first.IPs[0].Address)
			}
			recs := e.records("p")
			want := map[string]string{trimPrefix(again.IPs[0].Address): "u1", trimPrefix(other.IPs[0].Address): "u2"}
			if len(recs) != len(want) {
				t.Errorf("records %v, want %v", recs, want)
			}
			for ip, pod := range want {
				if recs[ip] != pod {
					t.Errorf("record of %s is %q, want %q (all: %v)", ip, recs[ip], pod, recs)
				}
			}
			if ep := e.endpoint("default", "web"); ep == nil || deref(ep.Status.Current.IPs[0].IPv4) != again.IPs[0].Address {
				t.Errorf("web's endpoint %+v does not record %s", ep, again.IPs[0].Address)
			}
			e.checkInvariants()
		})
	}
}

// trimPrefix is the address of an "address/bits" answer.
func trimPrefix(s string) string { a, _, _ := strings.Cut(s, "/"); return a }
