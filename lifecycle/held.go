package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// Held deletes. A receiver's guard may hold a peer's deletes of a bucket
// (too many in a window, see consumer.DeleteGuard). The per-key rules:
//
//   - A held tombstone is one that would delete the object this site holds
//     (holds): one that is stale, parked, loses its conflict, meets an
//     absent key or reaches an archive site deletes nothing and takes its
//     normal course.
//   - Records after a held delete of the same key are decided as usual
//     against the key's entry, which the held delete did not change. One
//     whose clock dominates the held delete's supersedes it (Superseded):
//     the held delete is dropped, and the key ends as if both had been
//     applied in order (the later record wins either way).
//   - Releasing feeds a held delete to Receive again (without HoldDeletes):
//     the normal decision skips it if the key's entry has moved past it
//     since, or decides the conflict with a concurrent write.
//   - Refusing it for good (Refuse) writes the object this site holds again
//     as a new local version over the delete's clock, so every site,
//     including the one that deleted it, holds the object again.

// holds reports whether the receiver holds rec under decision d instead of
// applying it: a tombstone that would delete the object e holds (an archive
// site deletes nothing, so holds nothing).
func holds(e Entry, rec *schema.Record, d schema.Decision, pol BucketPolicy) bool {
	if !rec.Version.Deleted || !e.Present() || pol.SiteMode == ModeArchive {
		return false
	}
	switch d.Outcome {
	case schema.Apply:
		return true
	case schema.ApplyWinner:
		return d.Winner != nil && d.Winner.ID == rec.Version.ID
	}
	return false
}

// Superseded reports whether a key whose merged clock is now clock no
// longer needs the held delete del: the site has seen everything del saw
// (a later record or the delete itself went through), so applying del
// would be skipped.
func Superseded(clock schema.Clock, del schema.Version) bool {
	switch del.Clock.Compare(clock) {
	case schema.Equal, schema.Before:
		return true
	}
	return false
}

// Refuse refuses a held delete for good: the site writes the object it
// holds (Object, from a HEAD) again as its own new version, whose clock
// merges the delete's and then takes the site's next counter, so it
// dominates the delete everywhere. A key whose entry already dominates the
// delete, or whose object is gone here too, needs nothing (Unchanged).
type Refuse struct {
	Object Object
	Policy schema.Policy
	Delete schema.Version
}

func (m Machine) refuse(k Key, e Entry, in Refuse, now int64) Step {
	if e.Outstanding() {
		return done(e, Unchanged, ErrOutstanding)
	}
	if !in.Delete.Deleted {
		return done(e, Unchanged, ErrUnexpected)
	}
	if Superseded(e.Clock, in.Delete) {
		s := done(e, Unchanged, nil)
		s.Effects = []Effect{Note{Msg: "held delete already superseded: nothing to write again", Args: []any{"delete", in.Delete.ID}}}
		return s
	}
	if !in.Object.Exists {
		s := done(e, Unchanged, nil)
		s.Effects = []Effect{Note{Warn: true, Msg: "held delete refused, but the object is gone here too: nothing to write again",
			Args: []any{"delete", in.Delete.ID}}}
		return s
	}
	// The new version follows the delete in the clock, and so in the
	// conflict order too: its origin time and rank are placed after
	// whichever of the held version and the delete sorts higher.
	over := in.Delete
	if h := e.HeldPtr(); h != nil && over.Less(*h) {
		over = *h
	}
	e.Clock = e.Clock.Merge(in.Delete.Clock)
	return m.publishOver(k, e, in.Object, in.Policy, now, &over)
}
