package producer

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Poller is the event source of a store that sends no events (rclone serve
// s3, AWS S3 without an event bridge, Garage): every Interval it has the
// Scanner compare every replicated bucket with the state, which publishes
// what changed — new and overwritten objects at once, deletes through the
// scanner's delete guard (MaxDeleteFraction, held buckets). A change then
// waits at most one Interval plus one listing of its bucket; the cost is
// one listing (a request per 1000 keys) per bucket per Interval.
type Poller struct {
	Scanner  *Scanner
	Interval time.Duration
	Log      *slog.Logger

	mu   sync.Mutex
	last map[string]PollStatus
}

// PollStatus is the last poll of one bucket.
type PollStatus struct {
	At    time.Time     `json:"at"`
	Took  time.Duration `json:"took_ns"`
	Stats ScanStats     `json:"stats"`
	Err   string        `json:"error,omitempty"`
}

// Run polls until ctx ends. Polls of a bucket never overlap, and a poll that
// takes longer than Interval is followed by the next at once.
func (p *Poller) Run(ctx context.Context) {
	buckets := make([]string, 0, len(p.Scanner.P.buckets))
	for b := range p.Scanner.P.buckets {
		buckets = append(buckets, b)
	}
	sort.Strings(buckets)
	t := time.NewTimer(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		for _, b := range buckets {
			st, took, err := p.Scanner.ScanNow(ctx, b)
			if ctx.Err() != nil {
				return
			}
			ps := PollStatus{At: time.Now(), Took: took, Stats: st}
			if err != nil {
				ps.Err = err.Error()
				p.Log.Warn("poll failed; the next poll retries", "bucket", b, "err", err)
			} else if st.Published+st.Deleted > 0 {
				p.Log.Debug("poll found changes", "bucket", b, "published", st.Published, "deletes", st.Deleted, "took", took)
			}
			p.mu.Lock()
			if p.last == nil {
				p.last = map[string]PollStatus{}
			}
			p.last[b] = ps
			p.mu.Unlock()
		}
		t.Reset(max(0, p.Interval-time.Since(start)))
	}
}

// Status returns the last poll of every bucket polled so far.
func (p *Poller) Status() map[string]PollStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]PollStatus, len(p.last))
	for b, s := range p.last {
		out[b] = s
	}
	return out
}
