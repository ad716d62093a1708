package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/metrics"
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

// BodyChecker is a LocalStore that can say whether the store itself checks
// a Put's body against its ContentMD5 (s3io.Client after the probe); the
// applier then does not hash fetched bodies itself.
type BodyChecker interface {
	ChecksContentMD5(in s3io.PutInput) bool
}

// BucketPolicy is how one bucket's conflicts are decided and recorded.
type BucketPolicy = lifecycle.BucketPolicy

// Source is a site bodies can be read from.
type Source interface {
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error)
}

// Local is the site's producer, seen from the consumer: a local write that
// races an apply is recorded as its own version first, then decided; an
// intent a crash left behind is settled before anything else.
type Local interface {
	Reconcile(ctx context.Context, bucket, key string) error
	RecoverLocked(ctx context.Context, bucket, key string, e *state.Entry) error
	// ExpectEcho notes a replica write just made (etag "" for a delete),
	// so the storage event it causes needs no HEAD. Called under the key's
	// lock.
	ExpectEcho(bucket, key, etag string)
}

// ConflictLog records every conflict decision durably.
type ConflictLog interface {
	Conflict(ctx context.Context, e schema.ConflictEntry) error
}

// Applier applies change records to the local site: it is the executor of
// the per-key state machine (package lifecycle) for incoming records.
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
	// Unrepresentable names the kind of key character the local store
	// cannot hold under its exact name (s3io.Capabilities.Unrepresentable;
	// "" if it can; nil: not checked). Such a record is dead-lettered, never
	// written: the store would keep it under another name, which this
	// site's producer would then see as a key nobody wrote, and the key
	// itself as missing.
	Unrepresentable func(key string) string
	// Shares are each peer's part of the local store's memory budget
	// (s3io.Share): one peer's records, however slowly their bodies come,
	// buffer at most its share, and the others' keep flowing. A peer
	// without one draws on the whole budget.
	Shares map[string]*s3io.Share
	// Topo counts the peers' deletes an archive site kept (nil: not
	// counted).
	Topo *metrics.Topology
	// Guard holds a peer's mass deletes (nil: none held).
	Guard *DeleteGuard
	// KeyLimit is the longest key the local store holds (0: S3's 1024),
	// for the names of trash copies; Versioned reports whether the store
	// keeps old versions of a bucket itself (then nothing is copied to the
	// trash). Either may be nil.
	KeyLimit  func() int
	Versioned func(bucket string) bool

	badSources // peers that served wrong bytes, per version (fetch.go)
}

// Hooks let tests stop the applier at a precise point (crash injection).
type Hooks struct {
	AfterWrite func(bucket, key string) // between the S3 write and the state commit
	AfterTrash func(bucket, key string) // between a trash copy and the replica write
}

// Errors of Apply. Permanent ones send the record to the DLQ at once.
var (
	ErrNotReplicated   = errors.New("bucket is not replicated at this site")
	ErrBodyUnavailable = errors.New("no site holds this version's body any more")
	ErrLocalChanging   = errors.New("the local object keeps changing under the apply")
	ErrParked          = errors.New("conflict parked for an operator (policy manual)")
	ErrUnauthorized    = errors.New("record does not come from its origin's stream")
	ErrUnrepresentable = errors.New("this site's store cannot hold the key under its exact name")
)

// Apply applies rec and returns the decision taken. It is idempotent: a
// record delivered again, in any order, changes nothing after its first
// application (I3).
func (a *Applier) Apply(ctx context.Context, rec *schema.Record) (schema.Decision, error) {
	return a.applyGuarded(ctx, rec, true)
}

// applyGuarded is Apply; guarded puts a delete through the delete guard
// (not when an operator releases it).
func (a *Applier) applyGuarded(ctx context.Context, rec *schema.Record, guarded bool) (schema.Decision, error) {
	if _, ok := a.Buckets[rec.Bucket]; !ok {
		return schema.Decision{}, fmt.Errorf("apply %s/%s: %w", rec.Bucket, rec.Key, ErrNotReplicated)
	}
	if a.Unrepresentable != nil && !rec.Version.Deleted {
		if class := a.Unrepresentable(rec.Key); class != "" {
			return schema.Decision{}, fmt.Errorf("apply %s/%q: %w (a key with %s)", rec.Bucket, rec.Key, ErrUnrepresentable, class)
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		st, err := a.applyOnce(ctx, rec, guarded)
		if err == nil && st.Result == lifecycle.Kept && a.Topo != nil {
			a.Topo.NoteKept(rec.Bucket, rec.Version.Origin)
		}
		if err != nil || st.Next != lifecycle.Again {
			return st.Decision, err
		}
		// A local write not yet recorded got there first: record it as its
		// own version, then decide again against it.
		if err := a.Local.Reconcile(ctx, rec.Bucket, rec.Key); err != nil {
			return schema.Decision{}, fmt.Errorf("apply %s/%s: record racing local write: %w", rec.Bucket, rec.Key, err)
		}
	}
	return schema.Decision{}, fmt.Errorf("apply %s/%s: %w", rec.Bucket, rec.Key, ErrLocalChanging)
}

func (a *Applier) applyOnce(ctx context.Context, rec *schema.Record, guarded bool) (lifecycle.Step, error) {
	k := lifecycle.Key{Bucket: rec.Bucket, Key: rec.Key}
	unlock := a.Store.Lock(k.Bucket, k.Key)
	defer unlock()
	e, _, err := a.Store.Get(k.Bucket, k.Key)
	if err != nil {
		return lifecycle.Step{}, err
	}
	if err := a.Local.RecoverLocked(ctx, k.Bucket, k.Key, &e); err != nil {
		return lifecycle.Step{}, err
	}
	in := lifecycle.Receive{Record: rec, Policy: a.policy(k.Bucket)}
	var undo func()
	if guarded && rec.Version.Deleted && a.Guard != nil {
		in.HoldDeletes, undo = a.Guard.admit(rec.Version.Origin, k.Bucket, a.Now())
	}
	st, err := a.drive(ctx, k, e, in, rec)
	if err == nil && st.Err != nil {
		err = fmt.Errorf("apply %s/%s: %w", k.Bucket, k.Key, st.Err)
	}
	if undo != nil && (err != nil || st.Result != lifecycle.Applied || !e.Present()) {
		undo() // it deleted nothing
	}
	if err == nil {
		err = a.dropSuperseded(k, st.Entry)
	}
	return st, err
}

// AfterSync runs fn once the state writes made so far are durable.
func (a *Applier) AfterSync(fn func()) { a.Store.AfterSync(fn) }

// MarkDead records that version id of bucket/key went to the dead-letter
// queue (see lifecycle.Entry.Dead).
func (a *Applier) MarkDead(bucket, key, id string) error {
	unlock := a.Store.Lock(bucket, key)
	defer unlock()
	e, _, err := a.Store.Get(bucket, key)
	if err != nil {
		return err
	}
	_, err = a.drive(context.Background(), lifecycle.Key{Bucket: bucket, Key: key}, e, lifecycle.DeadLettered{ID: id}, nil)
	return err
}

// drive runs the state machine from in until it is handled, with the
// applier as its executor for record rec. The caller holds the key's lock.
func (a *Applier) drive(ctx context.Context, k lifecycle.Key, e state.Entry, in lifecycle.Input, rec *schema.Record) (lifecycle.Step, error) {
	return lifecycle.Drive(lifecycle.Machine{Site: a.Site}, k, e, in, lifecycle.Executor{
		Persist: func(e lifecycle.Entry, lazy bool) error {
			if lazy {
				return a.Store.PutLazy(k.Bucket, k.Key, e)
			}
			return a.Store.Put(k.Bucket, k.Key, e)
		},
		Execute: func(effs []lifecycle.Effect) (lifecycle.Input, error) { return a.execute(ctx, k, rec, effs) },
		Now:     func() int64 { return a.Now().UnixMilli() },
	})
}
