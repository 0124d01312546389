package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// rawCreateRate measures how fast the apiserver creates small custom objects with 32 workers:
// the ceiling any CRD-backed IPAM on this machine works under. The objects are SpiderReservedIPs
// with a single address each (no webhook runs in the benchmark) and are deleted afterwards.
func rawCreateRate(ctx context.Context, c client.Client, n int) (float64, error) {
	const workers = 32
	jobs := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
	)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				obj := &v2beta1.SpiderReservedIP{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-raw-%05d", i)},
					Spec:       v2beta1.ReservedIPSpec{IPs: []string{fmt.Sprintf("192.0.2.%d", i%250+1)}},
				}
				if err := c.Create(ctx, obj); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("raw create %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil {
		return 0, firstErr
	}
	if err := c.DeleteAllOf(ctx, &v2beta1.SpiderReservedIP{}); err != nil {
		return 0, fmt.Errorf("clean raw objects: %w", err)
	}
	return rate(n, elapsed), nil
}
