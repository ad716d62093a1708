package producer

import (
	"sync"
	"time"
)

// EventDeleteWindow is how far back the guard on delete events counts, and
// DefaultEventDeletesMin the fewest deletes in it that can hold a bucket
// (so that a user deleting a few objects of a small bucket is never held).
const (
	EventDeleteWindow      = 5 * time.Minute
	DefaultEventDeletesMin = 100
)

// eventDeletes guards the deletes that storage events tell of, as the
// scanner guards the ones it finds: once more of a bucket's keys than its
// delete fraction (of the keys its last scan knew, and at least min) were
// deleted through events within EventDeleteWindow, the bucket's deletes
// are held — the next ones are not published — until the scanner's next
// pass judges the bucket as a whole (it holds it while too many keys are
// missing, until an operator confirms) . A user (or an attacker with a
// site's S3 keys) deleting most of a bucket through S3 is thus held at the
// origin, like a wiped store.
type eventDeletes struct {
	mu       sync.Mutex
	fraction float64
	min      int
	known    func(bucket string) int // keys the bucket's last scan knew (0: unknown)
	times    map[string][]time.Time  // bucket → published event deletes within the window
}

// note counts a published event delete of bucket at now and reports
// whether the bucket's deletes must be held from now on, with the count
// and its limit.
func (g *eventDeletes) note(bucket string, now time.Time) (hold bool, n, limit int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known == nil {
		return false, 0, 0
	}
	if g.times == nil {
		g.times = map[string][]time.Time{}
	}
	ts := append(g.times[bucket], now)
	cut := 0
	for cut < len(ts) && now.Sub(ts[cut]) > EventDeleteWindow {
		cut++
	}
	ts = ts[cut:]
	g.times[bucket] = ts
	known := g.known(bucket)
	if known <= 0 {
		return false, len(ts), 0 // no scan yet: nothing to judge by
	}
	limit = max(g.min, int(g.fraction*float64(known)))
	return len(ts) > limit, len(ts), limit
}

// reset forgets the counts of bucket (an operator confirmed its deletes).
func (g *eventDeletes) reset(bucket string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.times, bucket)
}
