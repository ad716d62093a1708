package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// recover settles an outstanding intent: a pending publish is published
// again (same record, same id: the broker drops a duplicate, consumers skip
// an equal clock), an apply intent is checked against the store.
func (m Machine) recover(e Entry) Step {
	switch {
	case e.Pending != nil:
		rec := *e.Pending
		return Step{Entry: e, Effects: []Effect{Publish{Record: &rec, Republish: true}}, Next: Feed}
	case e.Applying != nil:
		return Step{Entry: e, Effects: []Effect{Inspect{}}, Next: Feed}
	}
	return done(e, Unchanged, nil)
}

// settle finishes or drops an apply intent after a crash: if the store
// shows that very write (the version's marker, or the key gone for a
// tombstone), the entry takes the version as the apply would have;
// otherwise the write never happened and the intent is dropped. Either way
// a replica write is never mistaken for a local change (I4).
func (m Machine) settle(e Entry, o Object, now int64) Step {
	a := e.Applying
	if a == nil {
		return done(e, Unchanged, nil)
	}
	e.Applying = nil
	if (a.Deleted && !o.Exists) || (!a.Deleted && landed(*a, o)) {
		e.Clock = e.Clock.Merge(a.Clock)
		e.Held = *a
		e.LocalETag, e.Attrs = "", ""
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
