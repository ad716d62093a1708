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
	if s.Trash != nil {
		if err := s.Trash.Pass(ctx, bucket); err != nil && ctx.Err() == nil {
			s.Log.Warn("scan: the trash pass failed; the scan goes on", "bucket", bucket, "err", err)
		}
	}
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
	defer prog.stop(&st)

	if err := s.changesPass(ctx, bucket, cur.After, &st, prog); err != nil {
		return st, err
	}
	if err := s.Store.PutMeta(cursorKey(bucket), nil); err != nil {
		return st, err
	}
	defer s.setStatus(bucket, func(b *BucketStatus) { b.LastScan, b.Last = time.Now().UTC(), st })
	if st.Missing == 0 {
		return st, s.release(bucket, st)
	}
	s.recheckMissing(ctx, bucket, &st)
	if st.Missing == 0 {
		return st, s.release(bucket, st)
	}
	if held, err := s.holdDeletes(bucket, &st); err != nil || held {
		return st, err
	}
	if err := s.deletesPass(ctx, bucket, &st); err != nil {
		return st, err
	}
	return st, s.release(bucket, st)
}

// changesPass (pass 1) publishes what is new or changed from startAfter on,
// counts what is missing and collects expired tombstones, saving a cursor
// after every page.
func (s *Scanner) changesPass(ctx context.Context, bucket, startAfter string, st *ScanStats, prog *progress) error {
	return s.mergePass(ctx, bucket, startAfter,
		func(le s3io.ListEntry, e state.Entry, ok bool) {
			st.Listed++
			if s.P.Skips(bucket, le.Key) {
				return
			}
			// e was read without the key's lock; Reconcile re-reads it.
			if ok && e.Stored() {
				st.Known++
			}
			if ok && e.Stored() && e.LocalETag == le.ETag && e.Pending == nil {
				return
			}
			s.reconcile(ctx, bucket, le.Key, st, &st.Published)
		},
		func(key string, e state.Entry) {
			if e.Stored() || e.Pending != nil {
				st.Known++
				st.Missing++
				if len(st.missingKeys) < recheckMissingMax {
					st.missingKeys = append(st.missingKeys, key)
				}
			} else if s.collectable(e) {
				s.collect(bucket, key, st)
			}
		},
		func(after string) error {
			prog.report(st)
			return s.Store.PutMeta(cursorKey(bucket), &cursor{After: after, Listed: st.Listed, Missing: st.Missing, Known: st.Known})
		})
}

// recheckMissingMax bounds the missing keys a scan looks at again before
// they may hold the bucket's deletes.
const recheckMissingMax = 100

// recheckMissing looks again at the keys the listing missed, when they are
// few (recheckMissingMax at most) and would hold the bucket's deletes. A
// key the store still holds (HEAD finds it) is not missing. For a key the
// store really lost, the scan may simply have seen a user's delete before
// its event: MinIO's NATS target with a queue directory replays its queue
// every 3 s, so a delete is in the listing seconds before its event
// arrives, and in a small bucket one such key is more than
// max_delete_fraction. So the scan waits EventGrace and reads those keys'
// state again: a key whose delete event landed meanwhile is no longer
// missing. More missing keys than recheckMissingMax are a wipe-like event
// and hold the bucket at once, as before.
func (s *Scanner) recheckMissing(ctx context.Context, bucket string, st *ScanStats) {
	frac := float64(st.Missing) / float64(max(st.Known, 1))
	if frac <= s.MaxDeleteFraction || st.Missing > len(st.missingKeys) {
		return
	}
	still := st.missingKeys[:0]
	for _, k := range st.missingKeys {
		info, err := s.P.s3.Head(ctx, bucket, k)
		if err == nil && info.Exists {
			st.Missing--
			s.Log.Info("scan: a key the listing missed is still in the store", "bucket", bucket, "key", k)
			continue
		}
		still = append(still, k)
	}
	st.missingKeys = still
	if len(still) == 0 || s.EventGrace <= 0 {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(s.EventGrace):
	}
	still = st.missingKeys[:0]
	for _, k := range st.missingKeys {
		e, ok, err := s.Store.Get(bucket, k)
		if err == nil && (!ok || (!e.Present() && e.Pending == nil)) {
			st.Missing--
			st.Known--
			continue
		}
		still = append(still, k)
	}
	st.missingKeys = still
}

// holdDeletes holds the bucket's deletes when the share of known keys
// missing is implausible and no operator confirmed them.
func (s *Scanner) holdDeletes(bucket string, st *ScanStats) (bool, error) {
	var h Hold
	held, err := s.Store.GetMeta(holdKey(bucket), &h)
	if err != nil {
		return false, err
	}
	frac := float64(st.Missing) / float64(max(st.Known, 1))
	if frac <= s.MaxDeleteFraction || (held && h.Confirmed) {
		return false, nil
	}
	st.Held = true
	if !held {
		h = Hold{Since: time.Now().UTC()}
	}
	h.Missing, h.Known, h.Confirmed = st.Missing, st.Known, false
	if err := s.Store.PutMeta(holdKey(bucket), &h); err != nil {
		return true, err
	}
	s.P.setHeld(bucket, true)
	s.setStatus(bucket, func(b *BucketStatus) { hh := h; b.Held = &hh })
	s.P.m.HeldBuckets.WithLabelValues(bucket).Set(1)
	s.Log.Error("deletes HELD: too many keys missing from the bucket (wiped, replaced or misconfigured store?); nothing deleted at other sites. "+
		"Confirm with `s3mesh scan confirm-deletes --bucket B` or rebuild the site from its peers",
		"bucket", bucket, "missing", st.Missing, "known", st.Known, "fraction", fmt.Sprintf("%.3f", frac), "max", s.MaxDeleteFraction,
		"missing_keys", st.missingKeys[:min(len(st.missingKeys), 5)])
	return true, nil
}

// deletesPass (pass 2) publishes the deletes; Reconcile HEADs each key
// again first.
func (s *Scanner) deletesPass(ctx context.Context, bucket string, st *ScanStats) error {
	s.P.setHeld(bucket, false)
	return s.mergePass(ctx, bucket, "", func(s3io.ListEntry, state.Entry, bool) {}, func(key string, e state.Entry) {
		if e.Present() || e.Pending != nil {
			s.reconcile(ctx, bucket, key, st, &st.Deleted)
		}
	}, nil)
}

// reconcile reconciles one key for the scan, counting a publish in counter.
func (s *Scanner) reconcile(ctx context.Context, bucket, key string, st *ScanStats, counter *int) {
	res, err := s.P.Reconcile(ctx, bucket, key)
	if err != nil {
		st.Errors++
		s.Log.Warn("scan: reconcile failed", "bucket", bucket, "key", key, "err", err)
	} else if res == Published {
		(*counter)++
	}
}

// release clears a hold after a scan that published its deletes or found
// nothing missing.
func (s *Scanner) release(bucket string, st ScanStats) error {
	s.P.setHeld(bucket, false)
	s.P.eventDeletes.reset(bucket)
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

// mergePage merges one page of the listing (keys after prev) with the state
// entries in its key range, read in one pass: onListed gets each listed
// object with its entry (ok false if the state has none), onMissing each
// entry whose key was not listed. The callbacks run after the state
// iterator is closed (onListed may reconcile, which writes the state).
func (s *Scanner) mergePage(bucket, prev string, page []s3io.ListEntry, onListed func(s3io.ListEntry, state.Entry, bool), onMissing func(string, state.Entry)) error {
	type missing struct {
		key string
		e   state.Entry
	}
	var gone []missing
	entries := make([]*state.Entry, len(page))
	i := 0
	err := s.Store.ScanRange(bucket, prev, page[len(page)-1].Key, func(key string, e state.Entry) error {
		for i < len(page) && page[i].Key < key {
			i++
		}
		if i < len(page) && page[i].Key == key {
			entries[i] = &e
			return nil
		}
		gone = append(gone, missing{key, e})
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range gone {
		onMissing(m.key, m.e)
	}
	for i, le := range page {
		if e := entries[i]; e != nil {
			onListed(le, *e, true)
		} else {
			onListed(le, state.Entry{}, false)
		}
	}
	return nil
}

// mergePass walks the listing of bucket after startAfter page by page and
// the state alongside it: onListed for each listed object, onMissing for
// each state entry whose key was not listed, saved(after) after each page.
func (s *Scanner) mergePass(ctx context.Context, bucket, startAfter string, onListed func(s3io.ListEntry, state.Entry, bool),
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
		if err := s.mergePage(bucket, prev, page, onListed, onMissing); err != nil {
			return err
		}
		prev, page = page[len(page)-1].Key, page[:0]
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
	return e.Collectable(time.Now().UnixMilli(), s.Retention.Milliseconds())
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
