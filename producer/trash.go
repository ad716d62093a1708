package producer

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TrashStore is what the trash keeper needs of the local store.
type TrashStore interface {
	ListPrefix(ctx context.Context, bucket, prefix string, fn func(s3io.ListEntry) error) error
	Delete(ctx context.Context, bucket, key, ifMatch string) error
	Versioned(ctx context.Context, bucket string) (bool, error)
}

// Trash looks after the site's trash (schema.TrashPrefix in each bucket),
// once per scan of a bucket (Scanner.Trash): it purges the objects older
// than Retention, counts the rest for status and the gauges, and asks the
// store whether it keeps old versions of the bucket itself (then the
// consumer copies nothing: Versioned).
type Trash struct {
	S3        TrashStore
	Retention time.Duration
	Modes     map[string]string // bucket → its trash mode, for status
	M         *metrics.Metrics
	Log       *slog.Logger
	Now       func() time.Time // default time.Now

	mu     sync.Mutex
	status map[string]*TrashStatus
}

// TrashStatus is the trash of one bucket at this site, as of the last pass.
type TrashStatus struct {
	Bucket string `json:"bucket"`
	Mode   string `json:"mode"` // deletes, all or none
	// Versioned: the store keeps old versions of the bucket (bucket
	// versioning Enabled), so nothing is copied to the trash; the old
	// versions are restored with `s3mesh trash restore --version`.
	Versioned bool      `json:"versioned"`
	Objects   int       `json:"objects"`
	Bytes     int64     `json:"bytes"`
	Purged    int       `json:"purged"` // by the last pass
	Checked   time.Time `json:"checked"`
	Error     string    `json:"error,omitempty"`
}

func (t *Trash) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Trash) set(bucket string, f func(*TrashStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == nil {
		t.status = map[string]*TrashStatus{}
	}
	st, ok := t.status[bucket]
	if !ok {
		st = &TrashStatus{Bucket: bucket, Mode: t.Modes[bucket]}
		t.status[bucket] = st
	}
	f(st)
}

// Versioned reports whether the last pass found bucket versioned.
func (t *Trash) Versioned(bucket string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.status[bucket]
	return ok && st.Versioned
}

// Status returns every bucket's trash status, by bucket name.
func (t *Trash) Status() []TrashStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TrashStatus, 0, len(t.status))
	for _, st := range t.status {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
	return out
}

// passEvery is how often Pass looks at a bucket's trash at most: a tenth
// of the retention, and at least once a minute. A site that polls its
// store scans every few seconds; its trash need not be listed as often.
func (t *Trash) passEvery() time.Duration { return min(t.Retention/10, time.Minute) }

// Pass asks whether the store versions bucket, and looks at its trash (at
// most every passEvery): purge, counts. A purge that fails for one object leaves it for the next
// pass.
func (t *Trash) Pass(ctx context.Context, bucket string) error {
	// Versioning is asked at every scan (one small request): a bucket
	// whose versioning an operator just enabled stops being copied soon.
	versioned, verr := t.S3.Versioned(ctx, bucket)
	if verr != nil {
		t.Log.Warn("trash: cannot tell whether the store versions the bucket; copying to the trash", "bucket", bucket, "err", verr)
	}
	t.mu.Lock()
	st, seen := t.status[bucket]
	recent := seen && st.Error == "" && t.now().Sub(st.Checked) < t.passEvery()
	if seen && verr == nil {
		st.Versioned = versioned
	}
	t.mu.Unlock()
	if recent {
		return nil
	}
	now := t.now()
	var objects, purged, failed int
	var bytes int64
	err := t.S3.ListPrefix(ctx, bucket, schema.TrashPrefix, func(le s3io.ListEntry) error {
		if schema.TrashExpired(le.LastModified.UnixMilli(), now.UnixMilli(), t.Retention) {
			if err := t.S3.Delete(ctx, bucket, le.Key, le.ETag); err != nil && s3io.Classify(err) != s3io.NotFound {
				failed++
				t.Log.Warn("trash: purge failed; tried again at the next scan", "bucket", bucket, "key", le.Key, "err", err)
			} else {
				purged++
				return nil
			}
		}
		objects++
		bytes += le.Size
		return nil
	})
	t.set(bucket, func(st *TrashStatus) {
		if verr == nil {
			st.Versioned = versioned
		}
		st.Checked = now.UTC()
		st.Error = ""
		if err != nil {
			st.Error = err.Error()
			return
		}
		st.Objects, st.Bytes, st.Purged = objects, bytes, purged
	})
	if err != nil {
		return fmt.Errorf("trash of %s: %w", bucket, err)
	}
	if t.M != nil {
		t.M.TrashObjects.WithLabelValues(bucket).Set(float64(objects))
		t.M.TrashBytes.WithLabelValues(bucket).Set(float64(bytes))
	}
	if purged > 0 || failed > 0 {
		t.Log.Info("trash: purged what is past the retention", "bucket", bucket, "purged", purged, "failed", failed,
			"kept", objects, "kept_bytes", bytes, "retention", t.Retention)
	}
	return nil
}
