package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestParallelRunsEachOnceWithinTheBound(t *testing.T) {
	var running, peak, calls atomic.Int32
	seen := make([]atomic.Bool, 40)
	Parallel(40, 3, func(i int) {
		if seen[i].Swap(true) {
			t.Errorf("fn(%d) called twice", i)
		}
		calls.Add(1)
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		running.Add(-1)
	})
	if calls.Load() != 40 {
		t.Errorf("%d calls, want 40", calls.Load())
	}
	if peak.Load() > 3 {
		t.Errorf("%d calls ran at once, bound is 3", peak.Load())
	}
}
