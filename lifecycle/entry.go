package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// Entry is the state of one key at one site.
type Entry struct {
	Clock     schema.Clock   `msgpack:"clock"` // merged clock of everything seen for the key
	Held      schema.Version `msgpack:"held"`  // the version this site holds (may be a tombstone)
	LocalETag string         `msgpack:"etag"`  // ETag of the object in the local store ("" if absent)
	// Attrs is the digest (schema.Attrs.Digest) of the held version's
	// attributes: a metadata-only overwrite keeps the ETag, not the digest.
	Attrs string `msgpack:"attrs,omitempty"`
	// Pending is a change record about to be published (body omitted). It is
	// persisted before the publish and cleared after, so a crash in between
	// republishes the same record instead of inventing another with the same
	// clock.
	Pending *schema.Record `msgpack:"pending,omitempty"`
	// Applying is the version being written to the local store as a replica.
	// It is persisted before the S3 write, so a write of it (even a delete,
	// which leaves no marker) is recognised as a replica write after a crash.
	Applying *schema.Version `msgpack:"applying,omitempty"`
	// Dead lists versions of this key that went to the dead-letter queue. A
	// later version applied over them is noted as superseding them, so a
	// record never overtakes a dead letter silently.
	Dead    []string `msgpack:"dead,omitempty"`
	Updated int64    `msgpack:"upd"` // unix ms of the last change
}

// Present reports whether the site holds a live object for the key.
func (e *Entry) Present() bool { return e.Held.ID != "" && !e.Held.Deleted }

// HeldPtr returns the held version, or nil if the site never saw the key.
func (e *Entry) HeldPtr() *schema.Version {
	if e == nil || e.Held.ID == "" {
		return nil
	}
	v := e.Held
	return &v
}

// Outstanding reports whether an intent (a publish or an apply) awaits
// recovery.
func (e *Entry) Outstanding() bool { return e.Pending != nil || e.Applying != nil }

// Collectable reports whether e is a tombstone older than retention (unix ms
// now), with no intent outstanding: the state may forget it.
func (e *Entry) Collectable(now, retentionMillis int64) bool {
	return retentionMillis > 0 && e.Held.Deleted && !e.Outstanding() && now-e.Updated > retentionMillis
}

// clone returns a copy of e that shares nothing mutable with it.
func (e Entry) clone() Entry {
	if e.Clock != nil {
		e.Clock = e.Clock.Clone()
	}
	if e.Pending != nil {
		p := *e.Pending
		e.Pending = &p
	}
	if e.Applying != nil {
		a := *e.Applying
		e.Applying = &a
	}
	if e.Dead != nil {
		e.Dead = append([]string{}, e.Dead...)
	}
	return e
}

// Object is what a HEAD of the local store says about the key.
type Object struct {
	Exists       bool
	ETag         string            // without quotes
	Size         int64             //
	LastModified int64             // unix ms; 0 if unknown
	Meta         map[string]string // user metadata as stored, s3mesh's marker included
	Attrs        schema.Attrs      // the attributes that replicate (s3mesh's own metadata removed)
}

// replica returns the version whose replica marker o carries for bucket/key.
func (o Object) replica(k Key) (schema.Version, bool) {
	if !o.Exists {
		return schema.Version{}, false
	}
	return schema.Replica(k.Bucket, k.Key, o.Meta, o.Size)
}

// Key names one object.
type Key struct{ Bucket, Key string }

// BucketPolicy is how one bucket's conflicts are decided and recorded.
type BucketPolicy struct {
	schema.Policy
	KeepLosers   bool   // keep each losing version's bytes as an object
	LosersPrefix string // under this prefix (see schema.LoserKey)
	// Trash is what a peer's record removes that the site keeps in its
	// trash (trash.go); Versioned says the store keeps old versions of the
	// bucket itself, so nothing is copied.
	Trash     TrashMode
	Versioned bool
}
