package producer

import (
	"context"
	"sync"
	"time"
)

// Echoes remembers the replica writes this site's applier just made, so
// that the storage event each of them causes is recognised without asking
// the store again: a replica write's event names the key and the ETag the
// applier wrote, and the state already says the site holds that version.
// One expected event per write is absorbed; any further event with the
// same key and ETag (a user rewriting the same bytes with other metadata
// right after) is confirmed with the store like every other event.
//
// Only an optimisation: a forgotten expectation (after a restart, or
// expired) costs one HEAD, as before; an absorbed event changes nothing
// the state did not already record.
type echoes struct {
	mu   sync.Mutex
	m    map[echoKey]echo
	ttl  time.Duration
	max  int
	now  func() time.Time
	last time.Time // of the last sweep
}

type echoKey struct{ bucket, key string }

type echo struct {
	etag string // "" for a delete
	at   time.Time
}

func newEchoes(now func() time.Time) *echoes {
	return &echoes{m: map[echoKey]echo{}, ttl: 30 * time.Second, max: 100_000, now: now}
}

// expect notes that the applier wrote etag ("" for a delete) at
// bucket/key. The caller holds the key's lock.
func (x *echoes) expect(bucket, key, etag string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	if len(x.m) >= x.max || now.Sub(x.last) > x.ttl {
		x.last = now
		for k, e := range x.m {
			if now.Sub(e.at) > x.ttl {
				delete(x.m, k)
			}
		}
		if len(x.m) >= x.max {
			return // a flood of writes without events: fall back to HEADs
		}
	}
	x.m[echoKey{bucket, key}] = echo{etag: etag, at: now}
}

// absorb reports whether an event for bucket/key with etag is the echo of
// the applier's last write there, and forgets the expectation if so.
func (x *echoes) absorb(bucket, key, etag string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	k := echoKey{bucket, key}
	e, ok := x.m[k]
	if !ok || e.etag != etag || x.now().Sub(e.at) > x.ttl {
		return false
	}
	delete(x.m, k)
	return true
}

// peeked is a small object's body read with its info in one request
// (s3io.Client.Peek), kept for the inline read of the same reconcile.
type peeked struct {
	etag string
	body []byte
}

type peekKey struct{}

func withPeek(ctx context.Context, etag string, body []byte) context.Context {
	return context.WithValue(ctx, peekKey{}, peeked{etag: etag, body: body})
}

// peekedBody returns the body peeked for etag in this reconcile, if any.
func peekedBody(ctx context.Context, etag string, size int64) ([]byte, bool) {
	p, ok := ctx.Value(peekKey{}).(peeked)
	if !ok || p.etag != etag || int64(len(p.body)) != size {
		return nil, false
	}
	return p.body, true
}
