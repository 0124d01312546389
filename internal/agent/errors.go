package agent

import (
	"context"
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/spiderpool-go/spiderpool/api/agent/v1"
	"github.com/spiderpool-go/spiderpool/internal/ipam"
)

// Sentinel errors of the agent, classified with errors.Is. Each maps to one
// api/agent/v1 code in httpError.
var (
	// ErrNotReady reports that the agent's caches have not synced yet, or
	// that the SpiderCoordinator is missing or not Synced.
	ErrNotReady = errors.New("not ready")

	// ErrDeadPod reports a pod that is terminating or has finished.
	ErrDeadPod = errors.New("dead Pod")

	// ErrNotFound reports that the pod, the pod incarnation (UID) or the
	// SpiderEndpoint asked about does not exist.
	ErrNotFound = errors.New("not found")

	// ErrInvalidRequest reports a request that cannot be served as sent.
	ErrInvalidRequest = errors.New("invalid request")

	// ErrForbidden reports a release that must not happen: the conflicting
	// addresses of a StatefulSet pod that keeps its addresses.
	ErrForbidden = errors.New("forbidden")
)

// reasonError is an error with an exact message (often upstream's text,
// which users search for) that still matches a sentinel with errors.Is.
type reasonError struct {
	kind error
	msg  string
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.kind }

// Statuses of the codes. Upstream answers most failures with 500; the
// plugin client decides on the code in the body, never on the status, so
// the statuses only need to be conventional.
var statusOf = map[v1.Code]int{
	v1.CodeInvalidRequest:  http.StatusBadRequest,
	v1.CodeNotFound:        http.StatusNotFound,
	v1.CodeDeadPod:         http.StatusGone,
	v1.CodeNoCandidatePool: http.StatusInternalServerError,
	v1.CodePoolExhausted:   http.StatusInternalServerError,
	v1.CodeConflict:        http.StatusConflict,
	v1.CodeNotReady:        http.StatusServiceUnavailable,
	// 522 is upstream's answer to DELETE /v1/ipam/ips for the conflicting
	// addresses of a stateful workload, the only forbidden operation.
	v1.CodeForbidden: 522,
	v1.CodeInternal:  http.StatusInternalServerError,
}

// httpError is the one place where Go errors become API errors. The order
// of the cases matters when err joins several causes (the two families of
// a dual-stack request): the pod's own state first, then configuration
// problems, then capacity, then transient failures.
func httpError(err error) (int, *v1.Error) {
	code := classify(err)
	msg := err.Error()
	var apiErr *v1.Error
	if errors.As(err, &apiErr) && apiErr.Code == code {
		msg = apiErr.Message
	}
	return statusOf[code], &v1.Error{Code: code, Message: msg}
}

func classify(err error) v1.Code {
	var apiErr *v1.Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr.Code
	case errors.Is(err, ErrNotReady):
		return v1.CodeNotReady
	case errors.Is(err, ErrDeadPod):
		return v1.CodeDeadPod
	case errors.Is(err, ErrForbidden):
		return v1.CodeForbidden
	case errors.Is(err, ErrInvalidRequest),
		errors.Is(err, ipam.ErrInvalidAnnotation),
		errors.Is(err, ipam.ErrFeatureDisabled),
		apierrors.IsBadRequest(err), apierrors.IsInvalid(err):
		return v1.CodeInvalidRequest
	case errors.Is(err, ErrNotFound):
		return v1.CodeNotFound
	// A pool named by an annotation or the CNI configuration that does not
	// exist is a selection failure, not a missing pod.
	case errors.Is(err, ipam.ErrNoCandidatePool), errors.Is(err, ipam.ErrPoolNotFound):
		return v1.CodeNoCandidatePool
	case errors.Is(err, ipam.ErrPoolExhausted):
		return v1.CodePoolExhausted
	// Transient: a retry of the whole request may succeed.
	case errors.Is(err, ipam.ErrConflict),
		errors.Is(err, ipam.ErrPoolUnavailable),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled),
		apierrors.IsConflict(err), apierrors.IsAlreadyExists(err),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err):
		return v1.CodeConflict
	case apierrors.IsNotFound(err):
		return v1.CodeNotFound
	}
	return v1.CodeInternal
}
