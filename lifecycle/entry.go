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
	// Proof is the held version's record as its origin signed it
	// (schema.ProofOf; bodyless, or small), nil where the site has none: a
	// rebuilding peer adopts the version only with it.
	Proof []byte `msgpack:"proof,omitempty"`
	// Pending is a change record about to be published (body omitted). It is
	// persisted before the publish and cleared after, so a crash in between
	// republishes the same record instead of inventing another with the same
	// clock.
	Pending *schema.Record `msgpack:"pending,omitempty"`
	// Applying is the version being written to the local store as a replica.
	// It is persisted before the S3 write, so a write of it (even a delete,
	// which leaves no marker) is recognised as a replica write after a crash.
	Applying *schema.Version `msgpack:"applying,omitempty"`
	// LoserCopy is the key a tombstone's apply (Applying) copies the held
	// version to before it deletes it (a conflict this site's own write
	// lost, with keep-losers). The copy comes first, so after a crash a key
	// found absent with no copy under LoserCopy was deleted by someone
	// else, not by the apply (settle).
	LoserCopy string `msgpack:"lcopy,omitempty"`
	// Dead lists versions of this key that went to the dead-letter queue. A
	// later version applied over them is noted as superseding them, so a
	// record never overtakes a dead letter silently.
	Dead    []string `msgpack:"dead,omitempty"`
	Updated int64    `msgpack:"upd"` // unix ms of the last change
	// Drift: the local object (LocalETag, Attrs; none if LocalETag is "")
	// is a local write of a site whose bucket publishes nothing (mode
	// replica or archive), not the held version. It is never published.
	Drift bool `msgpack:"drift,omitempty"`
	// Kept: an archive site kept the object (LocalETag, Attrs) that the
	// held tombstone deleted at the other sites. It is not a local write
	// and is never published.
	Kept bool `msgpack:"kept,omitempty"`
}

// Present reports whether the site holds a live object for the key.
func (e *Entry) Present() bool { return e.Held.ID != "" && !e.Held.Deleted }

// Stored reports whether the local store holds an object for the key, as
// far as the entry knows: the held version, or (Drift, Kept) an object
// the held version does not describe.
func (e *Entry) Stored() bool {
	if e.Drift || e.Kept {
		return e.LocalETag != ""
	}
	return e.Present()
}

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
	return retentionMillis > 0 && e.Held.Deleted && !e.Stored() && !e.Outstanding() && now-e.Updated > retentionMillis
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

// BucketPolicy is how one bucket's conflicts are decided and recorded,
// and how its records apply at this site.
type BucketPolicy struct {
	schema.Policy
	KeepLosers   bool   // keep each losing version's bytes as an object
	LosersPrefix string // under this prefix (see schema.LoserKey)
	SiteMode     Mode   // the bucket's mode at this site
	// Trash is what a peer's record removes that the site keeps in its
	// trash (trash.go); Versioned says the store keeps old versions of the
	// bucket itself, so nothing is copied.
	Trash     TrashMode
	Versioned bool
}

// Mode is how a bucket replicates at one site.
type Mode int

// Bucket modes.
const (
	// ModeActive: the site applies its peers' records and publishes its
	// own writes.
	ModeActive Mode = iota
	// ModeReplica: the site applies every record and publishes nothing; a
	// local write is drift (Entry.Drift).
	ModeReplica
	// ModeArchive: as ModeReplica, but a peer's delete is not carried
	// out: the object stays (Entry.Kept).
	ModeArchive
)

func (m Mode) String() string {
	switch m {
	case ModeActive:
		return "active"
	case ModeReplica:
		return "replica"
	case ModeArchive:
		return "archive"
	}
	return "mode?"
}
