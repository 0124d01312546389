package ipam

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Their texts are upstream's so that messages users search
// for keep reading the same; callers classify with errors.Is.
var (
	// ErrPoolExhausted reports that a pool (or every candidate pool) has no
	// free address left, or holds the maximum number of records.
	ErrPoolExhausted = errors.New("all IP addresses used out")

	// ErrNoCandidatePool reports that no pool is left to try for a family:
	// no selection rule named one, or the filters dropped them all.
	ErrNoCandidatePool = errors.New("no IPPool available")

	// ErrPoolNotFound reports a pool name that does not exist.
	ErrPoolNotFound = errors.New("IPPool not found")

	// ErrInvalidAnnotation reports an annotation whose value cannot be
	// parsed or is inconsistent; the message names the annotation key.
	ErrInvalidAnnotation = errors.New("invalid annotation")

	// ErrFeatureDisabled reports a request for a feature switched off in the
	// configuration (subnet annotations with SpiderSubnet auto pools off).
	ErrFeatureDisabled = errors.New("feature disabled")

	// ErrConflict reports that a Store gave up after too many write
	// conflicts on one pool.
	ErrConflict = errors.New("too many write conflicts")

	// ErrInBlocks reports a pool whose records moved to SpiderIPBlocks (its
	// ipam-format annotation) while a Store of the pool-status format was
	// about to write them: the caller must go through the block store.
	ErrInBlocks = errors.New("IPPool records are kept in SpiderIPBlocks")

	// ErrPoolUnavailable reports a pool that became disabled or terminating
	// between the cached read used for filtering and the fresh read of the
	// update.
	ErrPoolUnavailable = errors.New("IPPool unavailable")
)

// Refusal is why one candidate pool was dropped by a filter.
type Refusal struct {
	Pool   string
	Reason string
}

func (r Refusal) String() string { return r.Pool + ": " + r.Reason }

// FilterError reports that the filters dropped every candidate pool of a
// family. It lists each pool with the reason it was refused, and matches
// ErrNoCandidatePool with errors.Is.
type FilterError struct {
	Version  int      // 4 or 6
	NIC      string   // interface in the pod
	Pools    []string // candidates in the order they were considered
	Refusals []Refusal
}

func (e *FilterError) Error() string {
	reasons := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		reasons[i] = r.String()
	}
	return fmt.Sprintf("%v, all IPv%d IPPools %v of %s filtered out: %s",
		ErrNoCandidatePool, e.Version, e.Pools, e.NIC, strings.Join(reasons, "; "))
}

func (e *FilterError) Unwrap() error { return ErrNoCandidatePool }

// PoolError is the failure of one pool tried by the allocator.
type PoolError struct {
	Pool string
	Err  error
}

func (e PoolError) Error() string { return e.Pool + ": " + e.Err.Error() }
func (e PoolError) Unwrap() error { return e.Err }

// AllocationError reports that no candidate pool of a family yielded an
// address. errors.Is(err, ErrPoolExhausted) holds when every pool failed
// because it was exhausted; any other per-pool cause (a Store failure, a
// cancelled context) is reachable through errors.Is/As as well.
type AllocationError struct {
	Version int
	NIC     string
	Pools   []string
	Errs    []PoolError // one per pool tried, in order
}

func (e *AllocationError) exhausted() bool {
	for _, pe := range e.Errs {
		if !errors.Is(pe.Err, ErrPoolExhausted) {
			return false
		}
	}
	return len(e.Errs) > 0
}

func (e *AllocationError) Error() string {
	prefix := fmt.Sprintf("failed to allocate any IPv%d IP address to NIC %s from IPPools %v: ", e.Version, e.NIC, e.Pools)
	plain := true
	for _, pe := range e.Errs {
		if pe.Err != ErrPoolExhausted {
			plain = false
		}
	}
	if plain && len(e.Errs) > 0 {
		return prefix + ErrPoolExhausted.Error()
	}
	parts := make([]string, len(e.Errs))
	for i, pe := range e.Errs {
		parts[i] = pe.Error()
	}
	return prefix + strings.Join(parts, "; ")
}

// Is lets errors.Is(err, ErrPoolExhausted) succeed only when every pool was
// exhausted: a pool that failed for another reason might have had room.
func (e *AllocationError) Is(target error) bool {
	return target == ErrPoolExhausted && e.exhausted()
}

// Unwrap exposes the per-pool causes other than exhaustion (see Is).
func (e *AllocationError) Unwrap() []error {
	var errs []error
	for _, pe := range e.Errs {
		if !errors.Is(pe.Err, ErrPoolExhausted) {
			errs = append(errs, pe)
		}
	}
	return errs
}

// annotationError wraps ErrInvalidAnnotation with the key and the reason.
func annotationError(key string, err error) error {
	return fmt.Errorf("%w %s: %w", ErrInvalidAnnotation, key, err)
}
