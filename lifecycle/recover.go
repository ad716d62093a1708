package lifecycle

import (
	"strings"

	"github.com/s3mesh/s3mesh/schema"
)

// recover settles an outstanding intent: a pending publish is published
// again (same record, same id: the broker drops a duplicate, consumers skip
// an equal clock), with its body inline when the store still holds it; an
// apply intent is checked against the store.
func (m Machine) recover(e Entry) Step {
	switch {
	case e.Pending != nil:
		// The body is not in the intent (a state entry stays small); it is
		// read again while the store still holds that very version, so the
		// record does not depend on this site serving the body later.
		rec := *e.Pending
		inline := !rec.Version.Deleted && rec.Version.Size <= m.InlineThreshold
		return Step{Entry: e, Effects: []Effect{Publish{Record: &rec, Republish: true, ReadInline: inline}}, Next: Feed}
	case e.Applying != nil:
		return Step{Entry: e, Effects: []Effect{Inspect{Copy: e.LoserCopy}}, Next: Feed}
	}
	return done(e, Unchanged, nil)
}

// settle finishes or drops an apply intent after a crash: if the store
// shows that very write (the version's marker, or the key gone for a
// tombstone), the entry takes the version as the apply would have;
// otherwise the write never happened and the intent is dropped (so is a
// tombstone's whose loser copy, made before the delete, is missing). Either way
// a replica write is never mistaken for a local change (I4).
func (m Machine) settle(e Entry, o, copied Object, now int64) Step {
	a, copyKey := e.Applying, e.LoserCopy
	if a == nil {
		return done(e, Unchanged, nil)
	}
	e.Applying, e.LoserCopy = nil, ""
	if a.Deleted && !o.Exists && copyKey != "" && !copied.Exists {
		// The apply copies the loser before it deletes it, and no copy is
		// there: the key was deleted by a user (racing the apply), and that
		// delete of this site's own version is published like any other
		// (the next observation), not taken for the replica delete (I4).
		return saved(e, now, Done, Recovered,
			Note{Msg: "dropped a delete intent: the key was deleted before the loser copy was made", Args: []any{"version", a.ID, "copy", copyKey}})
	}
	if (a.Deleted && !o.Exists) || (!a.Deleted && (landed(*a, o) || landedUnmarked(*a, o))) {
		e.Clock = e.Clock.Merge(a.Clock)
		e.Held = *a
		e.Drift, e.Kept = false, false
		e.LocalETag, e.Attrs, e.Proof = "", "", nil // the record is not at hand
		if o.Exists {
			e.LocalETag, e.Attrs = o.ETag, o.Attrs.Digest()
		}
		return saved(e, now, Done, Recovered,
			Note{Msg: "finished an apply interrupted by a crash", Args: []any{"version", a.ID}})
	}
	return saved(e, now, Done, Recovered,
		Note{Msg: "dropped an apply intent the store does not show", Args: []any{"version", a.ID}})
}

// landed reports whether o is the replica write of v: it carries v's marker
// and, as far as size and ETag tell, v's bytes (schema.Version.Matches).
// The marker alone proves nothing: any S3 user can copy it onto a write of
// its own, for example from the object it overwrites.
func landed(v schema.Version, o Object) bool {
	return o.Exists && o.Meta[schema.MetaVID] == v.ID && v.Matches(o.Size, o.ETag)
}

// landedUnmarked reports whether o, which carries no replica marker at all,
// is v's replica write whose metadata the store has not attached yet: it
// has v's size and v's single-part ETag, the MD5 of v's bytes. rclone serve
// s3 renames a written object into place first and attaches its user
// metadata (the marker with it) a moment later, so an agent restarted while
// its PUT was finishing sees v's bytes without the marker; it is the write
// the durable intent says was being made, not a local one (taken for one,
// it was published by this site as a version no one wrote). A user write
// of exactly those bytes in that moment would be taken for the replica too:
// it holds the same bytes, so none are lost (I2); its attributes are not
// replicated. A multipart ETag says nothing about the bytes: not taken.
func landedUnmarked(v schema.Version, o Object) bool {
	if !o.Exists || o.Size != v.Size || !schema.PlainMD5(v.ETag) || !strings.EqualFold(v.ETag, o.ETag) {
		return false
	}
	_, marked := o.Meta[schema.MetaVID]
	return !marked
}
