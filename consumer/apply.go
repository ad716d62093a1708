package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// LocalStore is what the applier needs from its own site's S3.
type LocalStore interface {
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Put(ctx context.Context, in s3io.PutInput) (string, error)
	Delete(ctx context.Context, bucket, key, ifMatch string) error
	CopyIfMatch(ctx context.Context, bucket, srcKey, dstKey, srcETag string) error
}

// BucketPolicy is how one bucket's conflicts are decided and recorded.
type BucketPolicy struct {
	schema.Policy
	KeepLosers   bool   // keep each losing version's bytes as an object
	LosersPrefix string // under this prefix (see schema.LoserKey)
}

// Source is a site bodies can be read from.
type Source interface {
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error)
}

// Local is the site's producer, seen from the consumer: a local write that
// races an apply is recorded as its own version first, then decided.
type Local interface {
	Reconcile(ctx context.Context, bucket, key string) error
	FlushPendingLocked(ctx context.Context, bucket, key string, e *state.Entry) error
	SettleApplyingLocked(ctx context.Context, bucket, key string, e *state.Entry) (bool, error)
}

// ConflictLog records every conflict decision durably.
type ConflictLog interface {
	Conflict(ctx context.Context, e schema.ConflictEntry) error
}

// Applier applies change records to the local site.
type Applier struct {
	Site     string
	Buckets  map[string]BucketPolicy // replicated buckets and their policies
	Store    *state.Store
	S3       LocalStore
	Sources  map[string]Source // peer name → its S3
	Local    Local
	Conflict ConflictLog
	PartSize int64
	Log      *slog.Logger
	Now      func() time.Time
	Hooks    Hooks
}

// Hooks let tests stop the applier at a precise point (crash injection).
type Hooks struct {
	AfterWrite func(bucket, key string) // between the S3 write and the state commit
}

// Errors of Apply. Permanent ones send the record to the DLQ at once.
var (
	ErrNotReplicated   = errors.New("bucket is not replicated at this site")
	ErrBodyUnavailable = errors.New("no site holds this version's body any more")
	ErrLocalChanging   = errors.New("the local object keeps changing under the apply")
	ErrParked          = errors.New("conflict parked for an operator (policy manual)")
	ErrUnauthorized    = errors.New("record does not come from its origin's stream")
	errLocalChanged    = errors.New("local object changed")
)

// Apply applies rec and returns the decision taken. It is idempotent: a
// record delivered again, in any order, changes nothing after its first
// application (I3).
func (a *Applier) Apply(ctx context.Context, rec *schema.Record) (schema.Decision, error) {
	if _, ok := a.Buckets[rec.Bucket]; !ok {
		return schema.Decision{}, fmt.Errorf("apply %s/%s: %w", rec.Bucket, rec.Key, ErrNotReplicated)
	}
	for attempt := 0; attempt < 5; attempt++ {
		d, err := a.applyOnce(ctx, rec)
		if !errors.Is(err, errLocalChanged) {
			return d, err
		}
		// A local write not yet recorded: record it as its own version, then
		// decide again against it.
		if err := a.Local.Reconcile(ctx, rec.Bucket, rec.Key); err != nil {
			return schema.Decision{}, fmt.Errorf("apply %s/%s: record racing local write: %w", rec.Bucket, rec.Key, err)
		}
	}
	return schema.Decision{}, fmt.Errorf("apply %s/%s: %w", rec.Bucket, rec.Key, ErrLocalChanging)
}

func (a *Applier) applyOnce(ctx context.Context, rec *schema.Record) (schema.Decision, error) {
	b, k := rec.Bucket, rec.Key
	unlock := a.Store.Lock(b, k)
	defer unlock()
	e, _, err := a.Store.Get(b, k)
	if err != nil {
		return schema.Decision{}, err
	}
	if err := a.Local.FlushPendingLocked(ctx, b, k, &e); err != nil {
		return schema.Decision{}, err
	}
	if _, err := a.Local.SettleApplyingLocked(ctx, b, k, &e); err != nil {
		return schema.Decision{}, err
	}
	pol := a.Buckets[b]
	d := schema.Decide(e.HeldPtr(), e.Clock, rec.Version, pol.Policy)
	if d.Conflict {
		if err := a.logConflict(ctx, rec, d, pol); err != nil {
			return d, err
		}
	}
	switch d.Outcome {
	case schema.Skip:
		return d, nil
	case schema.Park:
		return d, fmt.Errorf("apply %s/%s: %s concurrent with held %s: %w", b, k, rec.Version.ID, e.Held.ID, ErrParked)
	case schema.KeepLocal:
		e.Clock = d.Merged
		e.Updated = a.Now().UnixMilli()
		return d, a.Store.Put(b, k, e)
	}
	if d.Outcome == schema.ApplyWinner {
		if err := a.keepLoser(ctx, rec, d, pol, &e); err != nil {
			return d, err
		}
	}
	etag, err := a.write(ctx, rec, &e)
	if err != nil {
		return d, err
	}
	if h := a.Hooks.AfterWrite; h != nil {
		h(b, k)
	}
	if len(e.Dead) > 0 {
		a.Log.Warn("a dead-lettered version of this key is superseded; its DLQ entry stays until retried (it will report skip) or dropped",
			"bucket", b, "key", k, "dead", e.Dead, "by", rec.Version.ID)
		e.Dead = nil
	}
	e.Clock = d.Merged
	e.Held = rec.Version
	e.LocalETag = etag
	e.Attrs = rec.Attrs.Digest()
	e.Applying = nil
	e.Updated = a.Now().UnixMilli()
	return d, a.Store.Put(b, k, e)
}

// write makes the local store hold rec, conditionally on it holding what
// the state says. It returns the new local ETag ("" for a delete).
func (a *Applier) write(ctx context.Context, rec *schema.Record, e *state.Entry) (string, error) {
	b, k := rec.Bucket, rec.Key
	if !e.Present() && rec.Version.Deleted {
		// The state says absent: an object here is a local write nobody has
		// recorded yet. (A PUT needs no such check: If-None-Match refuses to
		// overwrite it, and the retry records it first.)
		info, err := a.S3.Head(ctx, b, k)
		if err != nil {
			return "", err
		}
		if info.Exists {
			if v, ok := schema.Replica(b, k, info.Meta, info.Size); !ok || v.ID != rec.Version.ID {
				return "", errLocalChanged
			}
			return info.ETag, nil // this very version, written before a crash
		}
		return "", nil
	}
	// The intent goes first: after a crash the producer knows this write
	// (even a delete, which leaves nothing to recognise) is not a local one.
	v := rec.Version
	e.Applying = &v
	if err := a.Store.Put(b, k, *e); err != nil {
		return "", err
	}
	if rec.Version.Deleted {
		// A conditional DELETE of an absent key succeeds on some stores
		// (versitygw answers 204), which would absorb an unrecorded local
		// delete: look first.
		info, err := a.S3.Head(ctx, b, k)
		if err != nil {
			return "", err
		}
		if !info.Exists || info.ETag != e.LocalETag {
			return "", a.abandon(b, k, e)
		}
		err = a.S3.Delete(ctx, b, k, e.LocalETag)
		switch c := s3io.Classify(err); {
		case err == nil:
			return "", nil
		case c == s3io.Precondition || c == s3io.NotFound:
			// Changed or deleted locally, unrecorded (a lost event): record
			// that local change as its own version first, so it is decided
			// (and logged if it conflicts) instead of silently absorbed.
			return "", a.abandon(b, k, e)
		}
		return "", err
	}
	body, err := a.OpenBody(ctx, rec)
	if err != nil {
		return "", err
	}
	defer body.Close()
	meta := maps.Clone(rec.Attrs.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	maps.Copy(meta, schema.ReplicaMeta(b, k, rec.Version))
	in := s3io.PutInput{
		Bucket: b, Key: k, Body: body, Size: rec.Version.Size, PartSize: a.PartSize,
		Attrs: s3io.Attrs{ContentType: rec.Attrs.ContentType, CacheControl: rec.Attrs.CacheControl,
			ContentEncoding: rec.Attrs.ContentEncoding, ContentDisposition: rec.Attrs.ContentDisposition, Meta: meta},
	}
	if e.Present() {
		in.IfMatch = e.LocalETag
	} else {
		in.IfNoneMatch = true
	}
	etag, err := a.S3.Put(ctx, in)
	if err == nil {
		return etag, nil
	}
	if c := s3io.Classify(err); c == s3io.Precondition || c == s3io.NotFound {
		return "", a.abandon(b, k, e)
	}
	return "", err
}

// abandon clears the apply intent after the store refused the conditional
// write: a local write got there first.
func (a *Applier) abandon(b, k string, e *state.Entry) error {
	e.Applying = nil
	if err := a.Store.Put(b, k, *e); err != nil {
		return err
	}
	return errLocalChanged
}

// keepLoser copies the held version's bytes to its loser key before the
// winner replaces it, if this site is the loser's origin (only the origin
// writes the copy, so identical copies made at several sites never conflict
// in turn). The copy is a local write and replicates like any object.
func (a *Applier) keepLoser(ctx context.Context, rec *schema.Record, d schema.Decision, pol BucketPolicy, e *state.Entry) error {
	l := d.Loser
	if !pol.KeepLosers || l.Deleted || l.Origin != a.Site || !e.Present() || e.Held.ID != l.ID {
		return nil
	}
	dst := schema.LoserKey(pol.LosersPrefix, rec.Bucket, rec.Key, *l)
	err := a.S3.CopyIfMatch(ctx, rec.Bucket, rec.Key, dst, e.LocalETag)
	if c := s3io.Classify(err); c == s3io.Precondition || c == s3io.NotFound {
		return a.abandon(rec.Bucket, rec.Key, e) // a local write got there first
	}
	if err != nil {
		return fmt.Errorf("keep loser %s as %s: %w", l.ID, dst, err)
	}
	a.Log.Info("conflict loser kept", "bucket", rec.Bucket, "key", rec.Key, "loser", l.ID, "kept_as", dst)
	return nil
}

func (a *Applier) logConflict(ctx context.Context, rec *schema.Record, d schema.Decision, pol BucketPolicy) error {
	ce := schema.ConflictEntry{
		Site: a.Site, Bucket: rec.Bucket, Key: rec.Key, Policy: pol.Policy.String(), Outcome: d.Outcome.String(),
		Winner: schema.InfoOf(*d.Winner), Loser: schema.InfoOf(*d.Loser), DecidedAt: a.Now().UTC(),
	}
	if pol.KeepLosers && !d.Loser.Deleted && d.Outcome != schema.Park {
		ce.LoserKeptAs = schema.LoserKey(pol.LosersPrefix, rec.Bucket, rec.Key, *d.Loser)
	}
	if a.Conflict == nil {
		return nil
	}
	return a.Conflict.Conflict(ctx, ce)
}

// MarkDead records that version id of bucket/key went to the dead-letter
// queue (see state.Entry.Dead).
func (a *Applier) MarkDead(bucket, key, id string) error {
	unlock := a.Store.Lock(bucket, key)
	defer unlock()
	e, _, err := a.Store.Get(bucket, key)
	if err != nil {
		return err
	}
	for _, d := range e.Dead {
		if d == id {
			return nil
		}
	}
	e.Dead = append(e.Dead, id)
	return a.Store.Put(bucket, key, e)
}
