package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// observe confirms a hint that the key may have changed locally: the
// replica write the state recorded is never published (I4); a version the
// state does not know, marked or not, becomes a new change record.
func (m Machine) observe(k Key, e Entry, in Observe, now int64) Step {
	if e.Outstanding() {
		return done(e, Unchanged, ErrOutstanding)
	}
	if in.SiteMode != ModeActive {
		return m.drift(k, e, in, now)
	}
	o := in.Object
	if in.Force {
		e.Clock = e.Clock.Merge(in.Over)
		return m.publish(k, e, o, in.Policy, now)
	}
	if !o.Exists {
		switch {
		case !e.Present() && e.Stored():
			return agreed(e, o, now) // a kept or drifted object is gone: the store agrees with the tombstone
		case !e.Present():
			return done(e, Unchanged, nil) // a delete of a key the site does not hold
		case in.BucketGone:
			return done(e, Unchanged, ErrNoBucket)
		case in.DeletesHeld:
			// Delete events too: a site whose user (or attacker) deletes
			// most of a bucket through S3 is held like a wiped store.
			s := done(e, Held, nil)
			s.Effects = []Effect{Note{Warn: true, Msg: "delete not published: the bucket's deletes are held"}}
			return s
		}
		return m.publish(k, e, o, in.Policy, now)
	}
	// A replica marker is metadata any S3 user of the site can write, so it
	// is trusted only when it names the version the entry holds, on the
	// very object (local ETag) the apply or a rebuild recorded for it. The
	// other way a replica write is known, the version being applied, is
	// settled by Recover (settle) before any observation (ErrOutstanding
	// above). Any other object carrying a marker (a user copied one, with
	// new bytes; or the state lost track of a replica write without a
	// rebuild) is a local write and is published like any other; its
	// marker stays s3mesh's own metadata (schema.UserMeta drops it).
	if v, ok := o.replica(k); ok && e.Held.ID == v.ID && e.LocalETag == o.ETag {
		return done(e, Replica, nil)
	}
	// Same bytes and same attributes: nothing new (a metadata-only
	// overwrite keeps the ETag but not the attributes). An object an
	// archive kept, or a replica's drift, is not published either when
	// the bucket becomes active (Entry.Kept, Entry.Drift).
	if e.Stored() && e.LocalETag == o.ETag && e.Attrs == o.Attrs.Digest() {
		return done(e, Unchanged, nil)
	}
	return m.publish(k, e, o, in.Policy, now)
}

// drift confirms a hint at a site whose bucket publishes nothing (mode
// replica or archive): a local write is recorded in the entry as drift
// (the local object, not a version: no clock moves) and never published;
// a replica write or the object an archive kept is what it was.
func (m Machine) drift(k Key, e Entry, in Observe, now int64) Step {
	o := in.Object
	switch {
	case in.Force:
		return done(e, Unchanged, ErrNotPublishing)
	case !o.Exists && e.Stored() && in.BucketGone:
		return done(e, Unchanged, ErrNoBucket)
	}
	if v, ok := o.replica(k); ok && !e.Drift && e.Held.ID == v.ID && e.LocalETag == o.ETag {
		return done(e, Replica, nil)
	}
	if e.Stored() == o.Exists && e.LocalETag == o.ETag && (!o.Exists || e.Attrs == o.Attrs.Digest()) {
		return done(e, Unchanged, nil)
	}
	if (!o.Exists && !e.Present()) || (o.Exists && e.Present() && landed(e.Held, o)) {
		return agreed(e, o, now)
	}
	e.Drift = true
	e.LocalETag, e.Attrs = "", ""
	if o.Exists {
		e.LocalETag, e.Attrs = o.ETag, o.Attrs.Digest()
	}
	return saved(e, now, Done, Drift, Note{Warn: true,
		Msg:  "local write not replicated: the bucket publishes nothing at this site (drift)",
		Args: []any{"mode", in.SiteMode.String(), "exists", o.Exists, "etag", o.ETag}})
}

// agreed records that the store holds what the held version says again
// (its bytes, or nothing for a tombstone): no drift, nothing kept.
func agreed(e Entry, o Object, now int64) Step {
	e.Drift, e.Kept = false, false
	e.LocalETag, e.Attrs = "", ""
	if o.Exists {
		e.LocalETag, e.Attrs = o.ETag, o.Attrs.Digest()
	}
	return saved(e, now, Done, Unchanged)
}

// publish makes the record of the local version o (a tombstone when absent)
// and returns it as a pending intent plus the Publish effect.
func (m Machine) publish(k Key, e Entry, o Object, pol schema.Policy, now int64) Step {
	return m.publishOver(k, e, o, pol, now, e.HeldPtr())
}

// publishOver is publish with the new version's origin time and rank
// placed after over (the held version, or a version the write must follow
// that the site does not hold: a refused delete), so that the conflict
// order agrees with the clock.
func (m Machine) publishOver(k Key, e Entry, o Object, pol schema.Policy, now int64, over *schema.Version) Step {
	clock := e.Clock.Bump(m.Site)
	if clock[m.Site] <= m.Floor {
		clock[m.Site] = m.Floor + 1
	}
	wall := now
	if o.Exists && o.LastModified != 0 {
		wall = o.LastModified
	}
	v := schema.Version{
		ID:      schema.VersionID(m.Site, k.Bucket, k.Key, clock[m.Site]),
		Origin:  m.Site,
		Clock:   clock,
		TS:      schema.NextTS(wall+m.SkewMillis, over),
		Rank:    pol.Rank(m.Site, !o.Exists, over),
		Deleted: !o.Exists,
	}
	rec := schema.Record{Schema: schema.RecordSchema, Bucket: k.Bucket, Key: k.Key, MadeAt: now}
	if o.Exists {
		v.Size, v.ETag = o.Size, o.ETag
		rec.Attrs = o.Attrs
	}
	rec.Version = v
	// The intent (without the body) is durable before the publish: after a
	// crash past the publish, a later write must not reuse this clock for
	// other content, so Recover republishes this record first.
	pending, send := rec, rec
	e.Pending = &pending
	return saved(e, now, Feed, Unchanged, Publish{Record: &send, ReadInline: o.Exists && o.Size <= m.InlineThreshold})
}

// published commits the pending record once the broker stored it.
func (m Machine) published(e Entry, in PublishAcked, now int64) Step {
	p := e.Pending
	if p == nil || in.Publish.Record == nil || p.Version.ID != in.Publish.Record.Version.ID {
		return done(e, Unchanged, ErrUnexpected)
	}
	e.Clock = e.Clock.Merge(p.Version.Clock)
	e.Held = p.Version
	e.Drift, e.Kept = false, false // the store holds the published version
	e.LocalETag = p.Version.ETag
	if p.Version.Deleted {
		e.LocalETag = ""
	}
	e.Attrs = p.Attrs.Digest()
	e.Proof = in.Proof
	e.Pending = nil
	if in.Publish.Republish {
		return settled(e, now, Done, Recovered,
			Note{Msg: "republished an interrupted record", Args: []any{"id", p.Version.ID}})
	}
	return settled(e, now, Done, Published)
}

// publishChanged drops a pending record that was never sent: the object
// changed before its body could be read, so the next observation makes the
// record of what the store holds now (reusing the clock is safe, nothing
// with it left the site).
func (m Machine) publishChanged(e Entry, now int64) Step {
	if e.Pending == nil {
		return done(e, Unchanged, ErrUnexpected)
	}
	e.Pending = nil
	return saved(e, now, Again, Unchanged)
}
