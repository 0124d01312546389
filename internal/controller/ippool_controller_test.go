package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

func poolScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(v2beta1.AddToScheme(s))
	return s
}

func TestIPPoolReconcilerCounters(t *testing.T) {
	tests := []struct {
		name          string
		pool          *v2beta1.SpiderIPPool
		wantTotal     int64
		wantAllocated int64
	}{
		{
			name: "new pool gets counts and finalizer",
			pool: &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16",
					IPs: []string{"10.6.0.10-10.6.0.20"}, ExcludeIPs: []string{"10.6.0.15"}}},
			wantTotal: 10,
		},
		{
			name: "wrong allocated count is repaired from the records",
			pool: &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Finalizers: []string{v2beta1.Finalizer}},
				Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10-10.6.0.11"}},
				Status: v2beta1.IPPoolStatus{AllocatedIPs: ptr.To(`{"10.6.0.10":{"pod":"default/a","podUid":"u1"}}`),
					AllocatedIPCount: ptr.To[int64](7), TotalIPCount: ptr.To[int64](99)}},
			wantTotal: 2, wantAllocated: 1,
		},
		{
			name: "IPv6 /64 counts without overflow",
			pool: &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](6), Subnet: "fd00::/64", IPs: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}}},
			wantTotal: 1<<63 - 1, // 2^64 addresses saturate the int64 counter
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(poolScheme(t)).WithObjects(tt.pool).WithStatusSubresource(tt.pool).Build()
			r := NewIPPoolReconciler(c, BlockFormat{})
			if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(tt.pool)}); err != nil {
				t.Fatal(err)
			}
			var got v2beta1.SpiderIPPool
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(tt.pool), &got); err != nil {
				t.Fatal(err)
			}
			if ptr.Deref(got.Status.TotalIPCount, -1) != tt.wantTotal || ptr.Deref(got.Status.AllocatedIPCount, -1) != tt.wantAllocated {
				t.Errorf("counts total=%v allocated=%v, want %d and %d", ptr.Deref(got.Status.TotalIPCount, -1), ptr.Deref(got.Status.AllocatedIPCount, -1), tt.wantTotal, tt.wantAllocated)
			}
			if len(got.Finalizers) != 1 || got.Finalizers[0] != v2beta1.Finalizer {
				t.Errorf("finalizers = %v", got.Finalizers)
			}
			if ptr.Deref(got.Status.AllocatedIPs, "") != ptr.Deref(tt.pool.Status.AllocatedIPs, "") {
				t.Errorf("records changed: %q", ptr.Deref(got.Status.AllocatedIPs, ""))
			}
		})
	}
}

func TestIPPoolReconcilerDeletion(t *testing.T) {
	now := metav1.NewTime(time.Now())
	held := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{v2beta1.Finalizer}, DeletionTimestamp: &now},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10"}},
		Status:     v2beta1.IPPoolStatus{AllocatedIPs: ptr.To(`{"10.6.0.10":{"pod":"default/a","podUid":"u1"}}`), AllocatedIPCount: ptr.To[int64](1)},
	}
	empty := held.DeepCopy()
	empty.Name, empty.Status = "empty", v2beta1.IPPoolStatus{}
	c := fake.NewClientBuilder().WithScheme(poolScheme(t)).WithObjects(held, empty).WithStatusSubresource(held, empty).Build()
	r := NewIPPoolReconciler(c, BlockFormat{})
	for _, name := range []string{"held", "empty"} {
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var got v2beta1.SpiderIPPool
	if err := c.Get(context.Background(), client.ObjectKey{Name: "held"}, &got); err != nil {
		t.Fatalf("pool with a record must stay until it is released: %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "empty"}, &got); err == nil {
		t.Errorf("empty deleted pool still exists with finalizers %v", got.Finalizers)
	}
}
