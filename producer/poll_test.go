package producer

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/state"
)

// lockedBucket lets a test change a fakeBucket while the scanner reads it.
type lockedBucket struct {
	mu sync.Mutex
	f  *fakeBucket
}

func (l *lockedBucket) List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error {
	l.mu.Lock()
	keys := append([]string(nil), l.f.keys...)
	l.mu.Unlock()
	g := &fakeBucket{keys: keys, etag: l.f.etag}
	return g.List(ctx, bucket, startAfter, pageSize, fn)
}

func (l *lockedBucket) Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Head(ctx, bucket, key)
}

func (l *lockedBucket) Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Get(ctx, bucket, key, ifMatch)
}

func (l *lockedBucket) Peek(ctx context.Context, bucket, key string, max int64) (s3io.ObjectInfo, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Peek(ctx, bucket, key, max)
}

func (l *lockedBucket) BucketExists(ctx context.Context, bucket string) (bool, error) {
	return true, nil
}

func (l *lockedBucket) set(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.keys = append([]string(nil), keys...)
	sort.Strings(l.f.keys)
}

// TestPollerPublishesChangesOfAStoreWithoutEvents: with no event at all, a
// poll source publishes a new key within its interval, and a deleted one
// through the scanner's delete guard (a mass delete stays held).
func TestPollerPublishesChangesOfAStoreWithoutEvents(t *testing.T) {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fakeBucket{etag: func(k string) string { return "etag-" + k }}
	lb := &lockedBucket{f: f}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	p := New(Config{Site: "a", Buckets: []string{"b"}, InlineThreshold: 0, SigningKey: key}, st, lb, f, metrics.New(), log)
	sc := &Scanner{P: p, S3: lb, Store: st, PageSize: 1000, MaxDeleteFraction: 0.1, Log: log}
	poll := &Poller{Scanner: sc, Interval: 50 * time.Millisecond, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sc.Run(ctx) }()
	go func() { defer wg.Done(); poll.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	waitPublished := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f.published.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d records published, want %d", what, f.published.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The scanner's own scan at start is done and one poll has run: from
	// now on only polls can find anything (no interval, no events).
	deadline := time.Now().Add(10 * time.Second)
	for ps := poll.Status()["b"]; ps.At.IsZero(); ps = poll.Status()["b"] {
		if time.Now().After(deadline) {
			t.Fatal("no poll ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	lb.set("k1")
	waitPublished(1, "a new key")
	if ps := poll.Status()["b"]; ps.Err != "" {
		t.Errorf("poll status %+v", ps)
	}
	// 20 keys, then one deleted: 5 % missing, under the guard's 10 %.
	keys := []string{"k1"}
	for i := 2; i <= 20; i++ {
		keys = append(keys, "k"+string(rune('a'+i)))
	}
	lb.set(keys...)
	waitPublished(20, "19 more keys")
	lb.set(keys[1:]...)
	waitPublished(21, "a delete")
	// Half of them gone at once: held, nothing published.
	lb.set(keys[1:10]...)
	deadline = time.Now().Add(10 * time.Second)
	for {
		held := false
		for _, bs := range sc.Status() {
			held = held || bs.Held != nil
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a mass delete found by polling was not held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.published.Load(); n != 21 {
		t.Errorf("%d records published after the held mass delete, want 21", n)
	}
}
