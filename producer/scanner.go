package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/state"
)

// Lister lists a bucket page by page, in key order.
type Lister interface {
	List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error
}

// Scanner compares each replicated bucket with the state and reconciles every
// difference: the initial sync of existing objects and the repair of events
// the store lost or misnamed. It is the correctness backstop; events are the
// fast path.
//
// A scan merge-joins the listing (key order) with the state (key order),
// one listing page at a time, so memory does not grow with the bucket. Its
// position is saved after every page: a restarted agent resumes the scan.
// Deletes are published only after the whole bucket was compared, and only
// if the share of known keys missing stays under MaxDeleteFraction; above
// it the bucket is held (a wiped or misconfigured store must never delete
// the other sites' data) until an operator confirms.
type Scanner struct {
	P                 *Producer
	S3                Lister
	Store             *state.Store
	Interval          time.Duration // full rescan period (0: only at start and on Kick)
	Debounce          time.Duration
	Rate              float64 // listed objects per second (0 = unlimited)
	PageSize          int32
	MaxDeleteFraction float64
	// EventDeletesMin is the fewest delete events within
	// EventDeleteWindow that can hold a bucket (0: DefaultEventDeletesMin);
	// beyond it, more than MaxDeleteFraction of the keys the last scan
	// knew does (eventDeletes).
	EventDeletesMin int
	Retention       time.Duration // tombstones older than this are collected
	// EventGrace is how long a scan that would hold the bucket for a few
	// keys waits for their delete events before counting them missing
	// (recheckMissing; 0: it does not wait).
	EventGrace time.Duration
	Log        *slog.Logger
	Progress   io.Writer // a terminal to draw progress on, or nil
	Trash      *Trash    // looks after the bucket's trash at each scan (nil: nothing)

	once   sync.Once
	kicks  chan string
	now    chan scanRequest
	mu     sync.Mutex
	status map[string]*BucketStatus
}

// BucketStatus is what the scanner knows of one bucket, for status and
// metrics.
type BucketStatus struct {
	Bucket   string    `json:"bucket"`
	Held     *Hold     `json:"held,omitempty"`
	Scanning bool      `json:"scanning"`
	Listed   int       `json:"listed"` // so far in the running scan
	LastScan time.Time `json:"last_scan"`
	Last     ScanStats `json:"last_stats"`
}

// Hold records why a bucket's deletes are held.
type Hold struct {
	Since     time.Time `msgpack:"since" json:"since"`
	Missing   int       `msgpack:"missing" json:"missing"`
	Known     int       `msgpack:"known" json:"known"`
	Confirmed bool      `msgpack:"confirmed" json:"confirmed"` // the next scan publishes the deletes
}

// ScanStats summarises one bucket scan.
type ScanStats struct {
	Listed    int  `json:"listed"`
	Published int  `json:"published"`
	Deleted   int  `json:"deleted"`
	Missing   int  `json:"missing"`
	Known     int  `json:"known"`
	Collected int  `json:"tombstones_collected"`
	Errors    int  `json:"errors"`
	Held      bool `json:"held"`
	// missingKeys holds the first recheckMissingMax missing keys (a
	// resumed scan has none from before its cursor): rechecked by a HEAD
	// before they can hold the bucket, and the first few named in the
	// hold's log line.
	missingKeys []string
}

type cursor struct {
	After   string `msgpack:"after"`
	Listed  int    `msgpack:"listed"`
	Missing int    `msgpack:"missing"`
	Known   int    `msgpack:"known"`
}

func holdKey(bucket string) string   { return "hold/" + bucket }
func cursorKey(bucket string) string { return "scan/" + bucket }

// ErrUnsorted means a listing did not come in key order, so a merge with the
// state cannot tell missing keys safely.
var ErrUnsorted = errors.New("bucket listing is not in key order")

func (s *Scanner) init() {
	s.once.Do(func() {
		s.kicks = make(chan string, 64)
		s.now = make(chan scanRequest)
		s.status = map[string]*BucketStatus{}
		for b := range s.P.buckets {
			st := &BucketStatus{Bucket: b}
			var h Hold
			if ok, err := s.Store.GetMeta(holdKey(b), &h); err == nil && ok {
				st.Held = &h
				s.P.setHeld(b, true)
			}
			s.status[b] = st
		}
		if s.PageSize <= 0 {
			s.PageSize = 1000
		}
		if s.MaxDeleteFraction <= 0 {
			s.MaxDeleteFraction = 0.1
		}
		if s.EventDeletesMin <= 0 {
			s.EventDeletesMin = DefaultEventDeletesMin
		}
		s.P.eventDeletes.mu.Lock()
		s.P.eventDeletes.fraction, s.P.eventDeletes.min, s.P.eventDeletes.known = s.MaxDeleteFraction, s.EventDeletesMin, s.knownKeys
		s.P.eventDeletes.mu.Unlock()
	})
}

// Kick asks for a prompt (debounced) rescan of bucket.
func (s *Scanner) Kick(bucket string) {
	s.init()
	select {
	case s.kicks <- bucket:
	default: // a rescan is already queued
	}
}

type scanRequest struct {
	bucket string
	done   chan scanResult
}

type scanResult struct {
	stats ScanStats
	took  time.Duration
	err   error
}

// ScanNow has the running scanner (Run) scan bucket at once and waits for
// the result: what `s3mesh scan now` asks for. It fails if ctx ends first
// or the bucket is not replicated.
func (s *Scanner) ScanNow(ctx context.Context, bucket string) (ScanStats, time.Duration, error) {
	s.init()
	if !s.P.buckets[bucket] {
		return ScanStats{}, 0, fmt.Errorf("bucket %q is not replicated", bucket)
	}
	r := scanRequest{bucket: bucket, done: make(chan scanResult, 1)}
	select {
	case s.now <- r:
	case <-ctx.Done():
		return ScanStats{}, 0, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.stats, res.took, res.err
	case <-ctx.Done():
		return ScanStats{}, 0, ctx.Err()
	}
}

// knownKeys is how many keys of bucket the last finished scan knew (0
// before one).
func (s *Scanner) knownKeys(bucket string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.status[bucket]; ok && !st.LastScan.IsZero() {
		return st.Last.Known
	}
	return 0
}

// Status returns a snapshot of every bucket's scan status.
func (s *Scanner) Status() []BucketStatus {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BucketStatus, 0, len(s.status))
	for _, st := range s.status {
		c := *st
		out = append(out, c)
	}
	return out
}

// ConfirmDeletes lets the next scan of a held bucket publish its deletes,
// and starts that scan.
func (s *Scanner) ConfirmDeletes(bucket string) error {
	s.init()
	s.mu.Lock()
	st, ok := s.status[bucket]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("bucket %q is not replicated", bucket)
	}
	if st.Held == nil {
		s.mu.Unlock()
		return fmt.Errorf("bucket %q is not held", bucket)
	}
	st.Held.Confirmed = true
	h := *st.Held
	s.mu.Unlock()
	if err := s.Store.PutMeta(holdKey(bucket), &h); err != nil {
		return err
	}
	s.Log.Warn("held deletes confirmed by an operator; the next scan publishes them", "bucket", bucket, "missing", h.Missing, "known", h.Known)
	s.Kick(bucket)
	return nil
}

// Run scans every bucket at start, then on each Kick (debounced) and every
// Interval, until ctx ends.
func (s *Scanner) Run(ctx context.Context) {
	s.init()
	due := map[string]bool{}
	for b := range s.P.buckets {
		due[b] = true
	}
	var tick <-chan time.Time
	if s.Interval > 0 {
		t := time.NewTicker(s.Interval)
		defer t.Stop()
		tick = t.C
	}
	debounce := time.NewTimer(0)
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-s.kicks:
			if !due[b] {
				due[b] = true
				debounce.Reset(s.Debounce)
			}
			continue
		case r := <-s.now:
			t0 := time.Now()
			st, err := s.ScanBucket(ctx, r.bucket)
			r.done <- scanResult{stats: st, took: time.Since(t0), err: err}
			if err == nil {
				delete(due, r.bucket)
			} else if ctx.Err() == nil {
				s.P.m.ScanFailures.WithLabelValues(r.bucket).Inc()
			}
			continue
		case <-tick:
			for b := range s.P.buckets {
				due[b] = true
			}
		case <-debounce.C:
		}
		for b := range due {
			delete(due, b)
			st, err := s.ScanBucket(ctx, b)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.Log.Warn("scan failed; will retry", "bucket", b, "err", err)
				s.P.m.ScanFailures.WithLabelValues(b).Inc()
				due[b] = true
				debounce.Reset(5 * time.Second)
				continue
			}
			if st.Published+st.Deleted+st.Errors+st.Collected > 0 || st.Held {
				s.Log.Info("scan done", "bucket", b, "listed", st.Listed, "published", st.Published, "deletes", st.Deleted,
					"missing", st.Missing, "known", st.Known, "tombstones_collected", st.Collected, "errors", st.Errors, "held", st.Held)
			}
		}
	}
}

func (s *Scanner) setStatus(bucket string, f func(*BucketStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.status[bucket]; ok {
		f(st)
	}
}
