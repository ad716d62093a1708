package producer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/state"
)

// Lister lists a bucket page by page.
type Lister interface {
	List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error
}

// Scanner compares each replicated bucket with the state and reconciles every
// difference: the initial sync of existing objects and the repair of events
// the store lost or misnamed. It is the correctness backstop; events are the
// fast path.
type Scanner struct {
	P        *Producer
	S3       Lister
	Store    *state.Store
	Interval time.Duration // full rescan period (0: only at start and on Kick)
	Debounce time.Duration
	Log      *slog.Logger

	once  sync.Once
	kicks chan string
}

// ScanStats summarises one bucket scan.
type ScanStats struct {
	Listed, Published, Deleted, Errors int
}

func (s *Scanner) init() {
	s.once.Do(func() { s.kicks = make(chan string, 64) })
}

// Kick asks for a prompt (debounced) rescan of bucket.
func (s *Scanner) Kick(bucket string) {
	s.init()
	select {
	case s.kicks <- bucket:
	default: // a rescan is already queued
	}
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
				due[b] = true
				debounce.Reset(5 * time.Second)
				continue
			}
			if st.Published+st.Deleted+st.Errors > 0 {
				s.Log.Info("scan repaired differences", "bucket", b, "listed", st.Listed, "published", st.Published, "deletes", st.Deleted, "errors", st.Errors)
			}
		}
	}
}

// ScanBucket compares one bucket with the state and reconciles every key that
// differs. Keys listed and unchanged cost one state read each.
func (s *Scanner) ScanBucket(ctx context.Context, bucket string) (ScanStats, error) {
	var st ScanStats
	// TODO(scanner issue): bounded memory for huge buckets (merge-join with
	// the state in key order instead of a set of listed keys).
	listed := map[string]struct{}{}
	err := s.S3.List(ctx, bucket, "", 1000, func(le s3io.ListEntry) error {
		st.Listed++
		listed[le.Key] = struct{}{}
		e, ok, err := s.Store.Get(bucket, le.Key)
		if err != nil {
			return err
		}
		if ok && e.Present() && e.LocalETag == le.ETag && e.Pending == nil {
			return nil
		}
		res, err := s.P.Reconcile(ctx, bucket, le.Key)
		if err != nil {
			st.Errors++
			s.Log.Warn("scan: reconcile failed", "bucket", bucket, "key", le.Key, "err", err)
			return nil
		}
		if res == Published {
			st.Published++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("scan %s: %w", bucket, err)
	}
	var missing []string
	err = s.Store.Scan(bucket, "", func(key string, e state.Entry) error {
		if _, ok := listed[key]; !ok && (e.Present() || e.Pending != nil) {
			missing = append(missing, key)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	for _, k := range missing {
		res, err := s.P.Reconcile(ctx, bucket, k)
		if err != nil {
			st.Errors++
			s.Log.Warn("scan: reconcile failed", "bucket", bucket, "key", k, "err", err)
			continue
		}
		if res == Published {
			st.Deleted++
		}
	}
	s.P.m.Scans.WithLabelValues(bucket).Inc()
	return st, nil
}
