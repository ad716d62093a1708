package lifecycle_test

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// Held deletes in the simulation. Each site's guard holds the deletes of
// some peers (chosen at random, and changed by operators during the run, as
// the consumer's DeleteGuard starts and ends holds); a held delete is kept
// by the site (durable, as state.Store.HoldDelete) instead of applied, and
// a later record of the key that dominates it drops it (Applier.
// dropSuperseded). Operators release a peer's held deletes (applied in the
// order held through the normal apply path, Applier.Release) or discard
// them (lifecycle.Refuse at that site: the object published again over the
// delete's clock, Producer.Refuse), at any point of the faulty run,
// crashes included. Before the run settles every hold ends and what is
// still held is released or discarded; then every invariant of
// sim_test.go must hold: a held delete changes nothing until an operator
// decides, a release ends where applying on arrival would have, and a
// discard brings the object back at every site.

// hold keeps a delete the core held (lifecycle.Hold), one per key and peer
// as state.Store.HoldDelete: a newer delete of the key from the same peer
// replaces the held one, an older one arriving late is not kept over it.
func (w *simWorld) hold(s *simSite, h lifecycle.Hold) {
	rec := *h.Record
	for _, r := range s.held {
		if r.Key == rec.Key && r.Version.Origin == rec.Version.Origin && lifecycle.Superseded(r.Version.Clock, rec.Version) {
			w.t.Logf("    %s at %s: the held %s is newer, kept", simID(rec.Version.ID), s.name, simID(r.Version.ID))
			return
		}
	}
	s.held = slices.DeleteFunc(s.held, func(r *schema.Record) bool {
		return r.Key == rec.Key && r.Version.Origin == rec.Version.Origin
	})
	s.held = append(s.held, &rec)
	w.t.Logf("    held %s at %s", simID(rec.Version.ID), s.name)
	w.stat("deletes held")
}

// dropSuperseded drops s's held deletes of key that the key's entry has
// moved past.
func (w *simWorld) dropSuperseded(s *simSite, key string) {
	e := s.entry(key)
	s.held = slices.DeleteFunc(s.held, func(r *schema.Record) bool {
		if r.Key != key || !lifecycle.Superseded(e.Clock, r.Version) {
			return false
		}
		w.t.Logf("    held %s at %s superseded (clock %s): dropped", simID(r.Version.ID), s.name, e.Clock)
		w.stat("held deletes superseded")
		return true
	})
}

// checkHeld checks a Receive that held its delete: a tombstone that would
// delete the object held, kept and nothing else.
func (w *simWorld) checkHeld(x *simExec, in lifecycle.Receive, st lifecycle.Step) {
	v := in.Record.Version
	_, kept := func() (lifecycle.Hold, bool) {
		if len(st.Effects) != 1 {
			return lifecycle.Hold{}, false
		}
		h, ok := st.Effects[0].(lifecycle.Hold)
		return h, ok && h.Record.Version.ID == v.ID
	}()
	switch {
	case !in.HoldDeletes || !v.Deleted || !x.e.Present():
		w.t.Fatalf("%s held %s at %s: hold=%v deleted=%v present=%v", x.k.Key, v.ID, x.s.name, in.HoldDeletes, v.Deleted, x.e.Present())
	case st.Persist || st.Result != lifecycle.Held || !kept:
		w.t.Fatalf("a held delete %s at %s changed something or was not kept: %+v", v.ID, x.s.name, st)
	}
}

// checkRefusal checks a version an operator's discard publishes: the
// bytes a user wrote, at this site's store now, over a clock that
// dominates every delete of the key the site held.
func (w *simWorld) checkRefusal(s *simSite, rec *schema.Record) {
	v := rec.Version
	n, ok := w.byETag[v.ETag]
	if v.Deleted || !ok || w.writes[n].key != rec.Key || w.writes[n].attrs != rec.Attrs.Digest() {
		w.t.Fatalf("a discard at %s published %s, not bytes a user wrote of %s", s.name, simV(v), rec.Key)
	}
	if wr := w.writes[n]; wr.site == s.i && wr.vid == "" {
		// The object was a local write nobody had recorded yet: the
		// discard publishes it (as Force does), so it is that write's version.
		wr.vid = v.ID
		w.stat("discard published an unrecorded local write")
	}
	if w.refusedAt == nil {
		w.refusedAt = map[string]map[int]bool{}
	}
	if w.refusedAt[v.ETag] == nil {
		w.refusedAt[v.ETag] = map[int]bool{}
	}
	w.refusedAt[v.ETag][s.i] = true
	w.pubs[v.ID] = simPub{key: rec.Key, v: v, attrs: rec.Attrs.Digest()}
	w.stat("objects written again by a discard")
}

// operator settles s's held deletes of one peer (release or discard), or
// starts or ends a hold.
func (w *simWorld) operator(s *simSite) {
	var peers []string
	for _, r := range s.held {
		if !slices.Contains(peers, r.Version.Origin) {
			peers = append(peers, r.Version.Origin)
		}
	}
	if len(peers) == 0 {
		p := w.sites[w.draw(len(w.sites), "hold-peer")]
		if p != s {
			s.holds[p.name] = !s.holds[p.name]
			w.t.Logf("operator: %s holds %s's deletes: %v", s.name, p.name, s.holds[p.name])
		}
		return
	}
	peer := peers[w.draw(len(peers), "settle-peer")]
	w.settleHeld(s, peer, w.chance(2, "discard"))
	s.holds[peer] = w.chance(2, "hold-again")
}

// settleHeld releases (or discards) s's held deletes of peer in the order
// held. One that fails (a crash, a store that keeps changing) stays held.
func (w *simWorld) settleHeld(s *simSite, peer string, discard bool) {
	var todo []*schema.Record
	for _, r := range s.held {
		if r.Version.Origin == peer {
			todo = append(todo, r)
		}
	}
	w.t.Logf("operator: %s %s %d held deletes of %s", map[bool]string{true: "discards", false: "releases"}[discard], s.name, len(todo), peer)
	for _, r := range todo {
		var err error
		if discard {
			err = w.discard(s, r)
		} else {
			s.releasing = true
			var st lifecycle.Step
			st, err = w.apply(s, r)
			s.releasing = false
			if err == nil {
				w.t.Logf("  released %s at %s: %v (%v)", simID(r.Version.ID), s.name, st.Result, st.Decision.Outcome)
				w.stat("held deletes released")
			}
		}
		if errors.Is(err, errSimParked) {
			err = w.deadLetter(s, r, "manual")
		}
		if err != nil {
			w.t.Logf("  %s stays held at %s: %v", simID(r.Version.ID), s.name, err)
			continue
		}
		s.held = slices.DeleteFunc(s.held, func(h *schema.Record) bool { return h == r })
	}
}

// discard is Producer.Refuse of held delete r at s.
func (w *simWorld) discard(s *simSite, r *schema.Record) error {
	for attempt := 0; ; attempt++ {
		e, err := w.load(s, r.Key)
		if err != nil {
			return err
		}
		obs := w.observe(s, r.Key, false)
		w.refusing = true
		st, err := w.drive(s, r.Key, simProducer, e, lifecycle.Refuse{Object: obs.Object, Policy: w.pol.Policy, Delete: r.Version}, nil, s.store.last(r.Key))
		w.refusing = false
		switch {
		case err != nil:
			return err
		case st.Next == lifecycle.Again && attempt < 5:
			continue // the object changed while its body was read
		case st.Next == lifecycle.Again:
			return errSimChanged
		case st.Err != nil:
			w.t.Fatalf("discard of %s at %s: %v", simID(r.Version.ID), s.name, st.Err)
		}
		w.t.Logf("  discarded %s at %s: %v", simID(r.Version.ID), s.name, st.Result)
		if st.Result == lifecycle.Published {
			if st.Entry.Clock.Compare(r.Version.Clock) != schema.After {
				w.t.Fatalf("discard at %s published %s, which does not follow the delete %s", s.name, simV(st.Entry.Held), simV(r.Version))
			}
			return nil
		}
		// Nothing to write again: the delete takes the normal path
		// (Applier.Discard), skipped if superseded.
		s.releasing = true
		_, err = w.apply(s, r)
		s.releasing = false
		return err
	}
}

// endHolds ends every hold, then releases or discards what is still held,
// so the run can settle.
func (w *simWorld) endHolds() {
	w.t.Logf("-- end holds")
	w.quiet = true
	for _, s := range w.sites {
		clear(s.holds)
	}
	w.drain()
	for _, s := range w.sites {
		for len(s.held) > 0 {
			w.settleHeld(s, s.held[0].Version.Origin, w.chance(2, "final-discard"))
			w.drain()
		}
	}
}

// TestSimulationHeldDeletes: with receivers holding peers' deletes, and
// operators releasing and discarding them during a faulty run, every
// schedule converges and keeps I1–I5.
func TestSimulationHeldDeletes(t *testing.T) {
	tot := simTotals{}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(rt, "sites")
		w := newSimWorld(rt, n, simPolicy(rt, n, false))
		w.heldOps = true
		for _, s := range w.sites {
			s.holds = map[string]bool{}
			for _, p := range w.sites {
				if p != s && rapid.Bool().Draw(rt, "holds") {
					s.holds[p.name] = true
				}
			}
		}
		w.run()
		w.endHolds()
		w.settle()
		w.checkAll()
		tot.add(w)
	})
	tot.log(t)
}
