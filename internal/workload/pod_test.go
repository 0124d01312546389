package workload

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodAliveAndFinished(t *testing.T) {
	type verdict struct{ Alive, Finished bool }
	for name, tc := range map[string]struct {
		phase    corev1.PodPhase
		deleting bool
		want     verdict
	}{
		"pending":                 {phase: corev1.PodPending, want: verdict{Alive: true}},
		"no phase yet":            {want: verdict{Alive: true}},
		"running":                 {phase: corev1.PodRunning, want: verdict{Alive: true}},
		"unknown":                 {phase: corev1.PodUnknown, want: verdict{Alive: true}},
		"terminating":             {phase: corev1.PodRunning, deleting: true, want: verdict{}},
		"succeeded":               {phase: corev1.PodSucceeded, want: verdict{Finished: true}},
		"failed (evicted)":        {phase: corev1.PodFailed, want: verdict{Finished: true}},
		"failed while terminated": {phase: corev1.PodFailed, deleting: true, want: verdict{Finished: true}},
	} {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{Status: corev1.PodStatus{Phase: tc.phase}}
			if tc.deleting {
				pod.DeletionTimestamp = &metav1.Time{}
			}
			got := verdict{Alive: PodAlive(pod), Finished: PodFinished(pod)}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
