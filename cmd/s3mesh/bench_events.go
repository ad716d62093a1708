package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/producer"
)

// How the bench tells when an object has arrived at a site without polling
// the stores: every lab site's versitygw publishes an S3 event notification
// for every write into its broker, on broker.EventsSubject(site, "nats").
// EVENTS_<site> captures them as a work queue whose only consumer is the
// agent (a work-queue stream admits no second consumer), so the bench
// subscribes to the subject itself with core NATS, logged in as the site,
// and takes the time each event reaches it. That is within a fraction of a
// millisecond of the store acknowledging the write (versitygw publishes
// after the object is in place), a little later when the machine is busy:
// the error only ever adds to s3mesh's figures.
//
// versitygw names some events after another object written at the same
// time (1–5% under concurrent PUTs, seen here), so some keys never get an
// event of their own. Those are confirmed with one HEAD each once the
// destination's agent says it applied everything (its
// s3mesh_records_applied_total) or events stop coming, and are counted as
// "arrived, time unmeasured"; the figure's stop time is then the time the
// HEAD showed them present.

// arrivals follows one site's storage events for keys under prefix.
type arrivals struct {
	site, bucket, prefix string
	nc                   *nats.Conn
	sub                  *nats.Subscription
	keys                 producer.KeyEncoding               // how the site's store encodes keys in its events
	head                 func(context.Context, string) bool // a site without NATS events: is the key there?
	stop                 chan struct{}                      // closed by close: the HEAD pollers end

	mu        sync.Mutex
	at        map[string]time.Time // first ObjectCreated event per key
	confirmed map[string]time.Time // keys without an event of their own, seen by HEAD
	last      time.Time            // last event for a key under prefix
	events    int                  // ObjectCreated events naming a key under prefix
	waiters   map[string]chan struct{}
}

// watch subscribes to site's storage events; call close when done.
func (e *benchEnv) watch(site, bucket, prefix string) (*arrivals, error) {
	si := e.site(site)
	nc, err := si.ConnectNATS(nats.Name("s3mesh-bench-events-"+site), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s's broker: %w", site, err)
	}
	enc := producer.KeysRaw // versitygw sends raw keys
	if si.Store == lab.StoreMinio {
		enc = producer.KeysURL // MinIO URL-encodes them, as S3 does
	}
	a := &arrivals{site: site, bucket: bucket, prefix: prefix, nc: nc, keys: enc,
		at: map[string]time.Time{}, confirmed: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
	if si.Events != lab.EventsNATS || si.Store != lab.StoreVersity {
		// The store sends its broker no events (polled: SeaweedFS, rclone
		// serve s3; or a webhook to the agent), or sends them late (MinIO
		// queues its NATS events and delivers them up to 3 s after the
		// write; measured: a replica readable 0.4 s after the origin's
		// PUT, its event 3 s after): expect finds each key by HEAD, every
		// headEvery, and its arrival is the first HEAD that finds it
		// (readable at the site, to within headEvery).
		c := e.s3[site]
		a.head = func(ctx context.Context, key string) bool {
			info, err := c.Head(ctx, bucket, key)
			return err == nil && info.Exists
		}
	}
	a.stop = make(chan struct{})
	sub, err := nc.Subscribe(broker.EventsSubject(site, "nats"), a.handle)
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	a.sub = sub
	return a, nil
}

func (a *arrivals) handle(m *nats.Msg) {
	now := time.Now()
	hints, err := producer.ParseEvent(m.Data, a.keys) // the agent's own parser
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range hints {
		if h.Bucket != a.bucket || h.Op != "put" || !strings.HasPrefix(h.Key, a.prefix) {
			continue
		}
		k := h.Key
		a.events++
		a.last = now
		if _, ok := a.at[k]; !ok {
			a.at[k] = now
			if ch, ok := a.waiters[k]; ok {
				close(ch)
				delete(a.waiters, k)
			}
		}
	}
}

// headEvery is how often expect HEADs a key at a site without NATS events.
const headEvery = 10 * time.Millisecond

func (a *arrivals) close() {
	close(a.stop)
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
	}
	a.nc.Close()
}

// expect returns a channel closed when key's first event arrives.
func (a *arrivals) expect(key string) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	if _, ok := a.at[key]; ok {
		close(ch)
		return ch
	}
	a.waiters[key] = ch
	if a.head != nil {
		go a.pollHead(key)
	}
	return ch
}

// pollHead HEADs key until it is there (or the watch ends) and records
// that time as its arrival.
func (a *arrivals) pollHead(key string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(headEvery)
	defer t.Stop()
	for !a.head(ctx, key) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[key]; !ok {
		a.at[key] = now
		a.last = now
		if ch, ok := a.waiters[key]; ok {
			close(ch)
			delete(a.waiters, key)
		}
	}
}

// when returns key's arrival: its event's time, or (measured false) the
// time a HEAD confirmed it; ok false if neither.
func (a *arrivals) when(key string) (t time.Time, measured, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.at[key]; ok {
		return t, true, true
	}
	if t, ok := a.confirmed[key]; ok {
		return t, false, true
	}
	return time.Time{}, false, false
}

func (a *arrivals) missing(keys []string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, k := range keys {
		if _, ok := a.at[k]; ok {
			continue
		}
		if _, ok := a.confirmed[k]; ok {
			continue
		}
		out = append(out, k)
	}
	return out
}

// arrived counts the keys under prefix seen so far (by event or HEAD).
func (a *arrivals) arrived() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at) + len(a.confirmed)
}

func (a *arrivals) lastEvent() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// arrivalResult summarises one destination after waitArrivals.
type arrivalResult struct {
	site       string
	first      time.Time // the first copy's event (zero if none had one)
	last       time.Time // the last copy's arrival (event or confirmation)
	unmeasured int       // arrived, confirmed by HEAD, time unmeasured
	events     int       // ObjectCreated events naming keys under the prefix
}

func (r arrivalResult) String() string {
	return fmt.Sprintf("%s: %d without an event of their own (confirmed by HEAD, time unmeasured), %d events", r.site, r.unmeasured, r.events)
}

// waitArrivals waits until every key (of size bytes) has arrived at every
// watcher's site. applied0 holds each destination's
// s3mesh_records_applied_total{peer=origin,outcome="apply"} from before the
// writes: once it has grown by len(keys), or no event came for stall, the
// keys still without an event are confirmed with one HEAD each.
func (e *benchEnv) waitArrivals(ctx context.Context, origin string, ws []*arrivals, keys []string, size int64, applied0 map[string]float64, timeout time.Duration) ([]arrivalResult, error) {
	deadline := time.Now().Add(timeout)
	const stall = 2 * time.Second
	start := time.Now()
	lastHead := map[string]time.Time{}
	for {
		done := true
		for _, w := range ws {
			// A site watched by HEAD (w.head) has no events to count: it is
			// looked at once its agent has applied them all.
			if w.head == nil && w.arrived() < len(keys)-max(3, len(keys)/10) {
				done = false
				continue // far from done: no need to look closer
			}
			miss := w.missing(keys)
			if len(miss) == 0 {
				continue
			}
			done = false
			if w.head == nil && len(miss) > max(3, len(keys)/10) {
				continue
			}
			last := w.lastEvent()
			if last.IsZero() {
				last = start
			}
			appliedAll := false
			if a0, ok := applied0[w.site]; ok {
				appliedAll = e.counter(ctx, w.site, "s3mesh_records_applied_total", `peer="`+origin+`"`, `outcome="apply"`)-a0 >= float64(len(keys))
			}
			if !appliedAll && (w.head != nil || time.Since(last) < stall) {
				continue
			}
			if time.Since(lastHead[w.site]) < 250*time.Millisecond {
				continue
			}
			lastHead[w.site] = time.Now()
			e.confirm(ctx, w, miss, size)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			var parts []string
			for _, w := range ws {
				parts = append(parts, fmt.Sprintf("%s is missing %d of %d", w.site, len(w.missing(keys)), len(keys)))
			}
			return nil, fmt.Errorf("not replicated after %v: %s", timeout, strings.Join(parts, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var out []arrivalResult
	for _, w := range ws {
		r := arrivalResult{site: w.site}
		w.mu.Lock()
		r.events = w.events
		for _, k := range keys {
			t, ok := w.at[k]
			if !ok {
				t = w.confirmed[k]
				r.unmeasured++
			} else if r.first.IsZero() || t.Before(r.first) {
				r.first = t
			}
			if t.After(r.last) {
				r.last = t
			}
		}
		w.mu.Unlock()
		out = append(out, r)
	}
	return out, nil
}

// confirm HEADs keys at w's site and marks those present with size.
func (e *benchEnv) confirm(ctx context.Context, w *arrivals, keys []string, size int64) {
	sort.Strings(keys)
	_ = parallel(ctx, len(keys), 4, func(i int) error {
		info, err := e.s3[w.site].Head(ctx, w.bucket, keys[i])
		if err == nil && info.Exists && (size < 0 || info.Size == size) {
			now := time.Now()
			w.mu.Lock()
			if _, ok := w.at[keys[i]]; !ok {
				w.confirmed[keys[i]] = now
			}
			w.mu.Unlock()
		}
		return nil
	})
}

// appliedNow reads each site's applied counter for records from origin.
func (e *benchEnv) appliedNow(ctx context.Context, origin string, sites []string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range sites {
		if v := e.counter(ctx, s, "s3mesh_records_applied_total", `peer="`+origin+`"`, `outcome="apply"`); v >= 0 {
			out[s] = v
		}
	}
	return out
}

// watchAll watches every site in sites; close them with closeAll.
func (e *benchEnv) watchAll(sites []string, bucket, prefix string) ([]*arrivals, error) {
	var ws []*arrivals
	for _, s := range sites {
		w, err := e.watch(s, bucket, prefix)
		if err != nil {
			closeAll(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func closeAll(ws []*arrivals) {
	for _, w := range ws {
		w.close()
	}
}
