package producer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// ObjectStore is what the producer needs from the site's S3.
type ObjectStore interface {
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error)
	// Peek is a GET of at most max bytes: the info, and the body when the
	// object is no larger (see s3io.Client.Peek).
	Peek(ctx context.Context, bucket, key string, max int64) (s3io.ObjectInfo, []byte, error)
	BucketExists(ctx context.Context, bucket string) (bool, error)
}

// PartLister is an ObjectStore that can tell a multipart object's part
// sizes (s3io.Client.PartSizes): records of such objects then carry their
// part layout, and peers can check the bytes from any site that holds them.
type PartLister interface {
	PartSizes(ctx context.Context, bucket, key, etag string, n int) ([]int64, error)
}

// Publisher publishes a change record durably (returns once JetStream has
// stored it). msgID is the record's version id, used for deduplication.
type Publisher interface {
	PublishRecord(ctx context.Context, partition int, data []byte, msgID string) error
}

// Config is the producer's part of the site configuration.
type Config struct {
	Site            string
	Buckets         []string
	InlineThreshold int64
	Partitions      int
	Policies        map[string]schema.Policy // per bucket; missing = lww
	// ListedAlias names the key class whose stand-in key holds when the
	// local store lists such keys under a name nobody wrote
	// (s3io.Capabilities.ListedAlias; nil or "": none). A key the state
	// does not know that is such a name is the store's doing, a local
	// fault: it is logged and counted (s3mesh_reconciles_total
	// {result="store-alias"}), never published as a new key.
	ListedAlias func(key string) string
	// Unrepresentable names the key class the local store cannot hold
	// under its exact name (s3io.Capabilities.Unrepresentable; nil or "":
	// none). Such a key that a HEAD no longer finds (and no delete event
	// named) is not deleted: the store keeps it under another name.
	Unrepresentable func(key string) string
	Ignore          []*regexp.Regexp // keys never replicated (a store's temporary files)
	// AbsentConfirm is how long to wait before a second look at a key the
	// state holds but the store shows absent, when no delete event says
	// so (0: no second look). The agent uses DefaultAbsentConfirm.
	AbsentConfirm time.Duration
	Now           func() time.Time // wall clock
	// Skew shifts every origin time this site stamps (test hook modelling a
	// site whose clocks run ahead or behind).
	Skew time.Duration
	// CounterFloor is the current incarnation's lifecycle.Machine.Floor.
	CounterFloor uint64
	// SigningKey is the site's record signing key (config signing.key):
	// every record is signed with it, once, before it is published.
	SigningKey ed25519.PrivateKey
	// Modes are the buckets' modes at this site (missing: active): a
	// bucket in mode replica or archive publishes nothing, its local
	// writes are drift (lifecycle.Observe.SiteMode).
	Modes map[string]lifecycle.Mode
	// Filters are the buckets' prefix filters (missing: every key): a key
	// outside is never published, and every record of a filtered bucket
	// carries the filter's digest (schema.FilterSchema).
	Filters map[string]schema.Filter
}

// Result says what Reconcile found (see lifecycle.Result).
type Result = lifecycle.Result

// Results of Reconcile.
const (
	Unchanged     = lifecycle.Unchanged     // the site holds what the state says: the hint named nothing new
	Published     = lifecycle.Published     // a new change record was published
	Replica       = lifecycle.Replica       // the object is a replica write of s3mesh (no echo)
	NotReplicated = lifecycle.NotReplicated // the bucket is not replicated
	Held          = lifecycle.Held          // a delete was not published: the bucket's deletes are held
)

// DefaultAbsentConfirm is the agent's Config.AbsentConfirm: long enough for
// a non-atomic overwrite to finish, short against a scan or poll interval.
const DefaultAbsentConfirm = 250 * time.Millisecond

// ErrNoBucket means the bucket itself is gone from the store: nothing in it
// is treated as deleted.
var ErrNoBucket = lifecycle.ErrNoBucket

// Producer turns confirmed local changes into change records.
type Producer struct {
	cfg     Config
	core    lifecycle.Machine
	store   *state.Store
	s3      ObjectStore
	pub     Publisher
	log     *slog.Logger
	buckets map[string]bool
	m       *metrics.Metrics
	Hooks   Hooks

	echoes  *echoes           // replica writes whose storage events are expected
	digests map[string]string // of cfg.Filters, per bucket

	heldMu sync.Mutex
	held   map[string]bool // buckets whose deletes the scanner holds
	// eventDeletes holds a bucket whose delete events outrun its delete
	// fraction (the Scanner sets it up).
	eventDeletes eventDeletes
}

func (p *Producer) setHeld(bucket string, on bool) {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	if p.held == nil {
		p.held = map[string]bool{}
	}
	p.held[bucket] = on
}

func (p *Producer) isHeld(bucket string) bool {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	return p.held[bucket]
}

// Hooks let tests stop the producer at a precise point (crash injection).
type Hooks struct {
	AfterPublish func(bucket, key string) // between publish and state commit
}

// New returns a producer.
func New(cfg Config, store *state.Store, s3 ObjectStore, pub Publisher, m *metrics.Metrics, log *slog.Logger) *Producer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Partitions < 1 {
		cfg.Partitions = 1
	}
	b := make(map[string]bool, len(cfg.Buckets))
	for _, n := range cfg.Buckets {
		b[n] = true
	}
	if m == nil {
		m = metrics.New()
	}
	core := lifecycle.Machine{Site: cfg.Site, InlineThreshold: cfg.InlineThreshold, SkewMillis: cfg.Skew.Milliseconds(), Floor: cfg.CounterFloor}
	digests := map[string]string{}
	for n, f := range cfg.Filters {
		digests[n] = f.Digest()
	}
	return &Producer{cfg: cfg, core: core, store: store, s3: s3, pub: pub, log: log, buckets: b, m: m, echoes: newEchoes(cfg.Now), digests: digests}
}

// Ignored reports whether key matches one of the ignore patterns.
func (p *Producer) Ignored(key string) bool {
	for _, re := range p.cfg.Ignore {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

// Replicated reports whether bucket is replicated.
func (p *Producer) Replicated(bucket string) bool { return p.buckets[bucket] }

// Skips reports whether bucket/key is never published: an ignored key, or
// one outside the bucket's prefix filter.
func (p *Producer) Skips(bucket, key string) bool {
	return p.Ignored(key) || !p.cfg.Filters[bucket].Match(key)
}

// Reconcile confirms a hint that bucket/key may have changed locally and, if
// the site now holds a version the state doesn't know, publishes a change
// record for it. It is safe to call any number of times (idempotent).
func (p *Producer) Reconcile(ctx context.Context, bucket, key string) (Result, error) {
	return p.reconcile(ctx, Hint{Bucket: bucket, Key: key}, false)
}

// ReconcileDeleteEvent is Reconcile for a hint that is a delete event: a user
// deleted through the S3 API, so the delete is published even while the
// scanner holds the bucket's deletes (a wiped store sends no events).
func (p *Producer) ReconcileDeleteEvent(ctx context.Context, bucket, key string) (Result, error) {
	return p.reconcile(ctx, Hint{Bucket: bucket, Key: key, Op: "delete"}, true)
}

// ReconcileEvent is Reconcile for a storage event's hint. What the event
// says beyond the key is used to save requests, never trusted for content:
// the echo of this site's own replica write (same key and ETag, see
// ExpectEcho) is recognised without asking the store; for an object the
// event says is small, one GET (Peek) reads its info and body together
// instead of a HEAD and then a GET.
func (p *Producer) ReconcileEvent(ctx context.Context, h Hint) (Result, error) {
	return p.reconcile(ctx, h, h.Op == "delete")
}

// ExpectEcho notes that this site's applier just wrote etag ("" for a
// delete) at bucket/key as a replica, so the storage event that write
// causes needs no HEAD. The caller holds the key's lock, so the event's
// reconcile (which takes it too) sees the expectation.
func (p *Producer) ExpectEcho(bucket, key, etag string) { p.echoes.expect(bucket, key, etag) }

func (p *Producer) reconcile(ctx context.Context, h Hint, deleteEvent bool) (Result, error) {
	if !p.buckets[h.Bucket] || p.Skips(h.Bucket, h.Key) {
		return NotReplicated, nil
	}
	for attempt := 0; ; attempt++ {
		res, err := p.reconcileOnce(ctx, lifecycle.Key{Bucket: h.Bucket, Key: h.Key}, h, deleteEvent)
		if errors.Is(err, errChanged) && attempt < 5 {
			h.Size = 0 // read again with a HEAD
			continue
		}
		if err == nil {
			p.m.Reconciles.WithLabelValues(res.String()).Inc()
		}
		if err == nil && res == lifecycle.Drift {
			p.m.Topo.NoteDrift(h.Bucket, h.Key, p.cfg.Now())
		}
		return res, err
	}
}

func (p *Producer) reconcileOnce(ctx context.Context, k lifecycle.Key, h Hint, deleteEvent bool) (Result, error) {
	unlock := p.store.Lock(k.Bucket, k.Key)
	defer unlock()
	e, err := p.load(ctx, k)
	if err != nil {
		return Unchanged, err
	}
	if h.Op != "" && p.isEcho(e, h) {
		return Replica, nil
	}
	if p.cfg.ListedAlias != nil && e.Held.ID == "" && e.Pending == nil {
		if class := p.cfg.ListedAlias(k.Key); class != "" {
			p.m.Reconciles.WithLabelValues("store-alias").Inc()
			p.log.Warn("the store shows a key under a name nobody wrote (it cannot hold keys with "+class+" and lists them so): "+
				"a local fault of this site, not published", "bucket", k.Bucket, "key", fmt.Sprintf("%q", k.Key))
			return Unchanged, nil
		}
	}
	obs, ctx, err := p.observeHint(ctx, k, e, h)
	// A key a store shows half-rewritten is looked at again a moment later:
	// until it has an ETag (a few times, waiting longer each time), and once
	// if (then) absent. An object that never shows one is recorded as it is.
	if err == nil {
		obs, err = p.untilETag(ctx, k, e, obs)
	}
	if err == nil && p.cfg.AbsentConfirm > 0 && !obs.Object.Exists && halfSeen(obs.Object, e, deleteEvent) {
		obs, err = p.lookAgain(ctx, k, e, p.cfg.AbsentConfirm)
	}
	if err != nil {
		return Unchanged, fmt.Errorf("reconcile %s/%s: %w", k.Bucket, k.Key, err)
	}
	obs.DeleteEvent = deleteEvent
	if !obs.Object.Exists && e.Present() && !deleteEvent && p.cfg.Unrepresentable != nil {
		if class := p.cfg.Unrepresentable(k.Key); class != "" {
			p.m.Reconciles.WithLabelValues("store-alias").Inc()
			p.log.Warn("a key the store cannot hold as written (it keeps keys with "+class+" under another name) is not found by its name: "+
				"a local fault of this site, not a delete", "bucket", k.Bucket, "key", fmt.Sprintf("%q", k.Key))
			return Unchanged, nil
		}
	}
	st, err := p.drive(ctx, k, e, obs)
	if err == nil && st.Result == Published && !obs.Object.Exists && deleteEvent {
		if hold, n, limit := p.eventDeletes.note(k.Bucket, time.Now()); hold && !p.isHeld(k.Bucket) {
			p.setHeld(k.Bucket, true)
			p.m.HeldBuckets.WithLabelValues(k.Bucket).Set(1)
			p.log.Error("deletes HELD: too many delete events for the bucket; the next deletes are not published to other sites "+
				"until the next scan judges the bucket (it holds them while too many keys are missing: confirm with "+
				"`s3mesh scan confirm-deletes --bucket B`)", "bucket", k.Bucket, "deletes", n, "window", EventDeleteWindow, "limit", limit)
		}
	}
	if err == nil && st.Result == Published && !obs.Object.Exists && !deleteEvent {
		// A delete found by looking (a poll, a scan, an overwrite's event
		// that found nothing), not told by a delete event, is the one a
		// store can fake (rclone serve s3 shows a key absent for a moment
		// while it overwrites it): say how it was found.
		p.log.Info("local delete found by looking", "bucket", k.Bucket, "key", k.Key, "hint", h.Op,
			"held_etag", e.LocalETag, "second_look", p.cfg.AbsentConfirm > 0)
	}
	return st.Result, err
}

// halfSeen reports whether o may be a moment of a local overwrite rather
// than its result, so that the producer looks again before recording it. A
// store whose overwrites are not atomic (rclone serve s3: the old file is
// deleted, the new one renamed in, its hash and metadata attached after)
// shows such a key as absent for an instant, then present without an ETag
// (every finished S3 object has one). A delete recorded from the first
// would remove a live object at every other site until the rewrite's
// record arrives; a version recorded from the second has no ETag: no peer
// can fetch or check its bytes, and it matches no write. A key absent by a
// delete event of its own, or never present, is taken as it is.
func halfSeen(o lifecycle.Object, e state.Entry, deleteEvent bool) bool {
	if o.Exists {
		return o.ETag == ""
	}
	return !deleteEvent && e.Present()
}

// NoETagLooks is how many more times the producer looks at an object the
// store shows without an ETag, waiting Config.AbsentConfirm, then twice as
// long each time (250 ms, 0.5 s, 1 s, 2 s: 3.75 s in all for the agent).
// Measured on rclone serve s3 v1.76.0 under concurrent overwrites on the
// 2-core lab machine, such a moment lasted up to ~100 ms, and in the mixed
// lab under the fault workloads longer than the single 250 ms look that
// came before.
const NoETagLooks = 4

// noETagForGood logs an object the store still shows without an ETag after
// every look. It is recorded as it is (a version without an ETag): rclone
// serve s3 keeps showing some objects that way (seen in the mixed lab for
// minutes, on an object no one was writing), and such an object takes no
// conditional write either (If-Match needs an ETag), so leaving it
// unrecorded wedged every record of the key behind a local change that
// could never be recorded. Recorded without an ETag, a replica write
// replaces it unconditionally, as before the looks (docs/stores.md).
func (p *Producer) noETagForGood(k lifecycle.Key) {
	p.log.Warn("the store keeps showing the object without an ETag; recorded without one", "bucket", k.Bucket, "key", k.Key,
		"looks", 1+NoETagLooks)
}

// untilETag looks at k again while the store shows it present without an
// ETag, at most NoETagLooks times with growing waits, and returns the last
// observation (which may be absent, or still without an ETag: then logged,
// see noETagForGood).
func (p *Producer) untilETag(ctx context.Context, k lifecycle.Key, e state.Entry, obs lifecycle.Observe) (lifecycle.Observe, error) {
	wait := p.cfg.AbsentConfirm
	for i := 0; wait > 0 && i < NoETagLooks && obs.Object.Exists && halfSeen(obs.Object, e, false); i++ {
		var err error
		if obs, err = p.lookAgain(ctx, k, e, wait); err != nil {
			return obs, err
		}
		wait *= 2
	}
	if obs.Object.Exists && obs.Object.ETag == "" {
		p.noETagForGood(k)
	}
	return obs, nil
}

// lookAgain observes k again after wait (see halfSeen).
func (p *Producer) lookAgain(ctx context.Context, k lifecycle.Key, e state.Entry, wait time.Duration) (lifecycle.Observe, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return lifecycle.Observe{}, ctx.Err()
	case <-t.C:
	}
	return p.observe(ctx, k, e)
}

// isEcho reports whether event hint h is the echo of the applier's last
// replica write of the key, which the state e (read under the key's lock)
// records as what the site holds.
func (p *Producer) isEcho(e state.Entry, h Hint) bool {
	switch {
	case e.Outstanding():
		return false
	case h.Op == "put" && h.ETag != "" && e.Present() && e.LocalETag == h.ETag:
		return p.echoes.absorb(h.Bucket, h.Key, h.ETag)
	case h.Op == "delete" && !e.Present() && e.Held.ID != "":
		return p.echoes.absorb(h.Bucket, h.Key, "")
	}
	return false
}

// observeHint is observe with one GET instead of a HEAD when the event says
// the object is small enough to travel inline: the body read comes back
// in the returned context for the inline read of this reconcile.
func (p *Producer) observeHint(ctx context.Context, k lifecycle.Key, e state.Entry, h Hint) (lifecycle.Observe, context.Context, error) {
	if h.Op != "put" || h.Size <= 0 || h.Size > p.cfg.InlineThreshold {
		obs, err := p.observe(ctx, k, e)
		return obs, ctx, err
	}
	info, body, err := p.s3.Peek(ctx, k.Bucket, k.Key, p.cfg.InlineThreshold)
	if err != nil {
		return lifecycle.Observe{}, ctx, err
	}
	if !info.Exists {
		obs, err := p.observe(ctx, k, e) // absent: observe checks the bucket too
		return obs, ctx, err
	}
	if body != nil {
		ctx = withPeek(ctx, info.ETag, body)
	}
	return p.observation(k, info), ctx, nil
}

// observation is what the state machine is fed for what the store showed.
func (p *Producer) observation(k lifecycle.Key, info s3io.ObjectInfo) lifecycle.Observe {
	return lifecycle.Observe{Object: ObjectOf(info), Policy: p.cfg.Policies[k.Bucket], DeletesHeld: p.isHeld(k.Bucket), SiteMode: p.cfg.Modes[k.Bucket]}
}

// Resolve settles a conflict by publishing a new local version of
// bucket/key that dominates both the held version and the clock over: write
// (if not nil) puts the chosen content into the local store, and whatever
// the store then holds is published as a new version whose clock includes
// over, so every site converges on it.
func (p *Producer) Resolve(ctx context.Context, bucket, key string, over schema.Clock, write func(ctx context.Context, e *state.Entry) error) (schema.Version, error) {
	k := lifecycle.Key{Bucket: bucket, Key: key}
	unlock := p.store.Lock(bucket, key)
	defer unlock()
	e, err := p.load(ctx, k)
	if err != nil {
		return schema.Version{}, err
	}
	if write != nil {
		if err := write(ctx, &e); err != nil {
			return schema.Version{}, fmt.Errorf("resolve %s/%s: %w", bucket, key, err)
		}
	}
	obs, err := p.observe(ctx, k, e)
	if err == nil {
		obs, err = p.untilETag(ctx, k, e, obs)
	}
	if err != nil {
		return schema.Version{}, fmt.Errorf("resolve %s/%s: %w", bucket, key, err)
	}
	obs.Force, obs.Over = true, over
	st, err := p.drive(ctx, k, e, obs)
	if err != nil {
		return schema.Version{}, fmt.Errorf("resolve %s/%s: %w", bucket, key, err)
	}
	return st.Entry.Held, nil
}

// RecoverLocked settles an intent a crash (or a failed effect) left in e:
// a pending record is published again, an apply intent is checked against
// the store. The caller holds the key's lock; e is updated in place.
func (p *Producer) RecoverLocked(ctx context.Context, bucket, key string, e *state.Entry) error {
	// An entry holds at most one intent in practice (each executor recovers
	// before it makes one), but recovering until none is left costs nothing.
	for range 2 {
		if !e.Outstanding() {
			return nil
		}
		st, err := p.drive(ctx, lifecycle.Key{Bucket: bucket, Key: key}, *e, lifecycle.Recover{})
		*e = st.Entry
		if err != nil {
			return err
		}
	}
	if e.Outstanding() {
		return fmt.Errorf("recover %s/%s: %w", bucket, key, lifecycle.ErrOutstanding)
	}
	return nil
}

// load reads the key's entry and settles any outstanding intent. The caller
// holds the key's lock.
func (p *Producer) load(ctx context.Context, k lifecycle.Key) (state.Entry, error) {
	e, _, err := p.store.Get(k.Bucket, k.Key)
	if err != nil {
		return e, err
	}
	return e, p.RecoverLocked(ctx, k.Bucket, k.Key, &e)
}

// observe HEADs the key; when it is absent but the entry says present, it
// also checks that the bucket itself still exists.
func (p *Producer) observe(ctx context.Context, k lifecycle.Key, e state.Entry) (lifecycle.Observe, error) {
	info, err := p.s3.Head(ctx, k.Bucket, k.Key)
	if err != nil {
		return lifecycle.Observe{}, err
	}
	obs := p.observation(k, info)
	if !info.Exists && e.Stored() {
		ok, err := p.s3.BucketExists(ctx, k.Bucket)
		if err != nil {
			return obs, err
		}
		obs.BucketGone = !ok
	}
	return obs, nil
}
