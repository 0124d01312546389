package ipam

import (
	"net/netip"
	"testing"
	"time"
)

func TestQuarantine(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	q := NewQuarantine(time.Minute)
	q.now = func() time.Time { return now }
	q.Add(netip.MustParseAddr("10.6.0.5"), netip.MustParseAddr("fd00::5"), netip.MustParseAddr("::ffff:10.6.0.7"))
	if got := q.Set(4).String(); got != "10.6.0.5,10.6.0.7" {
		t.Errorf("IPv4 set %q, want 10.6.0.5,10.6.0.7 (a mapped address counts as IPv4)", got)
	}
	if got := q.Set(6).String(); got != "fd00::5" {
		t.Errorf("IPv6 set %q", got)
	}
	now = now.Add(30 * time.Second)
	q.Add(netip.MustParseAddr("10.6.0.5")) // found again: its minute starts over
	now = now.Add(45 * time.Second)
	if got := q.Set(4).String(); got != "10.6.0.5" {
		t.Errorf("after 75 s: IPv4 set %q, want only the re-added 10.6.0.5", got)
	}
	if got := q.Set(6); !got.IsEmpty() {
		t.Errorf("after 75 s: IPv6 set %q, want empty", got)
	}
	var none *Quarantine
	if !none.Set(4).IsEmpty() {
		t.Error("a nil quarantine holds addresses")
	}
}
