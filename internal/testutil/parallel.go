package testutil

import "sync"

// Parallel calls fn(0) ... fn(n-1) with at most conc calls running at once and returns when all
// have returned. fn must be safe for concurrent use; it reports failures itself.
func Parallel(n, conc int, fn func(i int)) {
	conc = max(conc, 1)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
