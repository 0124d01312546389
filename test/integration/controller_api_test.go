package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/controller/httpapi"
)

// putIP sends PUT /v1/ipam/ip with body (a value to encode, or raw bytes) and decodes the answer
// into a SetIPResponse on 200 and an ErrorResponse otherwise.
func putIP(t *testing.T, url string, body any) (int, httpapi.SetIPResponse, httpapi.ErrorResponse) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPut, url+httpapi.PathIP, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var ok200 httpapi.SetIPResponse
	var fail httpapi.ErrorResponse
	target := any(&fail)
	if resp.StatusCode == http.StatusOK {
		target = &ok200
	}
	if err := json.Unmarshal(data, target); err != nil {
		t.Fatalf("PUT %s: status %d, undecodable body %q", httpapi.PathIP, resp.StatusCode, data)
	}
	return resp.StatusCode, ok200, fail
}

// PUT /v1/ipam/ip against the real apiserver: it binds an IP the way spiderpoolctl ip set does
// (one implementation, internal/binding), the real agent then answers the pod's ADD with it, a
// repeat changes nothing, and every refusal is a 4xx naming the request field, with nothing written.
func TestControllerAPISetIP(t *testing.T) {
	const node, pool = "api-node", "api-set"
	pods, addrs, agent := ctlSetup(t, node, pool, "10.181.0.0/24", "10.181.0.10-10.181.0.20", "api-a")
	b := makePod(t, "default", "api-b", node, gcPodAnno(pool), nil)
	gcForgetEndpoint(t, b.Name)
	srv := httptest.NewServer(httpapi.Handler(httpapi.Options{Live: env.Client, EnableStatefulSet: true, Logger: quietLogger()}))
	t.Cleanup(srv.Close)

	// Two free addresses of the pool: the agent's search offset decides which one api-a got.
	var free []string
	for i := 10; i <= 20 && len(free) < 3; i++ {
		if a := fmt.Sprintf("10.181.0.%d", i); a != addrs["api-a"] {
			free = append(free, a)
		}
	}
	ip1, ip2, ip3 := free[0], free[1], free[2]

	set := httpapi.SetIPRequest{IP: ip1, Pool: pool, PodNamespace: "default", PodName: b.Name, PodUID: string(b.UID)}
	status, got, fail := putIP(t, srv.URL, set)
	if status != http.StatusOK {
		t.Fatalf("PUT: %d %+v", status, fail)
	}
	want := httpapi.SetIPResponse{IP: ip1 + "/24", Pool: pool, Interface: "eth0", PodNamespace: "default", PodName: b.Name,
		PodUID: string(b.UID), Node: node, Recorded: true,
		Message: "set " + ip1 + " from SpiderIPPool api-set on interface eth0 of pod default/api-b (UID " + string(b.UID) + ", node api-node)"}
	if got != want {
		t.Fatalf("PUT answer\n got %+v\nwant %+v", got, want)
	}
	recs := poolRecords(t, pool)
	if recs[ip1] != string(b.UID) || recs[addrs["api-a"]] != string(pods["api-a"].UID) || len(recs) != 2 {
		t.Fatalf("records after PUT = %v", recs)
	}
	ep := getEndpoint(t, b.Name)
	if ep == nil || ep.Status.Current.UID != string(b.UID) || ep.Status.Current.Node != node || ep.Status.OwnerControllerType != "Pod" ||
		len(ep.Status.Current.IPs) != 1 || ep.Status.Current.IPs[0].NIC != "eth0" || deref(ep.Status.Current.IPs[0].IPv4) != ip1+"/24" ||
		deref(ep.Status.Current.IPs[0].IPv4Pool) != pool || len(ep.Finalizers) != 1 || len(ep.OwnerReferences) != 1 {
		t.Fatalf("endpoint after PUT = %+v %+v", ep.ObjectMeta, ep.Status)
	}
	// The agent reads the binding as the pod's allocation.
	if addr := gcAllocate(t, agent, b); addr != ip1 {
		t.Errorf("agent ADD for eth0 after PUT returned %s, want %s", addr, ip1)
	}
	// Idempotent: the same binding again changes nothing.
	poolRV, epRV := getPool(t, pool).ResourceVersion, getEndpoint(t, b.Name).ResourceVersion
	status, got, fail = putIP(t, srv.URL, set)
	if status != http.StatusOK || got.Recorded || got.IP != ip1+"/24" {
		t.Errorf("repeated PUT: %d %+v %+v, want 200 with recorded false", status, got, fail)
	}
	if getPool(t, pool).ResourceVersion != poolRV {
		t.Errorf("repeated PUT wrote the pool")
	}
	if epAgain := getEndpoint(t, b.Name); len(epAgain.Status.Current.IPs) != 1 || deref(epAgain.Status.Current.IPs[0].IPv4) != ip1+"/24" {
		t.Errorf("repeated PUT changed the endpoint: %+v", epAgain.Status)
	} else if epAgain.ResourceVersion != epRV {
		t.Errorf("repeated PUT rewrote the unchanged endpoint (resourceVersion %s -> %s)", epRV, epAgain.ResourceVersion)
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		field  string
		errHas string
	}{
		{"unknown pool", httpapi.SetIPRequest{IP: ip2, Pool: "no-such-pool", PodNamespace: "default", PodName: b.Name, Interface: "net1"},
			http.StatusNotFound, "pool", `SpiderIPPool "no-such-pool" not found`},
		{"IP outside the pool", httpapi.SetIPRequest{IP: "10.181.0.30", Pool: pool, PodNamespace: "default", PodName: b.Name, Interface: "net1"},
			http.StatusBadRequest, "ip", "IP 10.181.0.30 is not in spec.ips minus spec.excludeIPs of SpiderIPPool api-set"},
		{"IP of no pool", httpapi.SetIPRequest{IP: "10.199.0.1", PodNamespace: "default", PodName: b.Name, Interface: "net1"},
			http.StatusNotFound, "ip", "no SpiderIPPool has 10.199.0.1 in its IPs"},
		{"IP held by another pod", httpapi.SetIPRequest{IP: addrs["api-a"], PodNamespace: "default", PodName: b.Name, Interface: "net1"},
			http.StatusConflict, "ip", "IP " + addrs["api-a"] + " is recorded in SpiderIPPool api-set for pod default/api-a (UID " + string(pods["api-a"].UID) + ")"},
		{"pod missing", httpapi.SetIPRequest{IP: ip2, Pool: pool, PodNamespace: "default", PodName: "api-nobody"},
			http.StatusNotFound, "podName", "pod default/api-nobody not found"},
		{"another incarnation", httpapi.SetIPRequest{IP: ip2, Pool: pool, PodNamespace: "default", PodName: b.Name, PodUID: "0000-old", Interface: "net1"},
			http.StatusConflict, "podUID", "pod default/api-b has UID " + string(b.UID) + ", not 0000-old"},
		{"interface busy", httpapi.SetIPRequest{IP: ip2, Pool: pool, PodNamespace: "default", PodName: b.Name},
			http.StatusConflict, "interface", "interface eth0 already has " + ip1 + "/24: release it first"},
		{"bad interface", httpapi.SetIPRequest{IP: ip2, Pool: pool, PodNamespace: "default", PodName: b.Name, Interface: "net/1"},
			http.StatusBadRequest, "interface", `interface "net/1" contains '/'`},
		{"bad IP", httpapi.SetIPRequest{IP: "10.181.0.300", PodNamespace: "default", PodName: b.Name},
			http.StatusBadRequest, "ip", `invalid IP address "10.181.0.300"`},
		{"no IP", httpapi.SetIPRequest{PodNamespace: "default", PodName: b.Name}, http.StatusBadRequest, "ip", "ip is required"},
		{"no pod name", httpapi.SetIPRequest{IP: ip2, PodNamespace: "default"}, http.StatusBadRequest, "podName", "podName is required"},
		{"no namespace", httpapi.SetIPRequest{IP: ip2, PodName: b.Name}, http.StatusBadRequest, "podNamespace", "podNamespace is required"},
		{"malformed JSON", []byte(`{"ip":"10.181.0.29",`), http.StatusBadRequest, "", "request body: unexpected EOF"},
		{"unknown field", []byte(`{"ip":"10.181.0.29","podNamespace":"default","podName":"api-b","pod":"x"}`), http.StatusBadRequest, "", `unknown field "pod"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got, fail := putIP(t, srv.URL, tc.body)
			if status != tc.status || fail.Field != tc.field || !bytes.Contains([]byte(fail.Error), []byte(tc.errHas)) {
				t.Errorf("PUT: %d %+v %+v, want %d field %q error containing %q", status, got, fail, tc.status, tc.field, tc.errHas)
			}
			if recs := poolRecords(t, pool); len(recs) != 2 {
				t.Errorf("refused PUT changed the records: %v", recs)
			}
			if ep := getEndpoint(t, b.Name); len(ep.Status.Current.IPs) != 1 {
				t.Errorf("refused PUT changed the endpoint: %+v", ep.Status)
			}
		})
	}

	// A reserved address is not handed out by hand either.
	rip := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "api-reserved"}, Spec: v2beta1.ReservedIPSpec{IPs: []string{ip3}}}
	if err := env.Client.Create(testContext(t), rip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), rip) })
	status, got, fail = putIP(t, srv.URL, httpapi.SetIPRequest{IP: ip3, PodNamespace: "default", PodName: b.Name, Interface: "net2"})
	if status != http.StatusConflict || fail.Field != "ip" || fail.Error != "IP "+ip3+" is reserved by a SpiderReservedIP: it is never handed out" {
		t.Errorf("PUT of a reserved IP: %d %+v %+v", status, got, fail)
	}
	if _, held := poolRecords(t, pool)[ip3]; held {
		t.Errorf("PUT of a reserved IP recorded it")
	}

	// A second interface takes a second address, as ip set --interface net1 does.
	set.IP, set.Interface = ip2, "net1"
	if status, got, fail := putIP(t, srv.URL, set); status != http.StatusOK || got.Interface != "net1" || !got.Recorded {
		t.Fatalf("PUT for net1: %d %+v %+v", status, got, fail)
	}
	if r := runCtl(t, "doctor", "--pool", pool); r.code != 0 {
		t.Errorf("doctor after PUT: exit %d, output %q", r.code, r.out)
	}
}
