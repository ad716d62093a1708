package consumer

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/state"
)

// DeleteGuard holds a peer's mass deletes at this site. Per bucket and per
// peer it counts the peer's deletes applied here within Window; a delete
// that would take that count over Fraction of the bucket's keys at this
// site (and over Min, so a small bucket is not held for a few deletes) is
// held instead of applied (lifecycle.Hold), and so is every further delete
// of that peer in that bucket until an operator releases or discards the
// held ones (Applier.Release, Applier.DropHeldDelete): a mass delete does
// not trickle through. The peer's puts keep flowing.
type DeleteGuard struct {
	Fraction float64
	Window   time.Duration
	Min      int
	Store    *state.Store // counts the bucket's keys; keeps the held deletes
	Log      *slog.Logger
	M        *metrics.Metrics

	mu    sync.Mutex
	times map[peerBucket][]time.Time // deletes applied (or being applied) within the window
	held  map[peerBucket]int         // held deletes, per peer and bucket
	since map[peerBucket]time.Time   // when the hold started
	keys  map[string]keyCount        // keys per bucket, counted from the state
}

type peerBucket struct{ peer, bucket string }

type keyCount struct {
	n  int // keys before the window's deletes: present then, plus those deleted in the window
	at time.Time
}

// keysTTL is how long a bucket's key count is reused.
const keysTTL = time.Minute

// Load counts the held deletes the state keeps (after a restart, the holds
// go on).
func (g *DeleteGuard) Load() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	return g.Store.ScanHeld("", "", func(h state.HeldDelete) error {
		pb := peerBucket{h.Peer, h.Record.Bucket}
		g.held[pb]++
		if s := time.UnixMilli(h.Since); g.since[pb].IsZero() || s.Before(g.since[pb]) {
			g.since[pb] = s
		}
		g.gauge(pb)
		return nil
	})
}

func (g *DeleteGuard) init() {
	if g.times == nil {
		g.times, g.held, g.since, g.keys = map[peerBucket][]time.Time{}, map[peerBucket]int{}, map[peerBucket]time.Time{}, map[string]keyCount{}
	}
}

// admit decides whether peer's delete in bucket is held, at now. If not, it
// is counted at once (parallel appliers cannot all slip under the limit);
// the caller calls undo when it turned out to delete nothing.
func (g *DeleteGuard) admit(peer, bucket string, now time.Time) (hold bool, undo func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	pb := peerBucket{peer, bucket}
	if g.held[pb] > 0 {
		return true, nil
	}
	ts := g.window(pb, now)
	if len(ts)+1 > g.Min {
		if kc, ok := g.keys[bucket]; !ok || now.Sub(kc.at) > keysTTL {
			// Counted without the lock: other appliers go on meanwhile.
			g.mu.Unlock()
			n, err := g.countKeys(bucket)
			g.mu.Lock()
			if err != nil {
				// Without a count, judge by Min alone: a failing state
				// holds sooner rather than later.
				g.Log.Warn("delete guard: counting the bucket's keys failed", "bucket", bucket, "err", err)
			}
			ts = g.window(pb, now)
			g.keys[bucket] = keyCount{n: n + len(ts), at: now}
		}
		if n := len(ts) + 1; n > max(g.Min, int(g.Fraction*float64(g.keys[bucket].n))) {
			return true, nil
		}
	}
	g.times[pb] = append(ts, now)
	return false, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		ts := g.times[pb]
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i].Equal(now) {
				g.times[pb] = append(ts[:i:i], ts[i+1:]...)
				return
			}
		}
	}
}

// window drops the deletes of pb counted before the window and returns the
// rest. The caller holds g.mu.
func (g *DeleteGuard) window(pb peerBucket, now time.Time) []time.Time {
	ts := g.times[pb]
	cut := 0
	for cut < len(ts) && now.Sub(ts[cut]) > g.Window {
		cut++
	}
	g.times[pb] = ts[cut:]
	return ts[cut:]
}

// countKeys counts the live keys of bucket in the state. The limit is
// Fraction of the keys the bucket had here before the window's deletes:
// those present when counted plus the deletes counted in the window then;
// the count is reused for keysTTL.
func (g *DeleteGuard) countKeys(bucket string) (int, error) {
	n := 0
	err := g.Store.Scan(bucket, "", func(_ string, e state.Entry) error {
		if e.Present() {
			n++
		}
		return nil
	})
	return n, err
}

// heldOne counts a delete just held; the first of a hold is logged.
func (g *DeleteGuard) heldOne(peer, bucket, key string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	pb := peerBucket{peer, bucket}
	g.held[pb]++
	if g.held[pb] == 1 {
		g.since[pb] = now
		g.Log.Warn("deletes HELD: a peer deleted more of the bucket than deletes.max_fraction within deletes.window; "+
			"its deletes in this bucket are kept here, not applied, until an operator decides "+
			"(`s3mesh deletes list`, `s3mesh deletes release --peer P` or `s3mesh deletes discard --peer P`)",
			"peer", peer, "bucket", bucket, "first_key", key, "window", g.Window, "max_fraction", g.Fraction, "min", g.Min)
	}
	g.gauge(pb)
}

// dropped counts a held delete forgotten (released, refused, superseded).
func (g *DeleteGuard) dropped(peer, bucket string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	pb := peerBucket{peer, bucket}
	if g.held[pb] > 0 {
		g.held[pb]--
	}
	g.gauge(pb)
}

// settled ends the hold of peer in bucket once an operator released or
// discarded its held deletes: the deletes counted so far are forgotten,
// so the next ones are judged afresh.
func (g *DeleteGuard) settled(peer, bucket string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	pb := peerBucket{peer, bucket}
	delete(g.times, pb)
	if g.held[pb] == 0 {
		delete(g.since, pb)
		delete(g.held, pb)
	}
	g.gauge(pb)
}

// anyHeld reports whether any delete is held at all (a cheap check before
// looking for a key's held deletes).
func (g *DeleteGuard) anyHeld() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range g.held {
		if n > 0 {
			return true
		}
	}
	return false
}

func (g *DeleteGuard) gauge(pb peerBucket) {
	if g.M != nil {
		g.M.DeletesHeld.WithLabelValues(pb.peer, pb.bucket).Set(float64(g.held[pb]))
	}
}

// HeldSummary is one peer's held deletes in one bucket, for status.
type HeldSummary struct {
	Peer   string    `json:"peer"`
	Bucket string    `json:"bucket"`
	Count  int       `json:"count"`
	Since  time.Time `json:"since"`
}

// Summary lists the holds in force, by peer and bucket.
func (g *DeleteGuard) Summary() []HeldSummary {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []HeldSummary
	for pb, n := range g.held {
		if n > 0 {
			out = append(out, HeldSummary{Peer: pb.peer, Bucket: pb.bucket, Count: n, Since: g.since[pb].UTC()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Bucket < out[j].Bucket
	})
	return out
}
