package lifecycle

import (
	"fmt"
	"maps"
	"time"

	"github.com/s3mesh/s3mesh/schema"
)

// receive decides an incoming record against the held version and returns
// the writes that carry the decision out.
func (m Machine) receive(k Key, e Entry, in Receive, now int64) Step {
	if e.Outstanding() {
		return done(e, Unchanged, ErrOutstanding)
	}
	rec, pol := in.Record, in.Policy
	// The rank is recomputed, not trusted: its level and flag must be what
	// this site's policy gives the record's origin and flag.
	if err := pol.Policy.CheckRankOf(rec.Version); err != nil {
		return done(e, Unchanged, fmt.Errorf("record %s: %w", rec.Version.ID, err))
	}
	// One version id, one version: another record under the held id is
	// its origin equivocating, refused (dead-lettered), never merged in.
	if err := e.Held.CheckSame(rec.Version); err != nil {
		return done(e, Unchanged, fmt.Errorf("record %s: %w", rec.Version.ID, err))
	}
	d := schema.Decide(e.HeldPtr(), e.Clock, rec.Version, pol.Policy)
	with := func(s Step) Step { s.Decision = d; return s }
	if in.HoldDeletes && holds(e, rec, d, pol) {
		d.Held = true
		s := done(e, Held, nil)
		s.Effects = []Effect{Hold{Record: rec}}
		return with(s)
	}
	var logIt Effect
	if d.Conflict {
		logIt = LogConflict{Entry: m.conflictEntry(k, d, pol, now)}
	}
	switch {
	case d.Outcome == schema.Skip:
		return with(done(e, Skipped, nil))
	case d.Outcome == schema.Park:
		s := done(e, Parked, nil)
		s.Effects = []Effect{logIt, Park{Held: *d.Winner, Parked: *d.Loser}}
		return with(s)
	case d.Conflict:
		// A conflict is logged in a step of its own, before anything it
		// decides takes effect: a merged clock would make a retry skip the
		// record, and an apply intent settled after a crash would adopt the
		// winner, either way with the conflict never logged. The outcome is
		// Logged.
		return with(Step{Entry: e, Effects: []Effect{logIt}, Next: Feed})
	}
	return with(m.apply(k, e, rec, d, pol, now))
}

// logged carries out a conflict once the conflict log holds it: the clock
// merges (the held version won) or the winner is applied.
func (m Machine) logged(k Key, e Entry, in Logged, now int64) Step {
	if in.Record == nil || e.Outstanding() {
		return done(e, Unchanged, ErrUnexpected)
	}
	d := schema.Decide(e.HeldPtr(), e.Clock, in.Record.Version, in.Policy.Policy)
	switch d.Outcome {
	case schema.KeepLocal:
		e.Clock = d.Merged
		return saved(e, now, Done, KeptLocal)
	case schema.ApplyWinner:
		return m.apply(k, e, in.Record, d, in.Policy, now)
	}
	return done(e, Unchanged, fmt.Errorf("%w: %s is not a conflict to carry out (%v)", ErrUnexpected, in.Record.Version.ID, d.Outcome))
}

// apply returns the writes that make the local store hold rec, with the
// apply intent that covers them.
func (m Machine) apply(k Key, e Entry, rec *schema.Record, d schema.Decision, pol BucketPolicy, now int64) Step {
	v := rec.Version
	if v.Deleted && pol.SiteMode == ModeArchive && e.Stored() {
		// An archive keeps what its peers delete: the entry holds the
		// tombstone (so later records are decided as at every other
		// site) and remembers the object it kept, which is never
		// published.
		e.Clock = e.Clock.Merge(v.Clock)
		e.Held, e.Kept = v, true
		return saved(e, now, Done, Kept, Note{Msg: "a peer's delete not carried out: the bucket is an archive at this site, the object stays",
			Args: []any{"version", v.ID}})
	}
	if !e.Stored() && v.Deleted {
		// Nothing to delete: the store must hold nothing either (an object
		// there is a local write nobody has recorded yet). No intent: no
		// write happens.
		return Step{Entry: e, Effects: []Effect{CheckAbsent{}}, Next: Feed}
	}
	var effs []Effect
	e.LoserCopy = ""
	if d.Outcome == schema.ApplyWinner {
		if c, ok := m.loserCopy(k, e, d, pol); ok {
			effs = append(effs, c)
			if v.Deleted {
				e.LoserCopy = c.To
			}
		}
	}
	if t, ok := m.trash(e, rec, pol, now); ok {
		effs = append(effs, t)
	}
	if v.Deleted {
		effs = append(effs, Delete{IfMatch: e.LocalETag})
	} else {
		meta := maps.Clone(rec.Attrs.Meta)
		if meta == nil {
			meta = map[string]string{}
		}
		maps.Copy(meta, schema.ReplicaMeta(k.Bucket, k.Key, v))
		p := Put{Record: rec, Meta: meta, IfNoneMatch: !e.Stored()}
		if e.Stored() {
			p.IfMatch = e.LocalETag
		}
		effs = append(effs, p)
	}
	// The intent is durable before any write, so a crash in between leaves
	// an entry that Recover settles against the store.
	e.Applying = &v
	return saved(e, now, Feed, Unchanged, effs...)
}

// loserCopy is the copy of the held version's bytes to its loser key before
// the winner replaces it, made only at the loser's origin (it holds the
// bytes), so identical copies made at several sites never conflict in turn.
func (m Machine) loserCopy(k Key, e Entry, d schema.Decision, pol BucketPolicy) (CopyLoser, bool) {
	l := d.Loser
	if !pol.KeepLosers || l.Deleted || l.Origin != m.Site || !e.Present() || e.Drift || e.Kept || e.Held.ID != l.ID {
		return CopyLoser{}, false
	}
	return CopyLoser{To: schema.LoserKey(pol.LosersPrefix, k.Bucket, k.Key, *l), IfMatch: e.LocalETag, Loser: l.ID}, true
}

func (m Machine) conflictEntry(k Key, d schema.Decision, pol BucketPolicy, now int64) schema.ConflictEntry {
	ce := schema.ConflictEntry{
		Site: m.Site, Bucket: k.Bucket, Key: k.Key, Policy: pol.Policy.String(), Outcome: d.Outcome.String(),
		Winner: schema.InfoOf(*d.Winner), Loser: schema.InfoOf(*d.Loser), DecidedAt: time.UnixMilli(now).UTC(),
	}
	if pol.KeepLosers && !d.Loser.Deleted && d.Outcome != schema.Park {
		ce.LoserKeptAs = schema.LoserKey(pol.LosersPrefix, k.Bucket, k.Key, *d.Loser)
	}
	return ce
}

// written commits an apply whose effects all succeeded.
func (m Machine) written(e Entry, in Written, now int64) Step {
	if in.Record == nil {
		return done(e, Unchanged, ErrUnexpected)
	}
	v := in.Record.Version
	switch {
	case e.Applying != nil && e.Applying.ID != v.ID:
		return done(e, Unchanged, fmt.Errorf("%w: wrote %s while applying %s", ErrUnexpected, v.ID, e.Applying.ID))
	case e.Applying == nil && !(v.Deleted && !e.Present()):
		return done(e, Unchanged, fmt.Errorf("%w: wrote %s with no apply intent", ErrUnexpected, v.ID))
	}
	var effs []Effect
	if len(e.Dead) > 0 {
		effs = append(effs, Note{Warn: true, Msg: "a dead-lettered version of this key is superseded; its DLQ entry stays until retried (it will report skip) or dropped",
			Args: []any{"dead", e.Dead, "by", v.ID}})
		e.Dead = nil
	}
	e.Clock = e.Clock.Merge(v.Clock)
	e.Held = v
	e.Drift, e.Kept = false, false
	e.LocalETag = in.ETag
	e.Attrs = in.Record.Attrs.Digest()
	e.Proof = schema.ProofOf(in.Record)
	intent := e.Applying != nil
	e.Applying, e.LoserCopy = nil, ""
	if intent && len(effs) == 0 {
		// Recovering the intent takes the same version (settle); with dead
		// letters to forget it would keep them, so that entry is durable.
		return settled(e, now, Done, Applied)
	}
	return saved(e, now, Done, Applied, effs...)
}

// refused drops the apply intent after the store refused a conditional
// write: a local write got there first. The executor records it as its own
// version, then receives the record again (it is then decided against it).
func (m Machine) refused(e Entry, now int64) Step {
	if e.Applying == nil {
		return Step{Entry: e, Next: Again, Result: LocalChanged}
	}
	e.Applying, e.LoserCopy = nil, ""
	return settled(e, now, Again, LocalChanged)
}

// deadLettered remembers that version id went to the dead-letter queue.
func (m Machine) deadLettered(e Entry, id string, now int64) Step {
	for _, d := range e.Dead {
		if d == id {
			return done(e, Unchanged, nil)
		}
	}
	e.Dead = append(e.Dead, id)
	return saved(e, now, Done, Unchanged)
}
