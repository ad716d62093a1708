package lifecycle_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"pgregory.net/rapid"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// The simulation's executors: they carry out the core's effects against a
// site's simStore and the bus the way producer/exec.go and
// consumer/exec.go do against S3 and NATS, and run the same loops as
// Producer.reconcile, Producer.RecoverLocked and Applier.Apply.

type simRole int

const (
	simProducer simRole = iota // Publish, Inspect
	simConsumer                // LogConflict, CopyLoser, Trash, Put, Delete, CheckAbsent, Park
)

// Failures of the simulated executors.
var (
	errSimCrash           = errors.New("crash")
	errSimParked          = errors.New("conflict parked for an operator (policy manual)")
	errSimBodyUnavailable = errors.New("no site holds this version's body any more")
	errSimChanged         = errors.New("object changed while reading")
	errSimLocalChanging   = errors.New("the local object keeps changing under the apply")
)

// simExec is the executor of one Drive. Besides carrying out effects it
// replays every Step from the input it fed (Step is pure) so that the
// simulation checks each Step's output itself (checkStep).
type simExec struct {
	w    *simWorld
	s    *simSite
	k    lifecycle.Key
	role simRole
	rec  *schema.Record // consumer: the record being applied
	obs  simMut         // producer: the write that made what the observation saw

	e         lifecycle.Entry // the entry the next Step starts from
	in        lifecycle.Input // the input of the next Step
	now       int64
	persisted *lifecycle.Entry // what Drive persisted for the current Step
}

// drive runs lifecycle.Drive for key at s from its durable entry e.
func (w *simWorld) drive(s *simSite, key string, role simRole, e lifecycle.Entry, in lifecycle.Input, rec *schema.Record, obs simMut) (lifecycle.Step, error) {
	if got, want := simCanon(e), simCanon(s.entry(key)); got != want {
		w.t.Fatalf("sim: drive of %s at %s from an entry that is not the durable one:\n  %s\n  %s", key, s.name, got, want)
	}
	x := &simExec{w: w, s: s, k: lifecycle.Key{Bucket: simBucket, Key: key}, role: role, rec: rec, obs: obs, e: e, in: in, now: s.wall}
	st, err := lifecycle.Drive(s.m, x.k, e, in, lifecycle.Executor{
		Persist: x.persist,
		Execute: x.execute,
		Now:     func() int64 { return s.wall },
	})
	if err == nil {
		w.checkDriveEnd(x, st, e, in)
	}
	return st, err
}

func (x *simExec) persist(e lifecycle.Entry, lazy bool) error {
	b := simEncode(e)
	if got, want := simCanon(simDecode(b)), simCanon(e); got != want {
		x.w.t.Fatalf("entry does not survive encoding:\n  %s\n  %s", got, want)
	}
	x.s.persist(x.k.Key, b, lazy)
	x.persisted = &e
	x.w.checkConflictLogged(x, e)
	x.w.checkReflected(x, e)
	// A tombstone taken while the key is absent because of a user's delete
	// nobody has published absorbs that delete (Recover finishing a replica
	// delete: versitygw answers a conditional DELETE of an absent key with
	// success, so the store cannot tell which delete removed the object).
	if m := x.s.store.last(x.k.Key); e.Held.Deleted && e.Held.ID != x.e.Held.ID && m.kind == simUser && m.del {
		if wr := x.w.writes[m.write]; wr.vid == "" && wr.mergedInto == "" {
			wr.mergedInto = e.Held.ID
			x.w.t.Logf("    user write #%d is merged into the concurrent replica delete %s", m.write, simID(e.Held.ID))
			x.w.stat("delete merged into a replica delete")
		}
	}
	return nil
}

func (x *simExec) execute(effs []lifecycle.Effect) (lifecycle.Input, error) {
	st := x.w.replay(x, effs)
	x.w.checkStep(x, st)
	x.e, x.persisted = st.Entry, nil
	next, err := x.run(effs)
	x.in = next
	return next, err
}

// replay computes the Step that Drive just took again and checks that Drive
// persisted and handed over exactly what it says, and that Step left its
// input alone.
func (w *simWorld) replay(x *simExec, effs []lifecycle.Effect) lifecycle.Step {
	before := simCanon(x.e)
	st := x.s.m.Step(x.k, x.e, x.in, x.now)
	if after := simCanon(x.e); after != before {
		w.t.Fatalf("Step modified its input entry:\n  %s\n  %s", before, after)
	}
	switch {
	case st.Persist != (x.persisted != nil):
		w.t.Fatalf("sim: Step says persist=%v, Drive persisted %v", st.Persist, x.persisted != nil)
	case st.Persist && simCanon(*x.persisted) != simCanon(st.Entry):
		w.t.Fatalf("sim: Drive persisted another entry than Step returned")
	case !st.Persist && simCanon(st.Entry) != before:
		w.t.Fatalf("Step changed the entry (input %T) without asking to persist it:\n  %s\n  %s", x.in, before, simCanon(st.Entry))
	}
	if len(st.Effects) != len(effs) {
		w.t.Fatalf("sim: Step returned %d effects, Drive executes %d", len(st.Effects), len(effs))
	}
	for i := range effs {
		if !simSameEffect(st.Effects[i], effs[i]) {
			w.t.Fatalf("sim: Step's effect %d is %#v, Drive executes %#v", i, st.Effects[i], effs[i])
		}
	}
	return st
}

// run carries out effects in order, like producer.execute and
// consumer.execute, crashing between any two of them when the world says so.
func (x *simExec) run(effs []lifecycle.Effect) (lifecycle.Input, error) {
	var next lifecycle.Input
	var etag string
	wrote, logged := false, false
	for _, ef := range effs {
		if n, ok := ef.(lifecycle.Note); ok {
			x.w.t.Logf("    note %s %v", n.Msg, n.Args)
			continue
		}
		if x.w.crash(x.s, ef) {
			return nil, errSimCrash
		}
		x.w.race(x.s, x.k.Key)
		if !x.allowed(ef) {
			x.w.t.Fatalf("%v executor got effect %T", x.role, ef)
		}
		var err error
		switch ef := ef.(type) {
		case lifecycle.Publish:
			next = x.publish(ef)
		case lifecycle.Inspect:
			in := lifecycle.Inspected{Object: x.s.store.head(x.k.Key)}
			if ef.Copy != "" {
				in.Copy = x.s.store.head(ef.Copy)
			}
			next = in
		case lifecycle.LogConflict:
			x.w.t.Logf("    conflict at %s: %s beats %s (%s)", x.s.name, simID(ef.Entry.Winner.ID), simID(ef.Entry.Loser.ID), ef.Entry.Outcome)
			x.s.conflicts = append(x.s.conflicts, ef.Entry)
			x.w.stat("conflict " + ef.Entry.Outcome)
			logged = true
		case lifecycle.CopyLoser:
			err = x.copyLoser(ef)
		case lifecycle.Trash:
			err = x.trash(ef)
		case lifecycle.Put:
			etag, err = x.put(ef)
			wrote = true
		case lifecycle.Delete:
			err = x.delete(ef)
			wrote = true
		case lifecycle.CheckAbsent:
			if x.s.store.objs[x.k.Key] != nil {
				err = errSimPrecondition
			}
			wrote = true
		case lifecycle.Park:
			return nil, errSimParked
		case lifecycle.Hold:
			x.w.hold(x.s, ef)
		}
		if errors.Is(err, errSimPrecondition) || errors.Is(err, errSimNotFound) {
			x.w.t.Logf("    %T refused at %s", ef, x.s.name)
			x.w.stat(fmt.Sprintf("refused %T", ef))
			return lifecycle.Refused{}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if x.w.crash(x.s, nil) {
		return nil, errSimCrash
	}
	if x.role == simConsumer {
		if !wrote {
			if logged {
				return lifecycle.Logged{Record: x.rec, Policy: x.w.pol}, nil
			}
			return nil, nil
		}
		return lifecycle.Written{Record: x.rec, ETag: etag}, nil
	}
	return next, nil
}

func (x *simExec) allowed(ef lifecycle.Effect) bool {
	switch ef.(type) {
	case lifecycle.Publish, lifecycle.Inspect:
		return x.role == simProducer
	}
	return x.role == simConsumer
}

func (r simRole) String() string { return [...]string{"producer", "consumer"}[r] }

// publish is producer.publish: read the body inline if asked (If-Match the
// record's ETag), then send the record to every other site.
func (x *simExec) publish(ef lifecycle.Publish) lifecycle.Input {
	rec := *ef.Record
	if ef.ReadInline {
		o := x.s.store.objs[x.k.Key]
		switch {
		case (o == nil || o.etag != rec.Version.ETag || int64(len(o.body)) != rec.Version.Size) && ef.Republish:
			x.w.stat("republished without its body")
		case o == nil || o.etag != rec.Version.ETag || int64(len(o.body)) != rec.Version.Size:
			x.w.t.Logf("    publish of %s at %s: the object changed", simID(rec.Version.ID), x.s.name)
			x.w.stat("publish changed")
			return lifecycle.PublishChanged{}
		default:
			rec.Inline, rec.Body = true, bytes.Clone(o.body)
		}
	}
	data, err := rec.Encode()
	if err != nil {
		x.w.t.Fatalf("the core made a record that does not encode: %v", err)
	}
	x.w.send(x.s, &rec, data, ef.Republish)
	return lifecycle.PublishAcked{Publish: ef}
}

// put is consumer.put: the body inline or fetched, the replica marker in
// the metadata, the write conditional.
func (x *simExec) put(p lifecycle.Put) (string, error) {
	rec := p.Record
	v := rec.Version
	body := rec.Body
	if !rec.Inline {
		if body = x.w.fetch(x.s, rec); body == nil {
			x.w.t.Logf("    body of %s unavailable at %s", simID(v.ID), x.s.name)
			return "", errSimBodyUnavailable
		}
	}
	if int64(len(body)) != v.Size || simETag(body) != v.ETag {
		x.w.t.Fatalf("body of %s is not the version's (%d bytes, ETag %s)", v.ID, len(body), simETag(body))
	}
	o := &simObject{body: bytes.Clone(body), etag: simETag(body), ctype: rec.Attrs.ContentType, meta: simMeta(p.Meta),
		mod: x.s.wall / 1000 * 1000, by: simMut{kind: simReplica, vid: v.ID}}
	if old := x.s.store.objs[x.k.Key]; old != nil && old.etag == p.IfMatch && x.w.pol.Trash == lifecycle.TrashAll {
		x.checkTrashed(old.etag, "overwrite")
	}
	if err := x.s.store.put(x.k.Key, o, p.IfMatch, p.IfNoneMatch); err != nil {
		return "", err
	}
	x.w.t.Logf("    replica put %s at %s", simID(v.ID), x.s.name)
	x.w.hint(x.s, x.k.Key, false)
	return o.etag, nil
}

// delete is consumer.delete: look first (a conditional DELETE of an absent
// key succeeds on versitygw), then delete If-Match.
func (x *simExec) delete(d lifecycle.Delete) error {
	if o := x.s.store.objs[x.k.Key]; o == nil || o.etag != d.IfMatch {
		return errSimPrecondition
	}
	if x.w.pol.Trash != lifecycle.TrashNone {
		x.checkTrashed(d.IfMatch, "delete")
	}
	if err := x.s.store.remove(x.k.Key, d.IfMatch, simMut{kind: simReplica, vid: x.rec.Version.ID}); err != nil {
		return err
	}
	x.w.t.Logf("    replica delete %s at %s", simID(x.rec.Version.ID), x.s.name)
	x.w.hint(x.s, x.k.Key, true)
	return nil
}

// copyLoser is consumer.copyLoser: CopyObject If-Match, metadata copied.
func (x *simExec) copyLoser(c lifecycle.CopyLoser) error {
	o := x.s.store.objs[x.k.Key]
	if o == nil || o.etag != c.IfMatch {
		return errSimPrecondition
	}
	cp := &simObject{body: bytes.Clone(o.body), etag: o.etag, ctype: o.ctype, meta: maps.Clone(o.meta),
		mod: x.s.wall / 1000 * 1000, by: simMut{kind: simCopy, vid: c.Loser}}
	if err := x.s.store.put(c.To, cp, "", false); err != nil {
		return err
	}
	if x.s.copies[c.To] == nil {
		x.s.copies[c.To] = map[string]bool{}
	}
	x.s.copies[c.To][o.etag] = true
	x.w.t.Logf("    loser %s kept at %s as %s", simID(c.Loser), x.s.name, c.To)
	x.w.stat("loser copy")
	x.w.hint(x.s, c.To, false)
	return nil
}

// trash is consumer.trash: CopyObject of the held object If-Match into the
// site's own trash (never replicated: kept beside the store's objects).
func (x *simExec) trash(t lifecycle.Trash) error {
	o := x.s.store.objs[x.k.Key]
	if o == nil || o.etag != t.IfMatch {
		return errSimPrecondition
	}
	if x.s.trash[x.k.Key] == nil {
		x.s.trash[x.k.Key] = map[string]bool{}
	}
	x.s.trash[x.k.Key][o.etag] = true
	x.w.t.Logf("    %s of %s at %s by %s: trashed", t.Op(), simID(t.Replaced.ID), x.s.name, simID(t.By.ID))
	x.w.stat("trash copy")
	return nil
}

// checkTrashed fails the simulation unless the site's trash holds the bytes
// (etag) a replica write is about to remove: what a peer's record deletes
// or replaces is recoverable.
func (x *simExec) checkTrashed(etag, op string) {
	if !x.s.trash[x.k.Key][etag] {
		x.w.t.Fatalf("replica %s of %s at %s removes ETag %s, which the site's trash does not hold (trash %v)",
			op, x.k.Key, x.s.name, etag, x.w.pol.Trash)
	}
}

// fetch is Applier.OpenBody for a record without its body: the origin's
// object If-Match the version's ETag, or a peer's replica of that version.
func (w *simWorld) fetch(at *simSite, rec *schema.Record) []byte {
	v := rec.Version
	if o := w.site(v.Origin).store.objs[rec.Key]; o != nil && o.etag == v.ETag {
		return o.body
	}
	for _, s := range w.sites {
		if s == at || s.name == v.Origin {
			continue
		}
		o := s.store.objs[rec.Key]
		if o == nil {
			continue
		}
		// consumer.OpenBody's verifier refuses the bytes of a user's write
		// that carries a copied marker of v.
		if pv, ok := schema.Replica(rec.Bucket, rec.Key, o.meta, int64(len(o.body))); ok && pv.ID == v.ID && o.etag == v.ETag {
			return o.body
		}
	}
	return nil
}

// The loops of the real executors.

// load is Producer.load: the durable entry, with any intent a crash left
// outstanding settled first (Producer.RecoverLocked).
func (w *simWorld) load(s *simSite, key string) (lifecycle.Entry, error) {
	e := s.entry(key)
	if !e.Outstanding() {
		return e, nil
	}
	w.t.Logf("  recover %s at %s", key, s.name)
	st, err := w.drive(s, key, simProducer, e, lifecycle.Recover{}, nil, simMut{})
	return st.Entry, err
}

// observe is Producer.observe: a HEAD of the key.
func (w *simWorld) observe(s *simSite, key string, deleteEvent bool) lifecycle.Observe {
	return lifecycle.Observe{Object: s.store.head(key), Policy: w.pol.Policy, DeleteEvent: deleteEvent}
}

// reconcile is Producer.reconcile: confirm a hint about key at s, again
// while the object changes under the read (at most 5 more times).
func (w *simWorld) reconcile(s *simSite, key string, deleteEvent bool) (lifecycle.Result, error) {
	for attempt := 0; ; attempt++ {
		res, err := w.reconcileOnce(s, key, deleteEvent)
		if errors.Is(err, errSimChanged) && attempt < 5 {
			continue
		}
		return res, err
	}
}

func (w *simWorld) reconcileOnce(s *simSite, key string, deleteEvent bool) (lifecycle.Result, error) {
	e, err := w.load(s, key)
	if err != nil {
		return lifecycle.Unchanged, err
	}
	st, err := w.drive(s, key, simProducer, e, w.observe(s, key, deleteEvent), nil, s.store.last(key))
	if err != nil {
		return st.Result, err
	}
	w.t.Logf("  reconcile %s at %s: %v", key, s.name, st.Result)
	if st.Next == lifecycle.Again {
		return st.Result, errSimChanged
	}
	return st.Result, nil
}

// apply is Applier.Apply: recover, receive; when a local write not yet
// recorded got there first, record it (reconcile) and receive again.
func (w *simWorld) apply(s *simSite, rec *schema.Record) (lifecycle.Step, error) {
	for attempt := 0; attempt < 5; attempt++ {
		st, err := w.applyOnce(s, rec)
		if err != nil || st.Next != lifecycle.Again {
			return st, err
		}
		if st.Result != lifecycle.LocalChanged {
			w.t.Fatalf("Receive ended with Again and result %v", st.Result)
		}
		if _, err := w.reconcile(s, rec.Key, false); err != nil {
			return st, err
		}
	}
	return lifecycle.Step{}, errSimLocalChanging
}

func (w *simWorld) applyOnce(s *simSite, rec *schema.Record) (lifecycle.Step, error) {
	e, err := w.load(s, rec.Key)
	if err != nil {
		return lifecycle.Step{}, err
	}
	in := lifecycle.Receive{Record: rec, Policy: w.pol, HoldDeletes: rec.Version.Deleted && s.holds[rec.Version.Origin] && !s.releasing}
	st, err := w.drive(s, rec.Key, simConsumer, e, in, rec, simMut{})
	if err == nil {
		w.dropSuperseded(s, rec.Key)
	}
	return st, err
}

// deadLetter parks rec in s's DLQ and marks its version dead in the entry
// (Applier.MarkDead: the durable entry as it is, no recovery first).
func (w *simWorld) deadLetter(s *simSite, rec *schema.Record, reason string) error {
	w.t.Logf("  dead letter %s at %s: %s", simID(rec.Version.ID), s.name, reason)
	w.stat("dead letter " + reason)
	s.dlq = append(s.dlq, simDead{id: rec.Version.ID, reason: reason})
	_, err := w.drive(s, rec.Key, simConsumer, s.entry(rec.Key), lifecycle.DeadLettered{ID: rec.Version.ID}, rec, simMut{})
	return err
}

// deliver applies the i-th delivery waiting at s, acknowledging it (it
// leaves the inbox) when it is applied or dead-lettered, and leaving it for
// a redelivery after a crash or a retryable failure.
func (w *simWorld) deliver(s *simSite, i int) {
	d := s.inbox[i]
	rec, err := schema.Decode(d.data)
	if err != nil {
		w.t.Fatalf("a published record does not decode: %v", err)
	}
	w.t.Logf("deliver %s %s to %s", simID(rec.Version.ID), simV(rec.Version), s.name)
	// consumer.validate: bounded before anything acts on it.
	var st lifecycle.Step
	l := schema.NewLimits(w.siteNames(), time.UnixMilli(s.wall), 0)
	l.Self, l.Proven = s.name, maps.Clone(s.proven)
	err = rec.ValidateFor(l)
	if errors.Is(err, schema.ErrUnproven) {
		// consumer.validateOverKey: what the key's clock holds needs no
		// proof again.
		err = rec.ValidateFor(l.OverKey(s.entry(rec.Key).Clock))
	}
	if errors.Is(err, schema.ErrUnproven) {
		// consumer.proofWait: retried while the proof may still come; once
		// nothing in flight can prove it (the bound, with every link up),
		// dead-lettered as bad-record.
		if d.fails++; !w.quiet || w.provable(s, err) {
			w.t.Logf("  %v: the delivery waits", err)
			if !w.forged[rec.Version.ID] {
				w.stat("honest record waited for proof")
			}
			return
		}
	}
	if err == nil {
		o := rec.Version.Origin
		s.proven[o] = max(s.proven[o], rec.Version.Clock[o])
		st, err = w.apply(s, rec)
		if err == nil && errors.Is(st.Err, schema.ErrBadRecord) {
			err = st.Err // the Applier returns it (a forged rank)
		}
	}
	if w.forged[rec.Version.ID] && !errors.Is(err, schema.ErrBadRecord) && !errors.Is(err, errSimCrash) {
		w.t.Fatalf("forged %s at %s was not refused as bad-record: %v %v", simID(rec.Version.ID), s.name, st.Result, err)
	}
	switch {
	case errors.Is(err, schema.ErrBadRecord):
		if !w.forged[rec.Version.ID] && !w.equivocal(rec.Version.ID) {
			w.t.Fatalf("an honest record %s refused at %s: %v", simID(rec.Version.ID), s.name, err)
		}
		if err := w.deadLetter(s, rec, "bad-record"); err != nil {
			return
		}
	case errors.Is(err, errSimParked):
		if err := w.deadLetter(s, rec, "manual"); err != nil {
			return
		}
	case errors.Is(err, errSimBodyUnavailable):
		// Retried until the budget is spent, then dead-lettered.
		if d.fails++; !w.quiet && d.fails < 3 {
			return
		}
		if err := w.deadLetter(s, rec, "body-unavailable"); err != nil {
			return
		}
	case err != nil:
		w.t.Logf("  %v: the delivery stays", err)
		return
	default:
		w.t.Logf("  %v (%v)", st.Result, st.Decision.Outcome)
		if rec.Version.ID == w.resolution && (st.Decision.Outcome != schema.Apply || st.Decision.Conflict) {
			w.t.Fatalf("manual: resolution %s at %s: %v conflict=%v", rec.Version.ID, s.name, st.Decision.Outcome, st.Decision.Conflict)
		}
	}
	if !w.quiet && w.dups > 0 && w.chance(4, "dup") {
		w.dups--
		w.t.Logf("  the ack is lost: %s will come again", simID(rec.Version.ID))
	} else {
		s.inbox = slices.Delete(s.inbox, i, i+1)
		if len(s.lazy) > 0 {
			s.unackedRecs = append(s.unackedRecs, d)
		}
	}
	if (err == nil || errors.Is(err, errSimParked)) && w.chance(3, "again") {
		w.checkRedelivery(s, rec)
	}
}

// provable reports whether a record in s's inbox, or one its origin has
// yet to publish (a pending version), may still prove the entry err names.
func (w *simWorld) provable(s *simSite, err error) bool {
	var ue *schema.UnprovenError
	if !errors.As(err, &ue) {
		w.t.Fatalf("unproven without an UnprovenError: %v", err)
	}
	for _, d := range s.inbox {
		if rec, err := schema.Decode(d.data); err == nil && rec.Version.Origin == ue.Site && rec.Version.Clock[ue.Site] >= ue.Claim {
			return true
		}
	}
	o := w.site(ue.Site)
	for _, k := range o.entryKeys() {
		if p := o.entry(k).Pending; p != nil && p.Version.Clock[ue.Site] >= ue.Claim {
			return true
		}
	}
	return false
}

// event handles the i-th storage event waiting at s.
func (w *simWorld) event(s *simSite, i int) {
	h := s.events[i]
	w.t.Logf("event %s (delete=%v) at %s", h.key, h.del, s.name)
	if _, err := w.reconcile(s, h.key, h.del); err != nil {
		w.t.Logf("  %v: the event stays", err)
		return
	}
	s.events = slices.Delete(s.events, i, i+1)
	if len(s.lazy) > 0 {
		s.unackedEvents = append(s.unackedEvents, h)
	}
}

// scan observes every key s's store or entry store knows, in random order,
// and returns the results (nil if it crashed).
func (w *simWorld) scan(s *simSite) map[string]lifecycle.Result {
	keys := map[string]bool{}
	for k := range s.store.objs {
		keys[k] = true
	}
	for _, k := range s.entryKeys() {
		keys[k] = true
	}
	order := rapid.Permutation(slices.Sorted(maps.Keys(keys))).Draw(w.t, "scan")
	w.t.Logf("scan at %s: %v", s.name, order)
	out := map[string]lifecycle.Result{}
	for _, k := range order {
		res, err := w.reconcile(s, k, false)
		if errors.Is(err, errSimCrash) {
			return nil
		}
		out[k] = res
	}
	return out
}

// crash decides whether s crashes before ef (nil: after the last effect,
// before its outcome is fed back).
func (w *simWorld) crash(s *simSite, ef lifecycle.Effect) bool {
	if w.quiet || w.crashes == 0 || !w.chance(12, "crash") {
		return false
	}
	w.crashes--
	w.stat("crash")
	if n := len(s.lazy); n > 0 {
		// The lazy writes not yet flushed are lost with the process, and
		// what waited for them to be acknowledged comes again.
		w.t.Logf("  CRASH loses %d lazily persisted entries at %s: %v; %d records and %d events come again",
			n, s.name, slices.Sorted(maps.Keys(s.lazy)), len(s.unackedRecs), len(s.unackedEvents))
		w.stat("lazy entries lost by a crash")
	}
	s.lose()
	if ef == nil {
		w.t.Logf("  CRASH at %s after the effects, before their outcome is recorded", s.name)
	} else {
		w.t.Logf("  CRASH at %s before %T", s.name, ef)
	}
	return true
}

// race lets a user write key at s between two effects.
func (w *simWorld) race(s *simSite, key string) {
	if w.quiet || w.races == 0 || !slices.Contains(w.keys, key) || !w.chance(10, "race") {
		return
	}
	w.races--
	w.stat("racing write")
	w.t.Logf("  racing user write:")
	w.userWrite(s, key, w.chance(3, "race-del"))
}
