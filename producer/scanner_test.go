package producer

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// fakeBucket is an in-memory listing and HEAD for the scanner's pure merge
// logic (the integration tests run the scanner against versitygw).
type fakeBucket struct {
	keys      []string // sorted
	etag      func(key string) string
	heads     atomic.Int64
	published atomic.Int64
	lists     []string        // startAfter of each List call
	stopAfter int             // cancel the scan after this many listed keys (0: never)
	unlisted  map[string]bool // keys List leaves out while Head finds them (a lagging listing)
	cancel    context.CancelFunc
}

func (f *fakeBucket) List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error {
	f.lists = append(f.lists, startAfter)
	i := sort.SearchStrings(f.keys, startAfter)
	if i < len(f.keys) && f.keys[i] == startAfter {
		i++
	}
	n := 0
	for ; i < len(f.keys); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.unlisted[f.keys[i]] {
			continue
		}
		if err := fn(s3io.ListEntry{Key: f.keys[i], ETag: f.etag(f.keys[i]), Size: 1}); err != nil {
			return err
		}
		n++
		if f.stopAfter > 0 && n == f.stopAfter && f.cancel != nil {
			f.cancel()
		}
	}
	return nil
}

func (f *fakeBucket) Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error) {
	f.heads.Add(1)
	i := sort.SearchStrings(f.keys, key)
	if i < len(f.keys) && f.keys[i] == key {
		return s3io.ObjectInfo{Key: key, Exists: true, ETag: f.etag(key), Size: 1}, nil
	}
	return s3io.ObjectInfo{Key: key}, nil
}

func (f *fakeBucket) Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error) {
	info, _ := f.Head(ctx, bucket, key)
	f.heads.Add(-1) // a GET, not a HEAD
	if !info.Exists {
		return nil, info, s3io.ErrNotFound
	}
	return io.NopCloser(strings.NewReader("x")), info, nil // every object is one byte
}

func (f *fakeBucket) Peek(ctx context.Context, bucket, key string, max int64) (s3io.ObjectInfo, []byte, error) {
	return s3io.ObjectInfo{}, nil, fmt.Errorf("not in this test")
}

func (f *fakeBucket) BucketExists(ctx context.Context, bucket string) (bool, error) { return true, nil }

func (f *fakeBucket) PublishRecord(ctx context.Context, partition int, data []byte, msgID string) error {
	f.published.Add(1)
	return nil
}

func newScanFixture(t *testing.T, n int) (*Scanner, *fakeBucket, *state.Store) {
	t.Helper()
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fakeBucket{etag: func(k string) string { return "etag-" + k }}
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("obj/%07d", i)
		f.keys = append(f.keys, k)
		v := schema.Version{ID: schema.VersionID("a", "b", k, 1), Origin: "a", Clock: schema.Clock{"a": 1}}
		if err := st.Put("b", k, state.Entry{Clock: v.Clock, Held: v, LocalETag: "etag-" + k, Attrs: schema.Attrs{}.Digest()}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	p := New(Config{Site: "a", Buckets: []string{"b"}, InlineThreshold: 1 << 10, SigningKey: key}, st, f, f, metrics.New(), log)
	return &Scanner{P: p, S3: f, Store: st, PageSize: 1000, MaxDeleteFraction: 0.1, Log: log}, f, st
}

// A scan of 100,000 unchanged objects publishes nothing, HEADs nothing, and
// does not hold the keys in memory.
func TestScanUnchangedBucketPublishesNothing(t *testing.T) {
	const n = 100_000
	s, f, _ := newScanFixture(t, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st.Listed != n || st.Published != 0 || st.Missing != 0 || f.heads.Load() != 0 || f.published.Load() != 0 {
		t.Fatalf("stats %+v, %d HEADs, %d published", st, f.heads.Load(), f.published.Load())
	}
	// 100,000 keys of 11 bytes in a map would retain several MB; the merge
	// keeps one page.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Errorf("heap grew by %d bytes after the scan", grown)
	}
}

// An interrupted scan resumes after the last page it finished.
func TestScanResumesAfterInterruption(t *testing.T) {
	s, f, _ := newScanFixture(t, 5000)
	ctx, cancel := context.WithCancel(context.Background())
	f.stopAfter, f.cancel = 2500, cancel
	if _, err := s.ScanBucket(ctx, "b"); err == nil {
		t.Fatal("interrupted scan reported success")
	}
	f.stopAfter, f.cancel = 0, nil
	st, err := s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lists[len(f.lists)-1]; got != "obj/0001999" {
		t.Fatalf("resumed after %q, want after the last finished page obj/0001999", got)
	}
	if st.Listed != 5000 {
		t.Fatalf("listed %d in total, want 5000 (2000 before the interruption + 3000)", st.Listed)
	}
}

// More than max_delete_fraction of the known keys missing: nothing is
// published and the bucket is held; after a confirmation the next scan
// publishes the deletes and releases it.
func TestScanHoldsMassDeletesUntilConfirmed(t *testing.T) {
	s, f, _ := newScanFixture(t, 100)
	f.keys = f.keys[:80] // 20% vanished
	st, err := s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.Missing != 20 || st.Known != 100 || f.published.Load() != 0 {
		t.Fatalf("stats %+v, %d published", st, f.published.Load())
	}
	if res, err := s.P.Reconcile(context.Background(), "b", "obj/0000099"); err != nil || res != Held {
		t.Fatalf("a delete found by a HEAD while held: %v %v, want held", res, err)
	}
	if err := s.ConfirmDeletes("b"); err != nil {
		t.Fatal(err)
	}
	st, err = s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Held || st.Deleted != 20 || f.published.Load() != 20 {
		t.Fatalf("after confirm: stats %+v, %d published", st, f.published.Load())
	}
	for _, b := range s.Status() {
		if b.Held != nil {
			t.Fatalf("bucket still held: %+v", b.Held)
		}
	}
	// Under the threshold deletes go straight through.
	f.keys = f.keys[:75] // 5 of 80
	if st, err = s.ScanBucket(context.Background(), "b"); err != nil || st.Held || st.Deleted != 5 {
		t.Fatalf("5%% missing: %+v %v", st, err)
	}
}

// A key a lagging listing leaves out (MinIO, just after a write) while the
// store still holds it is neither held for nor published as a delete: the
// scan HEADs the few keys it would hold the bucket for. A key that is
// really gone still holds a small bucket (1 of 8 is over 10%).
func TestScanRechecksKeysTheListingMissed(t *testing.T) {
	s, f, _ := newScanFixture(t, 8)
	f.unlisted = map[string]bool{"obj/0000003": true}
	st, err := s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Held || st.Missing != 0 || st.Deleted != 0 || f.published.Load() != 0 {
		t.Fatalf("a key the listing missed but the store holds: stats %+v, %d published", st, f.published.Load())
	}
	f.unlisted = nil
	f.keys = append(f.keys[:5:5], f.keys[6:]...) // obj/0000005 deleted
	st, err = s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.Missing != 1 || f.published.Load() != 0 {
		t.Fatalf("a key really gone: stats %+v, %d published", st, f.published.Load())
	}
}

// A user's delete the scan sees before its event (MinIO's queued NATS
// target replays every 3 s) does not hold a small bucket: the scan waits
// EventGrace for the few keys it would hold it for, and the delete event
// that lands meanwhile (here: the state entry becomes a tombstone) takes
// the key off the missing list. Without the grace the bucket is held.
func TestScanWaitsForDeleteEventsBeforeHolding(t *testing.T) {
	for _, grace := range []time.Duration{0, 2 * time.Second} {
		s, f, st := newScanFixture(t, 8)
		s.EventGrace = grace
		gone := "obj/0000005"
		f.keys = append(f.keys[:5:5], f.keys[6:]...)
		landed := make(chan error, 1)
		time.AfterFunc(200*time.Millisecond, func() { // the delete event
			e, _, err := st.Get("b", gone)
			if err == nil {
				e.Held.Deleted = true
				err = st.Put("b", gone, e)
			}
			landed <- err
		})
		stats, err := s.ScanBucket(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		if err := <-landed; err != nil {
			t.Fatal(err)
		}
		if held := grace == 0; stats.Held != held || f.published.Load() != 0 {
			t.Fatalf("grace %v: stats %+v, %d published; want held %v", grace, stats, f.published.Load(), held)
		}
	}
}

// Delete events pass the same guard: once more than max_delete_fraction of
// the keys the last scan knew (and at least EventDeletesMin) were deleted
// through events within the window, the next delete events are held; the
// next scan holds the bucket until an operator confirms, then publishes
// the rest. A few deletes (under the threshold) go straight through.
func TestDeleteEventsHeldBeyondFraction(t *testing.T) {
	s, f, _ := newScanFixture(t, 100)
	s.EventDeletesMin = 5
	ctx := context.Background()
	if _, err := s.ScanBucket(ctx, "b"); err != nil { // knows 100 keys
		t.Fatal(err)
	}
	// A user deletes 30 objects through S3; each delete's event comes.
	var res []Result
	for i := 0; i < 30; i++ {
		k := f.keys[len(f.keys)-1]
		f.keys = f.keys[:len(f.keys)-1]
		r, err := s.P.ReconcileDeleteEvent(ctx, "b", k)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	// The limit is max(5, 10% of 100) = 10: the 11th delete trips the
	// guard, the 19 after it are held.
	published := 0
	for i, r := range res {
		switch {
		case i < 11 && r != Published, i >= 11 && r != Held:
			t.Fatalf("delete event %d: %v (all: %v)", i, r, res)
		case r == Published:
			published++
		}
	}
	if int(f.published.Load()) != published {
		t.Fatalf("%d records published for %d deletes", f.published.Load(), published)
	}
	// The scan judges the bucket: 19 of 89 known keys missing, held.
	st, err := s.ScanBucket(ctx, "b")
	if err != nil || !st.Held || st.Missing != 19 {
		t.Fatalf("scan after the event deletes: %+v %v", st, err)
	}
	if err := s.ConfirmDeletes("b"); err != nil {
		t.Fatal(err)
	}
	if st, err = s.ScanBucket(ctx, "b"); err != nil || st.Held || st.Deleted != 19 {
		t.Fatalf("after confirm: %+v %v", st, err)
	}
	// Released: a few more delete events go straight through.
	for i := 0; i < 3; i++ {
		k := f.keys[len(f.keys)-1]
		f.keys = f.keys[:len(f.keys)-1]
		if r, err := s.P.ReconcileDeleteEvent(ctx, "b", k); err != nil || r != Published {
			t.Fatalf("a delete event after the release: %v %v", r, err)
		}
	}
}

// Tombstones stay in the state within the retention (so an old record for
// the key is recognised as stale and never resurrects it) and are collected
// after it; neither case publishes anything.
func TestScanCollectsOnlyExpiredTombstones(t *testing.T) {
	s, f, st := newScanFixture(t, 10)
	s.Retention = time.Hour
	tomb := func(key string, age time.Duration) {
		v := schema.Version{ID: schema.VersionID("b", "b", key, 1), Origin: "b", Clock: schema.Clock{"b": 1}, Deleted: true}
		if err := st.Put("b", key, state.Entry{Clock: v.Clock, Held: v, Updated: time.Now().Add(-age).UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	tomb("gone/recent", 10*time.Minute)
	tomb("gone/old", 2*time.Hour)
	res, err := s.ScanBucket(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if res.Collected != 1 || res.Missing != 0 || f.published.Load() != 0 {
		t.Fatalf("stats %+v, %d published", res, f.published.Load())
	}
	if _, ok, _ := st.Get("b", "gone/recent"); !ok {
		t.Error("a tombstone inside the retention was collected")
	}
	if _, ok, _ := st.Get("b", "gone/old"); ok {
		t.Error("a tombstone past the retention was kept")
	}
	// An old record for the recently deleted key is stale against it.
	e, _, _ := st.Get("b", "gone/recent")
	if d := schema.Decide(e.HeldPtr(), e.Clock, schema.Version{ID: "x", Origin: "b", Clock: schema.Clock{"b": 1}}, schema.Policy{}); d.Outcome != schema.Skip {
		t.Errorf("a redelivered record of the deleted key: %v, want skip", d.Outcome)
	}
}

// ScanNow runs a scan in the scanner's own loop and reports it; a changed
// object is published by it.
func TestScanNow(t *testing.T) {
	s, f, _ := newScanFixture(t, 3000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, _, err := s.ScanNow(ctx, "nope"); err == nil {
		t.Fatal("ScanNow of a bucket that is not replicated succeeded")
	}
	st, took, err := s.ScanNow(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Listed != 3000 || st.Published != 0 || took <= 0 {
		t.Fatalf("scan now: %+v in %v", st, took)
	}
	f.etag = func(k string) string { // one object changed
		if k == "obj/0001234" {
			return "changed"
		}
		return "etag-" + k
	}
	st, _, err = s.ScanNow(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Listed != 3000 || st.Published != 1 || f.published.Load() != 1 {
		t.Fatalf("scan now after a change: %+v, %d published", st, f.published.Load())
	}
}
