package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// ObjectStore is what the producer needs from the site's S3.
type ObjectStore interface {
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error)
	BucketExists(ctx context.Context, bucket string) (bool, error)
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
	Ignore          []*regexp.Regexp         // keys never replicated (a store's temporary files)
	Now             func() time.Time         // wall clock
	// Skew shifts every origin time this site stamps (test hook modelling a
	// site whose clocks run ahead or behind).
	Skew time.Duration
}

// Result says what Reconcile found.
type Result int

// Results of Reconcile.
const (
	Unchanged     Result = iota // the site holds what the state says: the hint named nothing new
	Published                   // a new change record was published
	Replica                     // the object is a replica write of s3mesh (no echo)
	NotReplicated               // the bucket is not replicated
	Held                        // a delete was not published: the bucket's deletes are held
)

func (r Result) String() string {
	return [...]string{"unchanged", "published", "replica", "not-replicated", "held"}[r]
}

// ErrNoBucket means the bucket itself is gone from the store: nothing in it
// is treated as deleted.
var ErrNoBucket = errors.New("bucket does not exist in the local store")

// Producer turns confirmed local changes into change records.
type Producer struct {
	cfg     Config
	store   *state.Store
	s3      ObjectStore
	pub     Publisher
	log     *slog.Logger
	buckets map[string]bool
	m       *metrics.Metrics
	Hooks   Hooks

	heldMu sync.Mutex
	held   map[string]bool // buckets whose deletes the scanner holds
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
	return &Producer{cfg: cfg, store: store, s3: s3, pub: pub, log: log, buckets: b, m: m}
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

// errChanged means the object changed while it was being read; Reconcile
// starts again.
var errChanged = errors.New("object changed while reading")

// Reconcile confirms a hint that bucket/key may have changed locally and, if
// the site now holds a version the state doesn't know, publishes a change
// record for it. It is safe to call any number of times (idempotent).
func (p *Producer) Reconcile(ctx context.Context, bucket, key string) (Result, error) {
	return p.reconcile(ctx, bucket, key, false)
}

// ReconcileDeleteEvent is Reconcile for a hint that is a delete event: a user
// deleted through the S3 API, so the delete is published even while the
// scanner holds the bucket's deletes (a wiped store sends no events).
func (p *Producer) ReconcileDeleteEvent(ctx context.Context, bucket, key string) (Result, error) {
	return p.reconcile(ctx, bucket, key, true)
}

func (p *Producer) reconcile(ctx context.Context, bucket, key string, deleteEvent bool) (Result, error) {
	if !p.buckets[bucket] || p.Ignored(key) {
		return NotReplicated, nil
	}
	for attempt := 0; ; attempt++ {
		res, err := p.reconcileOnce(ctx, bucket, key, deleteEvent)
		if errors.Is(err, errChanged) && attempt < 5 {
			continue
		}
		if err == nil {
			p.m.Reconciles.WithLabelValues(res.String()).Inc()
		}
		return res, err
	}
}

func (p *Producer) reconcileOnce(ctx context.Context, bucket, key string, deleteEvent bool) (Result, error) {
	unlock := p.store.Lock(bucket, key)
	defer unlock()
	e, _, err := p.store.Get(bucket, key)
	if err != nil {
		return Unchanged, err
	}
	if err := p.FlushPendingLocked(ctx, bucket, key, &e); err != nil {
		return Unchanged, err
	}
	if settled, err := p.SettleApplyingLocked(ctx, bucket, key, &e); err != nil {
		return Unchanged, err
	} else if settled {
		return Replica, nil
	}
	info, err := p.s3.Head(ctx, bucket, key)
	if err != nil {
		return Unchanged, fmt.Errorf("reconcile %s/%s: %w", bucket, key, err)
	}
	if !info.Exists {
		if !e.Present() {
			return Unchanged, nil // a delete of a key the site does not hold
		}
		// A HEAD cannot tell a missing key from a missing bucket, and a
		// wiped store must not delete the other sites' data.
		if ok, err := p.s3.BucketExists(ctx, bucket); err != nil {
			return Unchanged, fmt.Errorf("reconcile %s/%s: %w", bucket, key, err)
		} else if !ok {
			return Unchanged, fmt.Errorf("reconcile %s/%s: %w", bucket, key, ErrNoBucket)
		}
		if p.isHeld(bucket) && !deleteEvent {
			p.log.Warn("delete not published: the bucket's deletes are held", "bucket", bucket, "key", key)
			return Held, nil
		}
		return p.publish(ctx, bucket, key, &e, info)
	}
	if v, ok := schema.Replica(bucket, key, info.Meta, info.Size); ok {
		if e.Held.ID != v.ID || e.LocalETag != info.ETag {
			// The state lost track of a replica write (state rebuilt, or a
			// crash after an apply's S3 write): adopt it, publish nothing.
			e.Held, e.LocalETag, e.Applying, e.Attrs = v, info.ETag, nil, attrsOf(info).Digest()
			e.Clock = e.Clock.Merge(v.Clock)
			e.Updated = p.cfg.Now().UnixMilli()
			if err := p.store.Put(bucket, key, e); err != nil {
				return Replica, err
			}
		}
		return Replica, nil
	}
	// Same bytes and same attributes: nothing new (a metadata-only
	// overwrite keeps the ETag but not the attributes).
	if e.Present() && e.LocalETag == info.ETag && e.Attrs == attrsOf(info).Digest() {
		return Unchanged, nil
	}
	return p.publish(ctx, bucket, key, &e, info)
}

// publish makes the record for the local version info (or a tombstone when
// !info.Exists), publishes it and commits it to the state. Called locked.
func (p *Producer) publish(ctx context.Context, bucket, key string, e *state.Entry, info s3io.ObjectInfo) (Result, error) {
	now := p.cfg.Now().UnixMilli()
	clock := e.Clock.Bump(p.cfg.Site)
	wall := now
	if info.Exists && !info.LastModified.IsZero() {
		wall = info.LastModified.UnixMilli()
	}
	wall += p.cfg.Skew.Milliseconds()
	v := schema.Version{
		ID:      schema.VersionID(p.cfg.Site, bucket, key, clock[p.cfg.Site]),
		Origin:  p.cfg.Site,
		Clock:   clock,
		TS:      schema.NextTS(wall, e.HeldPtr()),
		Rank:    p.cfg.Policies[bucket].Rank(p.cfg.Site, !info.Exists, e.HeldPtr()),
		Deleted: !info.Exists,
	}
	rec := &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key, MadeAt: now}
	if info.Exists {
		v.Size, v.ETag = info.Size, info.ETag
		rec.Attrs = attrsOf(info)
	}
	rec.Version = v
	sendRec := rec
	if info.Exists && info.Size <= p.cfg.InlineThreshold {
		body, err := p.readInline(ctx, bucket, key, info)
		if err != nil {
			return Unchanged, err
		}
		withBody := *rec
		withBody.Inline, withBody.Body = true, body
		sendRec = &withBody
	}
	// The intent (without the body) goes to disk before the publish: after a
	// crash past the publish, a later write must not reuse this clock for
	// other content, so the next Reconcile republishes this record first.
	e.Pending = rec
	if err := p.store.Put(bucket, key, *e); err != nil {
		return Unchanged, err
	}
	rec = sendRec
	if err := p.send(ctx, rec); err != nil {
		return Unchanged, err
	}
	if h := p.Hooks.AfterPublish; h != nil {
		h(bucket, key)
	}
	p.commit(e, rec, info.ETag)
	if err := p.store.Put(bucket, key, *e); err != nil {
		return Published, err
	}
	p.log.Debug("published", "bucket", bucket, "key", key, "id", v.ID, "deleted", v.Deleted, "clock", v.Clock.String())
	return Published, nil
}

func (p *Producer) readInline(ctx context.Context, bucket, key string, info s3io.ObjectInfo) ([]byte, error) {
	rc, got, err := p.s3.Get(ctx, bucket, key, info.ETag)
	if err != nil {
		if c := s3io.Classify(err); c == s3io.Precondition || c == s3io.NotFound {
			return nil, errChanged
		}
		return nil, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, p.cfg.InlineThreshold+1))
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	if int64(len(body)) != info.Size || got.ETag != info.ETag {
		return nil, errChanged
	}
	return body, nil
}

func (p *Producer) send(ctx context.Context, rec *schema.Record) error {
	data, err := rec.Encode()
	if err != nil {
		return fmt.Errorf("encode record %s: %w", rec.Version.ID, err)
	}
	part := schema.Partition(rec.Bucket, rec.Key, p.cfg.Partitions)
	if err := p.pub.PublishRecord(ctx, part, data, rec.Version.ID); err != nil {
		return fmt.Errorf("publish %s: %w", rec.Version.ID, err)
	}
	p.m.RecordsPublished.Inc()
	return nil
}

func (p *Producer) commit(e *state.Entry, rec *schema.Record, localETag string) {
	e.Clock = e.Clock.Merge(rec.Version.Clock)
	e.Held = rec.Version
	e.LocalETag = localETag
	e.Attrs = rec.Attrs.Digest()
	if rec.Version.Deleted {
		e.LocalETag = ""
	}
	e.Pending, e.Applying = nil, nil
	e.Updated = p.cfg.Now().UnixMilli()
}

// FlushPendingLocked finishes a publish that a crash interrupted: it
// publishes the pending record again (same id: JetStream deduplicates it, and
// consumers skip an equal clock) and commits it. The caller holds the key's
// lock; e is updated in place.
func (p *Producer) FlushPendingLocked(ctx context.Context, bucket, key string, e *state.Entry) error {
	if e.Pending == nil {
		return nil
	}
	rec := e.Pending
	if err := p.send(ctx, rec); err != nil {
		return err
	}
	p.commit(e, rec, rec.Version.ETag)
	if err := p.store.Put(bucket, key, *e); err != nil {
		return err
	}
	p.log.Info("republished an interrupted record", "bucket", bucket, "key", key, "id", rec.Version.ID)
	return nil
}

// Resolve settles a conflict by publishing a new local version of
// bucket/key that dominates both the held version and the clock over: the
// site's clock is merged with over, write (if not nil) puts the chosen
// content into the local store, and whatever the store then holds is
// published as a new version, so every site converges on it.
func (p *Producer) Resolve(ctx context.Context, bucket, key string, over schema.Clock, write func(ctx context.Context, e *state.Entry) error) (schema.Version, error) {
	unlock := p.store.Lock(bucket, key)
	defer unlock()
	e, _, err := p.store.Get(bucket, key)
	if err != nil {
		return schema.Version{}, err
	}
	if err := p.FlushPendingLocked(ctx, bucket, key, &e); err != nil {
		return schema.Version{}, err
	}
	if write != nil {
		if err := write(ctx, &e); err != nil {
			return schema.Version{}, fmt.Errorf("resolve %s/%s: %w", bucket, key, err)
		}
	}
	info, err := p.s3.Head(ctx, bucket, key)
	if err != nil {
		return schema.Version{}, fmt.Errorf("resolve %s/%s: %w", bucket, key, err)
	}
	e.Clock = e.Clock.Merge(over)
	if _, err := p.publish(ctx, bucket, key, &e, info); err != nil {
		return schema.Version{}, err
	}
	return e.Held, nil
}

// attrsOf is the replicated attributes of an object (s3mesh's own metadata
// removed).
func attrsOf(info s3io.ObjectInfo) schema.Attrs {
	return schema.Attrs{
		ContentType: info.ContentType, CacheControl: info.CacheControl,
		ContentEncoding: info.ContentEncoding, ContentDisposition: info.ContentDisposition,
		Meta: schema.UserMeta(info.Meta),
	}
}

// SettleApplyingLocked finishes an apply that a crash interrupted (the
// consumer's intent is still in the state): if the store shows that very
// write (the version's marker, or the key gone for a tombstone), the state
// takes the version, as the apply would have; otherwise the write never
// happened and the intent is dropped. Either way a replica write is never
// mistaken for a local change (I4), and the next apply starts from a state
// that matches the store. The caller holds the key's lock.
func (p *Producer) SettleApplyingLocked(ctx context.Context, bucket, key string, e *state.Entry) (settled bool, err error) {
	a := e.Applying
	if a == nil {
		return false, nil
	}
	info, err := p.s3.Head(ctx, bucket, key)
	if err != nil {
		return false, fmt.Errorf("settle %s/%s: %w", bucket, key, err)
	}
	e.Applying = nil
	if (a.Deleted && !info.Exists) || (!a.Deleted && info.Exists && info.Meta[schema.MetaVID] == a.ID) {
		e.Clock = e.Clock.Merge(a.Clock)
		e.Held = *a
		e.LocalETag, e.Attrs = "", ""
		if info.Exists {
			e.LocalETag, e.Attrs = info.ETag, attrsOf(info).Digest()
		}
		settled = true
		p.log.Info("finished an apply interrupted by a crash", "bucket", bucket, "key", key, "version", a.ID)
	}
	e.Updated = p.cfg.Now().UnixMilli()
	return settled, p.store.Put(bucket, key, *e)
}
