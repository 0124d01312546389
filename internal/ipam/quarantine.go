package ipam

import (
	"net/netip"
	"sync"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/ip"
)

// DefaultQuarantine is how long an address another host answered for stays out of allocation.
const DefaultQuarantine = 10 * time.Minute

// Quarantine holds addresses that the plugin found in use by a host outside Spiderpool's
// records (IP conflict detection). Until they expire the allocator treats them like reserved
// addresses, so that the retry of a failed ADD gets another address instead of the same
// conflict. It is per agent and in memory: an agent on another node learns of the conflict by
// detecting it itself, and a restart forgets, which at worst costs one more failed ADD.
type Quarantine struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	until map[netip.Addr]time.Time
}

// NewQuarantine returns an empty quarantine whose entries last ttl.
func NewQuarantine(ttl time.Duration) *Quarantine {
	return &Quarantine{ttl: ttl, now: time.Now, until: map[netip.Addr]time.Time{}}
}

// Add quarantines addrs from now on (again, if they already were).
func (q *Quarantine) Add(addrs ...netip.Addr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	end := q.now().Add(q.ttl)
	for _, a := range addrs {
		q.until[a.Unmap()] = end
	}
}

// Set returns the unexpired addresses of an IP version, dropping expired ones.
func (q *Quarantine) Set(version int) ip.Set {
	set, _ := ip.NewSet(version)
	if q == nil {
		return set
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	var ranges []ip.Range
	for a, end := range q.until {
		if !now.Before(end) {
			delete(q.until, a)
			continue
		}
		if (version == 4) == a.Is4() {
			ranges = append(ranges, ip.Range{First: a, Last: a})
		}
	}
	if len(ranges) == 0 {
		return set
	}
	set, _ = ip.NewSet(version, ranges...)
	return set
}

// Holds reports whether addr is quarantined now.
func (q *Quarantine) Holds(addr netip.Addr) bool {
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	end, ok := q.until[addr.Unmap()]
	return ok && q.now().Before(end)
}
