package schema

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// The convergence simulation of converge_test.go, with a conflict policy:
// local writes (puts and deletes) take their rank from p.Rank, and
// consumers decide with p. simWorld's write and receive use the zero
// policy, so the parts that depend on the policy are copied here; the
// checks are reused (they only read the sites and the written versions).

type policyWorld struct {
	*simWorld
	p Policy
}

// write is simWorld.write with the rank of the policy.
func (w *policyWorld) write(i int, key string, wall int64, del bool) Version {
	s := w.sites[i]
	held := s.held[key]
	clock := s.clock[key].Bump(s.name)
	return w.publish(i, key, wall, del, clock, held)
}

// publish makes the local write of key at site i with the given clock over
// held, and queues it for every other site.
func (w *policyWorld) publish(i int, key string, wall int64, del bool, clock Clock, held *Version) Version {
	s := w.sites[i]
	v := Version{
		ID:      VersionID(s.name, convergeBucket, key, clock[s.name]),
		Origin:  s.name,
		Clock:   clock,
		TS:      NextTS(wall, held),
		Rank:    w.p.Rank(s.name, del, held),
		Deleted: del,
	}
	if held != nil && !held.Less(v) {
		w.t.Fatalf("local write %s (rank %#x ts %d) sorts below the version it replaces %s (rank %#x ts %d)",
			v.ID, v.Rank, v.TS, held.ID, held.Rank, held.TS)
	}
	r := Record{Schema: RecordSchema, Bucket: convergeBucket, Key: key, MadeAt: wall}
	if !del {
		r.Inline, r.Body = true, []byte(v.ID)
		v.Size, v.ETag = int64(len(r.Body)), fmt.Sprintf("etag-%s", v.ID)
	}
	r.Version = v
	b, err := r.Encode()
	if err != nil {
		w.t.Fatalf("Encode of a local write: %v", err)
	}
	w.t.Logf("write %s at %s: %s clock=%s ts=%d rank=%#x (wall %d) del=%v", key, s.name, v.ID, clock, v.TS, v.Rank, wall, del)
	s.held[key], s.clock[key] = &v, clock
	w.written[key] = append(w.written[key], v)
	w.records = append(w.records, b)
	for j := range w.sites {
		if j != i {
			w.pending = append(w.pending, simDelivery{to: j, rec: b})
		}
	}
	return v
}

// receive is simWorld.receive with the policy. Under manual it also checks
// that a park changes nothing, and that a version concurrent with the held
// one is always parked.
func (w *policyWorld) receive(i int, b []byte) Decision {
	r, err := Decode(b)
	if err != nil {
		w.t.Fatalf("Decode of a published record: %v", err)
	}
	s := w.sites[i]
	key := r.Key
	hc, held := s.clock[key], s.held[key]
	d := Decide(held, hc, r.Version, w.p)
	if w.p.Mode == ModeManual && held != nil {
		// Nothing ever merges a clock without applying, so the site's clock
		// is its held version's clock.
		if !sameClock(hc, held.Clock) {
			w.t.Fatalf("manual: %s holds %s (clock %s) with clock %s", s.name, held.ID, held.Clock, hc)
		}
		concurrent := r.Version.Clock.Compare(held.Clock) == Concurrent
		if concurrent != (d.Outcome == Park) {
			w.t.Fatalf("manual: %s (clock %s) at %s holding %s (clock %s): %v", r.Version.ID, r.Version.Clock, s.name, held.ID, held.Clock, d.Outcome)
		}
		if d.Outcome == Park && (!d.Conflict || !sameClock(d.Merged, hc)) {
			w.t.Fatalf("manual: park of %s at %s: conflict=%v merged %s, held clock %s", r.Version.ID, s.name, d.Conflict, d.Merged, hc)
		}
	}
	if w.p.Mode != ModeManual && d.Outcome == Park {
		w.t.Fatalf("park under %s", w.p)
	}
	switch d.Outcome {
	case Skip:
		if held != nil && !sameClock(d.Merged, hc) {
			w.t.Fatalf("skip of %s at %s would grow the clock %s to %s", r.Version.ID, s.name, hc, d.Merged)
		}
	case Apply, ApplyWinner:
		v := r.Version
		// Under manual a resolution is ranked over the resolver's held
		// version only, and may sort below what another site holds.
		if held != nil && !held.Less(v) && w.p.Mode != ModeManual {
			w.t.Fatalf("%v of %s at %s replaces %s, which sorts above it", d.Outcome, v.ID, s.name, held.ID)
		}
		s.held[key], s.clock[key] = &v, d.Merged
	case KeepLocal:
		s.clock[key] = d.Merged
	case Park:
		// The record goes to the DLQ; the site keeps everything.
	}
	if d.Conflict && d.Outcome != Park {
		s.log = append(s.log, simConflict{key: key, loser: d.Loser.ID, winner: d.Winner.ID})
	}
	w.t.Logf("deliver %s to %s: %v conflict=%v -> holds %s clock=%s", r.Version.ID, s.name, d.Outcome, d.Conflict, s.held[key].ID, s.clock[key])
	return d
}

func (w *policyWorld) deliverOne() {
	k := rapid.IntRange(0, len(w.pending)-1).Draw(w.t, "pick")
	p := w.pending[k]
	if w.dups > 0 && rapid.IntRange(0, 3).Draw(w.t, "dup") == 0 {
		w.dups--
	} else {
		w.pending = slices.Delete(w.pending, k, k+1)
	}
	w.receive(p.to, p.rec)
}

func (w *policyWorld) drain() {
	w.t.Logf("-- drain %d pending", len(w.pending))
	for len(w.pending) > 0 {
		w.deliverOne()
	}
}

// run is simWorld.run with this world's write and receive; deletes are one
// write in three.
func (w *policyWorld) run(walls []int64) {
	nKeys := rapid.IntRange(1, len(convergeKeys)).Draw(w.t, "keys")
	steps := rapid.IntRange(1, 60).Draw(w.t, "steps")
	for range steps {
		if len(w.pending) > 0 && rapid.IntRange(0, 9).Draw(w.t, "op") >= 4 {
			w.deliverOne()
			continue
		}
		i := rapid.IntRange(0, len(w.sites)-1).Draw(w.t, "site")
		walls[i] += rapid.Int64Range(-3, 5).Draw(w.t, "tick")
		key := convergeKeys[rapid.IntRange(0, nKeys-1).Draw(w.t, "key")]
		w.write(i, key, walls[i], rapid.IntRange(0, 2).Draw(w.t, "del") == 0)
	}
	w.drain()
}

func newPolicyWorld(t *rapid.T, p Policy, n int) *policyWorld {
	w := &policyWorld{simWorld: newSimWorld(t, n), p: p}
	w.t.Logf("policy %s %v", p, p.Priority)
	return w
}

// TestConvergePolicy: under every policy but manual (lww or site-priority
// over a random order of a random subset of the sites, possibly leaving
// some unlisted, with any delete rule), the sites converge to one version
// and one clock per key, the greatest version written (I1); I2, conflict
// agreement and I3 hold as in TestConverge.
func TestConvergePolicy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 5).Draw(t, "sites")
		names := []string{"a", "b", "c", "d", "e"}[:n]
		p := policyGen(names).Draw(t, "policy")
		w := newPolicyWorld(t, p, n)
		w.run(make([]int64, n))
		w.checkConverged()
		w.checkNoSilentLoss(false)
		w.checkConflictsAgree(false)
		// simWorld.receive decides with the zero policy: the same decisions
		// as p's, since Decide only reads the policy to park under manual.
		w.checkIdempotent()
	})
}

// TestConvergeManual: under manual, a site never changes its held version
// (nor its clock) on a record concurrent with it: the record is parked
// (checked by receive on every delivery). Sites may then disagree. A
// resolution write at one site, over the merge of every site's clock,
// delivered everywhere, is applied everywhere (not parked) and the sites
// converge; after it, every old record is skipped everywhere.
func TestConvergeManual(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 5).Draw(t, "sites")
		p := Policy{Mode: ModeManual, Deletes: rapid.SampledFrom([]string{"", DeleteWins, PutWins}).Draw(t, "deletes")}
		w := newPolicyWorld(t, p, n)
		walls := make([]int64, n)
		w.run(walls)

		for key := range w.written {
			all := Clock{}
			for _, s := range w.sites {
				all = all.Merge(s.clock[key])
			}
			i := rapid.IntRange(0, n-1).Draw(t, "resolver")
			s := w.sites[i]
			walls[i] += rapid.Int64Range(-3, 5).Draw(t, "tick")
			res := w.publish(i, key, walls[i], rapid.IntRange(0, 3).Draw(t, "del") == 0, all.Bump(s.name), s.held[key])
			for len(w.pending) > 0 {
				d := w.receive(w.pending[0].to, w.pending[0].rec)
				w.pending = w.pending[1:]
				if d.Outcome != Apply || d.Conflict {
					t.Fatalf("resolution %s: %v conflict=%v", res.ID, d.Outcome, d.Conflict)
				}
			}
			for _, s := range w.sites {
				if h := s.held[key]; h == nil || h.ID != res.ID || !sameClock(s.clock[key], res.Clock) {
					t.Fatalf("key %s: after resolution %s (clock %s), %s holds %v clock %s", key, res.ID, res.Clock, s.name, h, s.clock[key])
				}
			}
		}
		for i, s := range w.sites {
			for _, b := range w.records {
				if d := w.receive(i, b); d.Outcome != Skip || d.Conflict {
					t.Fatalf("redelivery to %s after resolution: %v conflict=%v", s.name, d.Outcome, d.Conflict)
				}
			}
		}
	})
}
