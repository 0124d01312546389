package workload

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StatefulSetWantsPod reports whether StatefulSet namespace/sts exists, is not being deleted and
// has pod's ordinal inside its replica range (spec.ordinals.start included), i.e. will (re)create
// the pod.
func StatefulSetWantsPod(ctx context.Context, r client.Reader, namespace, sts, pod string) (bool, error) {
	obj := &appsv1.StatefulSet{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: sts}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("get StatefulSet %s/%s: %w", namespace, sts, err)
	}
	if obj.DeletionTimestamp != nil {
		return false, nil
	}
	ordinal, ok := Ordinal(sts, pod)
	if !ok {
		return false, nil
	}
	start, replicas := 0, 1
	if obj.Spec.Ordinals != nil {
		start = int(obj.Spec.Ordinals.Start)
	}
	if obj.Spec.Replicas != nil {
		replicas = int(*obj.Spec.Replicas)
	}
	return ordinal >= start && ordinal < start+replicas, nil
}

// Ordinal parses the ordinal of StatefulSet pod "<sts>-<n>". The StatefulSet controller writes n in
// canonical decimal, so "db-01" is not a member of "db".
func Ordinal(sts, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, sts+"-")
	if !ok || rest == "" || len(rest) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}
