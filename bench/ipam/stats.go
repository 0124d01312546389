package main

import (
	"slices"
	"time"
)

// latencies collects per-request durations; safe for use by one goroutine at a time (callers lock).
type latencies []time.Duration

// percentile returns the p-th percentile (0..100) by the nearest-rank method, 0 when empty.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rate is operations per second, 0 for an empty interval.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
