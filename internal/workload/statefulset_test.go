package workload

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestOrdinal(t *testing.T) {
	cases := []struct {
		pod  string
		want int
		ok   bool
	}{
		{"db-0", 0, true}, {"db-12", 12, true}, {"db-", 0, false}, {"db-x", 0, false},
		{"db-01", 0, false}, {"dbx-1", 0, false}, {"db-1-2", 0, false}, {"db--1", 0, false},
	}
	for _, tc := range cases {
		n, ok := Ordinal("db", tc.pod)
		if n != tc.want || ok != tc.ok {
			t.Errorf("Ordinal(db, %s) = %d, %v; want %d, %v", tc.pod, n, ok, tc.want, tc.ok)
		}
	}
}

func TestStatefulSetWantsPod(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	now := metav1.NewTime(time.Now())
	objs := []*appsv1.StatefulSet{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shifted"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2),
			Ordinals: &appsv1.StatefulSetOrdinals{Start: 5}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "going", DeletionTimestamp: &now, Finalizers: []string{"x"}}},
	}
	b := fake.NewClientBuilder().WithScheme(s)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	c := b.Build()
	cases := []struct {
		sts, pod string
		want     bool
	}{
		{"db", "db-0", true}, {"db", "db-1", true}, {"db", "db-2", false},
		{"shifted", "shifted-4", false}, {"shifted", "shifted-5", true}, {"shifted", "shifted-6", true}, {"shifted", "shifted-7", false},
		{"going", "going-0", false}, {"missing", "missing-0", false}, {"db", "other-0", false},
	}
	for _, tc := range cases {
		got, err := StatefulSetWantsPod(context.Background(), c, "ns", tc.sts, tc.pod)
		if err != nil || got != tc.want {
			t.Errorf("StatefulSetWantsPod(%s, %s) = %v, %v; want %v", tc.sts, tc.pod, got, err, tc.want)
		}
	}
}
