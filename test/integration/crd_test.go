package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipblockv1alpha1 "github.com/spiderpool-go/spiderpool/api/ipblock/v1alpha1"
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCRDsAreEstablished(t *testing.T) {
	ctx := testContext(t)
	want := []string{
		"spiderippools.spiderpool.spidernet.io",
		"spidersubnets.spiderpool.spidernet.io",
		"spiderreservedips.spiderpool.spidernet.io",
		"spiderendpoints.spiderpool.spidernet.io",
		"spidermultusconfigs.spiderpool.spidernet.io",
		"spidercoordinators.spiderpool.spidernet.io",
		"spideripblocks.internal.spiderpool-go.io",
		"network-attachment-definitions.k8s.cni.cncf.io",
	}
	for _, name := range want {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Errorf("CRD %s: %v", name, err)
			continue
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("CRD %s is not Established: %+v", name, crd.Status.Conditions)
		}
	}
}

func TestShortNamesAndCategories(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion(v2beta1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	want := map[string]struct {
		short      string
		namespaced bool
	}{
		"spiderippools":       {"sp", false},
		"spidersubnets":       {"ss", false},
		"spiderreservedips":   {"sr", false},
		"spiderendpoints":     {"se", true},
		"spidermultusconfigs": {"smc", true},
		"spidercoordinators":  {"scc", false},
	}
	seen := map[string]bool{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue // subresources
		}
		w, ok := want[r.Name]
		if !ok {
			t.Errorf("unexpected resource %q", r.Name)
			continue
		}
		seen[r.Name] = true
		if diff := cmp.Diff([]string{w.short}, r.ShortNames); diff != "" {
			t.Errorf("%s short names (-want +got):\n%s", r.Name, diff)
		}
		if r.Namespaced != w.namespaced {
			t.Errorf("%s namespaced = %v, want %v", r.Name, r.Namespaced, w.namespaced)
		}
		if !slices.Contains(r.Categories, "spiderpool") {
			t.Errorf("%s categories = %v, want spiderpool among them", r.Name, r.Categories)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("resource %s not served", name)
		}
	}
}

// The internal kinds are served under their own group, and outside the "spiderpool" category:
// `kubectl get spiderpool` lists the public kinds only.
func TestInternalKindsDiscovery(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion(ipblockv1alpha1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var got []string
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			t.Errorf("%s: the internal kinds have no subresources", r.Name)
			continue
		}
		got = append(got, r.Name)
		if r.Name != "spideripblocks" {
			continue
		}
		if diff := cmp.Diff([]string{"sib"}, r.ShortNames); diff != "" {
			t.Errorf("%s short names (-want +got):\n%s", r.Name, diff)
		}
		if r.Namespaced {
			t.Errorf("%s is namespaced, want cluster-scoped", r.Name)
		}
		if diff := cmp.Diff([]string{"spiderpool-internal"}, r.Categories); diff != "" {
			t.Errorf("%s categories (-want +got):\n%s", r.Name, diff)
		}
	}
	if diff := cmp.Diff([]string{"spideripblocks"}, got); diff != "" {
		t.Errorf("resources of %s (-want +got):\n%s", ipblockv1alpha1.SchemeGroupVersion, diff)
	}
}

// A SpiderIPBlock goes through the typed client (testenv's scheme) and back with its records, and
// the schema refuses a block without its pool's UID.
func TestSpiderIPBlockRoundTrip(t *testing.T) {
	ctx := testContext(t)
	c := env.Client
	block := &ipblockv1alpha1.SpiderIPBlock{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "roundtrip-pool.7c3e91d2.10-6-0-32",
			Labels: map[string]string{ipblockv1alpha1.LabelPool: "roundtrip-pool", ipblockv1alpha1.LabelNode: "worker-1"},
		},
		Spec: ipblockv1alpha1.SpiderIPBlockSpec{
			Pool:    "roundtrip-pool",
			PoolUID: "7c3e91d2-0000-4000-8000-000000000001",
			CIDR:    "10.6.0.32/27",
			Node:    "worker-1",
			Records: map[string]ipblockv1alpha1.BlockRecord{
				"10.6.0.33": {Pod: "default/web-1", PodUID: "u1", Node: "worker-1"},
			},
		},
	}
	if err := c.Create(ctx, block.DeepCopy()); err != nil {
		t.Fatalf("create block: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), block) })
	var got ipblockv1alpha1.SpiderIPBlock
	if err := c.Get(ctx, client.ObjectKeyFromObject(block), &got); err != nil {
		t.Fatalf("get block: %v", err)
	}
	if diff := cmp.Diff(block.Spec, got.Spec); diff != "" {
		t.Errorf("spec after a round trip (-want +got):\n%s", diff)
	}

	bad := block.DeepCopy()
	bad.Name = "roundtrip-pool.no-uid"
	bad.Spec.PoolUID = ""
	if err := c.Create(ctx, bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.poolUID") {
		_ = c.Delete(context.Background(), bad)
		t.Errorf("create block without poolUID: error = %v, want Invalid naming spec.poolUID", err)
	}
}

// getTable fetches a list as the server-side Table that kubectl get prints.
func getTable(t *testing.T, path string) *metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	var tbl metav1.Table
	if err := json.Unmarshal(body, &tbl); err != nil {
		t.Fatalf("decode table: %v", err)
	}
	return &tbl
}

// columns returns the column names of a table, with the priority-0 ones (the default kubectl view)
// separate from the -o wide ones.
func columns(tbl *metav1.Table) (normal, wide []string) {
	for _, c := range tbl.ColumnDefinitions {
		if c.Priority == 0 {
			normal = append(normal, c.Name)
		} else {
			wide = append(wide, c.Name)
		}
	}
	return normal, wide
}

// row returns the printed cells of the named object, keyed by column name.
func row(t *testing.T, tbl *metav1.Table, name string) map[string]string {
	t.Helper()
	for _, r := range tbl.Rows {
		if len(r.Cells) == 0 || fmt.Sprint(r.Cells[0]) != name {
			continue
		}
		out := map[string]string{}
		for i, c := range tbl.ColumnDefinitions {
			if i < len(r.Cells) {
				out[c.Name] = fmt.Sprint(r.Cells[i])
			}
		}
		return out
	}
	t.Fatalf("no row %q in table", name)
	return nil
}

func TestPrinterColumns(t *testing.T) {
	ctx := testContext(t)
	c := env.Client

	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "printer-pool"},
		Spec: v2beta1.IPPoolSpec{
			IPVersion:  ptr.To[int64](4),
			Subnet:     "172.31.192.0/20",
			IPs:        []string{"172.31.199.185-172.31.199.189"},
			Default:    ptr.To(true),
			NodeName:   []string{"master"},
			MultusName: []string{"kube-system/ipvlan-eth0"},
		},
	}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), pool) })
	pool.Status = v2beta1.IPPoolStatus{
		AllocatedIPs:     ptr.To(`{"172.31.199.187":{"pod":"default/test-app-1-ddlx7","podUid":"u1"}}`),
		TotalIPCount:     ptr.To[int64](5),
		AllocatedIPCount: ptr.To[int64](1),
	}
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatalf("update pool status: %v", err)
	}

	ep := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx-4653bc4f24-rswak", Namespace: "default"},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID:  "5d1c",
				Node: "worker01",
				IPs: []v2beta1.IPAllocationDetail{{
					NIC:      "net1",
					IPv4:     ptr.To("10.6.212.145/16"),
					IPv4Pool: ptr.To("10-6-v4"),
				}},
			},
			OwnerControllerType: "ReplicaSet",
			OwnerControllerName: "nginx-4653bc4f24",
		},
	}
	if err := c.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ep) })

	tests := []struct {
		name       string
		path       string
		object     string
		wantNormal []string
		wantWide   []string
		wantCells  map[string]string
	}{
		{
			name:       "spiderippool",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/spiderippools",
			object:     "printer-pool",
			wantNormal: []string{"Name", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT"},
			wantWide:   []string{"DISABLE", "NodeName", "MultusName", "APP-NAMESPACE"},
			wantCells: map[string]string{
				"VERSION": "4", "SUBNET": "172.31.192.0/20", "ALLOCATED-IP-COUNT": "1", "TOTAL-IP-COUNT": "5",
				"DEFAULT": "true", "DISABLE": "false", "NodeName": `["master"]`, "MultusName": `["kube-system/ipvlan-eth0"]`,
			},
		},
		{
			name:       "spiderendpoint",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/namespaces/default/spiderendpoints",
			object:     "nginx-4653bc4f24-rswak",
			wantNormal: []string{"Name", "INTERFACE", "IPV4POOL", "IPV4", "IPV6POOL", "IPV6", "NODE"},
			wantCells: map[string]string{
				"INTERFACE": "net1", "IPV4POOL": "10-6-v4", "IPV4": "10.6.212.145/16", "NODE": "worker01",
			},
		},
		{
			name:       "spidersubnet",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/spidersubnets",
			wantNormal: []string{"Name", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT"},
		},
		{
			name:       "spiderreservedip",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/spiderreservedips",
			wantNormal: []string{"Name", "VERSION"},
		},
		{
			name:       "spidermultusconfig",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/spidermultusconfigs",
			wantNormal: []string{"Name", "Age"},
		},
		{
			name:       "spidercoordinator",
			path:       "/apis/spiderpool.spidernet.io/v2beta1/spidercoordinators",
			wantNormal: []string{"Name", "Age"},
		},
		{
			name:       "spideripblock",
			path:       "/apis/internal.spiderpool-go.io/v1alpha1/spideripblocks",
			wantNormal: []string{"Name", "POOL", "CIDR", "NODE", "AGE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := getTable(t, tt.path)
			normal, wide := columns(tbl)
			if diff := cmp.Diff(tt.wantNormal, normal); diff != "" {
				t.Errorf("columns (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWide, wide); diff != "" {
				t.Errorf("wide columns (-want +got):\n%s", diff)
			}
			if tt.object == "" {
				return
			}
			got := row(t, tbl, tt.object)
			for col, want := range tt.wantCells {
				if got[col] != want {
					t.Errorf("cell %s = %q, want %q", col, got[col], want)
				}
			}
		})
	}
}

func TestSchemaRejectsMalformedPool(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		name      string
		spec      v2beta1.IPPoolSpec
		wantField string
		wantText  string
	}{
		{name: "nonsense subnet", spec: v2beta1.IPPoolSpec{Subnet: "nonsense"}, wantField: "spec.subnet", wantText: "must be a CIDR"},
		{name: "IP without prefix", spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.1"}, wantField: "spec.subnet", wantText: "must be a CIDR"},
		{name: "prefix too long", spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.1/33"}, wantField: "spec.subnet", wantText: "must be a CIDR"},
		{name: "empty subnet", spec: v2beta1.IPPoolSpec{}, wantField: "spec.subnet", wantText: "must be a CIDR"},
		{name: "ipVersion 5", spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPVersion: ptr.To[int64](5)}, wantField: "spec.ipVersion", wantText: "Unsupported value"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("malformed-%d", i)}, Spec: tt.spec}
			err := env.Client.Create(ctx, pool)
			if err == nil {
				_ = env.Client.Delete(ctx, pool)
				t.Fatalf("create succeeded, want a schema error on %s", tt.wantField)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error %v is not Invalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantField) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q should name %s and say %q", err, tt.wantField, tt.wantText)
			}
		})
	}

	// A manifest that leaves subnet out entirely fails on the required marker.
	missing := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": "malformed-missing"},
		"spec":     map[string]any{"ips": []any{"10.6.0.10"}},
	}}
	if err := env.Client.Create(ctx, missing); err == nil || !strings.Contains(err.Error(), "spec.subnet: Required value") {
		t.Errorf("pool without subnet: got %v, want spec.subnet: Required value", err)
	}

	// Valid CIDRs go through the same rule, host bits and long IPv6 spellings included, as upstream
	// accepts them (the webhook, absent here, would store their canonical form).
	for _, subnet := range []string{"fd00:10:6::/64", "10.6.1.0/16", "2002::ac0f:0/64"} {
		ok := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "schema-ok"}, Spec: v2beta1.IPPoolSpec{Subnet: subnet}}
		if err := env.Client.Create(ctx, ok); err != nil {
			t.Fatalf("valid pool of %s rejected: %v", subnet, err)
		}
		_ = env.Client.Delete(ctx, ok)
	}
}

func TestSubnetIsImmutable(t *testing.T) {
	ctx := testContext(t)
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "immutable"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.7.0.0/16", IPVersion: ptr.To[int64](4)}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pool) })

	changed := pool.DeepCopy()
	changed.Spec.Subnet = "10.8.0.0/16"
	err := env.Client.Update(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), "spec.subnet is not changeable") {
		t.Errorf("subnet update: got %v, want 'spec.subnet is not changeable'", err)
	}
	changed = pool.DeepCopy()
	changed.Spec.IPVersion = ptr.To[int64](6)
	err = env.Client.Update(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), "spec.ipVersion is not changeable") {
		t.Errorf("ipVersion update: got %v, want 'spec.ipVersion is not changeable'", err)
	}
	// Unrelated fields stay editable.
	changed = pool.DeepCopy()
	changed.Spec.IPs = []string{"10.7.0.10-10.7.0.20"}
	if err := env.Client.Update(ctx, changed); err != nil {
		t.Errorf("ips update rejected: %v", err)
	}
}
