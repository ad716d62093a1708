package producer

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/state"
)

// ScanBucket compares one bucket with the state and reconciles every key
// that differs (see Scanner). Keys listed and unchanged cost one state read.
func (s *Scanner) ScanBucket(ctx context.Context, bucket string) (ScanStats, error) {
	s.init()
	var st ScanStats
	var cur cursor
	if _, err := s.Store.GetMeta(cursorKey(bucket), &cur); err != nil {
		return st, err
	}
	if cur.After != "" {
		s.Log.Info("resuming an interrupted scan", "bucket", bucket, "after", cur.After, "listed", cur.Listed)
	}
	st.Listed, st.Missing, st.Known = cur.Listed, cur.Missing, cur.Known
	s.setStatus(bucket, func(b *BucketStatus) { b.Scanning, b.Listed = true, st.Listed })
	defer s.setStatus(bucket, func(b *BucketStatus) { b.Scanning = false })
	prog := s.progress(bucket, &st)
	defer prog.stop()

	// Pass 1: publish what is new or changed, count what is missing.
	err := s.mergePass(ctx, bucket, cur.After,
		func(le s3io.ListEntry) {
			st.Listed++
			if s.P.Ignored(le.Key) {
				return
			}
			e, ok, err := s.Store.Get(bucket, le.Key)
			if err != nil {
				st.Errors++
				return
			}
			if ok && e.Present() {
				st.Known++
			}
			if ok && e.Present() && e.LocalETag == le.ETag && e.Pending == nil {
				return
			}
			res, err := s.P.Reconcile(ctx, bucket, le.Key)
			if err != nil {
				st.Errors++
				s.Log.Warn("scan: reconcile failed", "bucket", bucket, "key", le.Key, "err", err)
			} else if res == Published {
				st.Published++
			}
		},
		func(key string, e state.Entry) {
			if e.Present() || e.Pending != nil {
				st.Known++
				st.Missing++
			} else if s.collectable(e) {
				s.collect(bucket, key, &st)
			}
		},
		func(after string) error {
			return s.Store.PutMeta(cursorKey(bucket), &cursor{After: after, Listed: st.Listed, Missing: st.Missing, Known: st.Known})
		})
	if err != nil {
		return st, err
	}
	if err := s.Store.PutMeta(cursorKey(bucket), nil); err != nil {
		return st, err
	}
	defer s.setStatus(bucket, func(b *BucketStatus) { b.LastScan, b.Last = time.Now().UTC(), st })
	if st.Missing == 0 {
		return st, s.release(bucket, st)
	}
	// Deletes: only when the share of known keys missing is plausible, or an
	// operator confirmed.
	var h Hold
	held, err := s.Store.GetMeta(holdKey(bucket), &h)
	if err != nil {
		return st, err
	}
	frac := float64(st.Missing) / float64(max(st.Known, 1))
	if frac > s.MaxDeleteFraction && !(held && h.Confirmed) {
		st.Held = true
		if !held {
			h = Hold{Since: time.Now().UTC()}
		}
		h.Missing, h.Known, h.Confirmed = st.Missing, st.Known, false
		if err := s.Store.PutMeta(holdKey(bucket), &h); err != nil {
			return st, err
		}
		s.P.setHeld(bucket, true)
		s.setStatus(bucket, func(b *BucketStatus) { hh := h; b.Held = &hh })
		s.P.m.HeldBuckets.WithLabelValues(bucket).Set(1)
		s.Log.Error("deletes HELD: too many keys missing from the bucket (wiped, replaced or misconfigured store?); nothing deleted at other sites. "+
			"Confirm with `s3mesh scan confirm-deletes --bucket B` or rebuild the site from its peers",
			"bucket", bucket, "missing", st.Missing, "known", st.Known, "fraction", fmt.Sprintf("%.3f", frac), "max", s.MaxDeleteFraction)
		return st, nil
	}
	// Pass 2: publish the deletes (Reconcile HEADs each key again first).
	s.P.setHeld(bucket, false)
	err = s.mergePass(ctx, bucket, "", func(s3io.ListEntry) {}, func(key string, e state.Entry) {
		if !e.Present() && e.Pending == nil {
			return
		}
		res, err := s.P.Reconcile(ctx, bucket, key)
		if err != nil {
			st.Errors++
			s.Log.Warn("scan: reconcile failed", "bucket", bucket, "key", key, "err", err)
		} else if res == Published {
			st.Deleted++
		}
	}, nil)
	if err != nil {
		return st, err
	}
	return st, s.release(bucket, st)
}

// release clears a hold after a scan that published its deletes or found
// nothing missing.
func (s *Scanner) release(bucket string, st ScanStats) error {
	s.P.setHeld(bucket, false)
	s.P.m.HeldBuckets.WithLabelValues(bucket).Set(0)
	s.P.m.Scans.WithLabelValues(bucket).Inc()
	var h Hold
	if ok, err := s.Store.GetMeta(holdKey(bucket), &h); err != nil || !ok {
		return err
	}
	s.setStatus(bucket, func(b *BucketStatus) { b.Held = nil })
	s.Log.Warn("bucket no longer held", "bucket", bucket, "deletes_published", st.Deleted)
	return s.Store.PutMeta(holdKey(bucket), nil)
}

// mergePass walks the listing of bucket after startAfter page by page and
// the state alongside it: onListed for each listed object, onMissing for
// each state entry whose key was not listed, saved(after) after each page.
func (s *Scanner) mergePass(ctx context.Context, bucket, startAfter string, onListed func(s3io.ListEntry),
	onMissing func(string, state.Entry), saved func(after string) error) error {
	var lim *rate.Limiter
	if s.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(s.Rate), max(int(s.Rate), 1))
	}
	prev := startAfter
	var page []s3io.ListEntry
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		last := page[len(page)-1].Key
		i := 0
		err := s.Store.ScanRange(bucket, prev, last, func(key string, e state.Entry) error {
			for i < len(page) && page[i].Key < key {
				i++
			}
			if i < len(page) && page[i].Key == key {
				return nil
			}
			onMissing(key, e)
			return nil
		})
		if err != nil {
			return err
		}
		for _, le := range page {
			onListed(le)
		}
		prev, page = last, page[:0]
		if saved != nil {
			return saved(prev)
		}
		return ctx.Err()
	}
	err := s.S3.List(ctx, bucket, startAfter, s.PageSize, func(le s3io.ListEntry) error {
		if le.Key <= prev {
			return fmt.Errorf("%w: %q after %q", ErrUnsorted, le.Key, prev)
		}
		if n := len(page); n > 0 && le.Key <= page[n-1].Key {
			return fmt.Errorf("%w: %q after %q", ErrUnsorted, le.Key, page[n-1].Key)
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		page = append(page, le)
		if int32(len(page)) >= s.PageSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", bucket, err)
	}
	if err := flush(); err != nil {
		return err
	}
	// State entries after the last listed key.
	return s.Store.Scan(bucket, prev, func(key string, e state.Entry) error {
		onMissing(key, e)
		return nil
	})
}

// collectable reports whether e is a tombstone past the retention.
func (s *Scanner) collectable(e state.Entry) bool {
	return s.Retention > 0 && e.Held.Deleted && e.Pending == nil && e.Applying == nil &&
		time.Since(time.UnixMilli(e.Updated)) > s.Retention
}

func (s *Scanner) collect(bucket, key string, st *ScanStats) {
	unlock := s.Store.Lock(bucket, key)
	defer unlock()
	e, ok, err := s.Store.Get(bucket, key)
	if err != nil || !ok || !s.collectable(e) {
		return
	}
	if err := s.Store.Delete(bucket, key); err == nil {
		st.Collected++
	}
}
