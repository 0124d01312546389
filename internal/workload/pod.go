package workload

import corev1 "k8s.io/api/core/v1"

// PodFinished reports whether the pod reached a terminal phase (evicted pods are Failed): its
// containers are gone and will not come back, so it uses no address any more.
func PodFinished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// PodAlive reports whether the pod may still be given addresses and keeps using them: it is not
// terminating and has not finished. A terminating pod whose containers still run holds its
// addresses until they stop; callers that must not take them from it check PodFinished alone.
func PodAlive(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && !PodFinished(pod)
}
